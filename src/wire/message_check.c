/*
 * message_check.c — the field checks every message family shares: error
 * texts with field paths, strings, numbers, integers, maps, arrays,
 * Timestamp, LWW and ORMap records, write concern.  See message_check.h.
 */
#include "wire/message_check.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const wc_names[] = {
	[TG_WC_NONE] = NULL,
	[TG_WC_FIRE_AND_FORGET] = "FIRE_AND_FORGET",
	[TG_WC_MEMORY] = "MEMORY",
	[TG_WC_APPLIED] = "APPLIED",
	[TG_WC_REPLICATED] = "REPLICATED",
	[TG_WC_PERSISTED] = "PERSISTED",
};

const char *
tg_write_concern_name(TgWriteConcern wc)
{
	if ((int) wc <= 0 || wc > TG_WC_PERSISTED)
		return NULL;
	return wc_names[wc];
}

char *
tg_str_copy(TgStr s, char *dst, size_t dstlen)
{
	size_t		n;

	if (dstlen == 0)
		return dst;
	n = s.len < dstlen - 1 ? s.len : dstlen - 1;
	if (n > 0)
		memcpy(dst, s.p, n);
	dst[n] = '\0';
	return dst;
}

/* ======================================================== error helpers */

bool
tgw_err(V *v, const char *path, const char *fmt,...)
{
	char		msg[256];
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (v->err != NULL && v->errlen > 0)
	{
		if (path != NULL && path[0] != '\0')
			snprintf(v->err, v->errlen, "%s: %s", path, msg);
		else
			snprintf(v->err, v->errlen, "%s", msg);
	}
	return false;
}

bool
tgw_nomem(V *v)
{
	v->nomem = true;
	return tgw_err(v, NULL, "out of memory");
}

/* Format a field path into dst (PATH_LEN bytes); long paths are cut. */
void
tgw_pathf(char *dst, const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(dst, PATH_LEN, fmt, ap);
	va_end(ap);
}

/*
 * dst = path.field (or field when path is empty), cut to PATH_LEN.  Paths
 * are built for every field checked, so this avoids printf.
 */
void
tgw_subpath(char *dst, const char *path, const char *field)
{
	size_t		pl = strlen(path);
	size_t		fl = strlen(field);
	size_t		o = 0;

	if (pl > PATH_LEN - 1)
		pl = PATH_LEN - 1;
	memcpy(dst, path, pl);
	o = pl;
	if (pl > 0 && o < PATH_LEN - 1)
		dst[o++] = '.';
	if (fl > PATH_LEN - 1 - o)
		fl = PATH_LEN - 1 - o;
	memcpy(dst + o, field, fl);
	dst[o + fl] = '\0';
}

/* dst = path[i]; dst may equal path */
void
tgw_indexpath(char *dst, const char *path, uint32_t i)
{
	char		num[16];
	char		rev[12];
	int			n = 0;
	int			k = 0;

	num[n++] = '[';
	do
	{
		rev[k++] = (char) ('0' + i % 10);
		i /= 10;
	} while (i > 0);
	while (k > 0)
		num[n++] = rev[--k];
	num[n++] = ']';
	num[n] = '\0';
	{
		size_t		pl = strlen(path);

		if (pl > PATH_LEN - 1 - (size_t) n)
			pl = PATH_LEN - 1 - (size_t) n;
		memmove(dst, path, pl);	/* dst may be path itself */
		memcpy(dst + pl, num, (size_t) n + 1);
	}
}

const char *
tgw_got(const MpNode *n)
{
	return mp_type_name(n->type);
}

/* ======================================================== scalar checks */

bool
tgw_check_str(V *v, const MpNode *n, const char *path, uint32_t minlen,
		  uint32_t maxlen, int flags, TgStr *out)
{
	uint32_t	len;
	const char *unit = "bytes";

	if (n->type != MP_STR)
		return tgw_err(v, path, "expected a string, got %s", tgw_got(n));
	len = n->len;
	if (flags & S_UTF16)
	{
		/* JS length: one unit per UTF-8 sequence, two for a 4-byte one */
		len = 0;
		unit = "characters";
		for (uint32_t i = 0; i < n->len; i++)
		{
			uint8_t		c = (uint8_t) n->v.s[i];

			if ((c & 0xC0) != 0x80)
				len += c >= 0xF0 ? 2 : 1;
		}
	}
	if (len < minlen || len > maxlen)
	{
		if (minlen == maxlen)
			return tgw_err(v, path, "must be %u %s long, got %u", minlen, unit, len);
		if (len < minlen && minlen == 1)
			return tgw_err(v, path, "must not be empty");
		return tgw_err(v, path, "must be %u..%u %s long, got %u", minlen, maxlen, unit, len);
	}
	for (uint32_t i = 0; i < n->len; i++)
	{
		char		c = n->v.s[i];

		if ((flags & S_NO_NUL) && c == '\0')
			return tgw_err(v, path, "must not contain NUL characters");
		if ((flags & S_NO_COLON) && c == ':')
			return tgw_err(v, path, "must not contain ':'");
		if ((flags & S_HEXPATH) && !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return tgw_err(v, path, "must be lowercase hex digits");
	}
	out->p = n->v.s;
	out->len = n->len;
	return true;
}

/* A required string field: absent and undefined are both "required". */
bool
tgw_req_str(V *v, const MpNode *obj, const char *path, const char *name,
		uint32_t minlen, uint32_t maxlen, int flags, TgStr *out)
{
	char		p[PATH_LEN];
	const MpNode *n = mp_map_get(obj, name);

	tgw_subpath(p, path, name);
	if (n == NULL)
		return tgw_err(v, p, "required");
	return tgw_check_str(v, n, p, minlen, maxlen, flags, out);
}

/* An optional string field; nil is accepted as absent only when nullable. */
bool
tgw_opt_str(V *v, const MpNode *obj, const char *path, const char *name,
		uint32_t minlen, uint32_t maxlen, int flags, bool nullable,
		bool *has, TgStr *out)
{
	char		p[PATH_LEN];
	const MpNode *n = mp_map_get(obj, name);

	*has = false;
	if (n == NULL)
		return true;
	tgw_subpath(p, path, name);
	if (n->type == MP_NIL)
	{
		if (nullable)
			return true;
		return tgw_err(v, p, "must not be null");
	}
	if (!tgw_check_str(v, n, p, minlen, maxlen, flags, out))
		return false;
	*has = true;
	return true;
}

bool
tgw_check_number(V *v, const MpNode *n, const char *path, double *out)
{
	double		f;

	if (!mp_is_number(n))
		return tgw_err(v, path, "expected a number, got %s", tgw_got(n));
	f = mp_number_as_double(n);
	if (!isfinite(f))
		return tgw_err(v, path, "must be a finite number");
	*out = f;
	return true;
}

bool
tgw_req_number(V *v, const MpNode *obj, const char *path, const char *name, double *out)
{
	char		p[PATH_LEN];
	const MpNode *n = mp_map_get(obj, name);

	tgw_subpath(p, path, name);
	if (n == NULL)
		return tgw_err(v, p, "required");
	return tgw_check_number(v, n, p, out);
}

bool
tgw_opt_number(V *v, const MpNode *obj, const char *path, const char *name,
		   bool *has, double *out)
{
	char		p[PATH_LEN];
	const MpNode *n = mp_map_get(obj, name);

	*has = false;
	if (n == NULL)
		return true;
	tgw_subpath(p, path, name);
	if (n->type == MP_NIL)
		return tgw_err(v, p, "must not be null");
	if (!tgw_check_number(v, n, p, out))
		return false;
	*has = true;
	return true;
}

/* An integral number in [min, max]; range_text is used in the message. */
bool
tgw_check_int(V *v, const MpNode *n, const char *path, int64_t min, int64_t max,
		  const char *range_text, int64_t *out)
{
	if (!mp_is_number(n))
		return tgw_err(v, path, "expected a number, got %s", tgw_got(n));
	if (n->type == MP_FLOAT && !isfinite(n->v.f))
		return tgw_err(v, path, "must be a finite number");
	if (!mp_number_as_int64(n, min, max, out))
		return tgw_err(v, path, "expected an integer in %s", range_text);
	return true;
}

/* A required map or array field (type MP_MAP or MP_ARRAY). */
bool
tgw_req_node(V *v, const MpNode *obj, const char *path, const char *name,
			 MpType type, const MpNode **out)
{
	char		p[PATH_LEN];
	const MpNode *n = mp_map_get(obj, name);

	tgw_subpath(p, path, name);
	if (n == NULL)
		return tgw_err(v, p, "required");
	if (n->type != type)
		return tgw_err(v, p, "expected %s, got %s",
					   type == MP_MAP ? "a map" : "an array", tgw_got(n));
	*out = n;
	return true;
}

/* Arena array of n elements (NULL allowed for n == 0). */
void *
tgw_array(V *v, uint32_t n, size_t elsize)
{
	void	   *p;

	if (n == 0)
		return NULL;
	p = mp_arena_alloc(v->arena, (size_t) n * elsize);
	if (p == NULL)
		tgw_nomem(v);
	else
		memset(p, 0, (size_t) n * elsize);
	return p;
}

bool
tgw_opt_map(V *v, const MpNode *obj, const char *path, const char *name,
			bool nullable, const MpNode **out)
{
	char		p[PATH_LEN];
	const MpNode *n = mp_map_get(obj, name);

	*out = NULL;
	if (n == NULL || (nullable && n->type == MP_NIL))
		return true;
	tgw_subpath(p, path, name);
	if (n->type != MP_MAP)
		return tgw_err(v, p, "expected a map, got %s", tgw_got(n));
	*out = n;
	return true;
}

bool
tgw_check_str_array(V *v, const MpNode *arr, const char *path, uint32_t max_items,
					uint32_t minlen, uint32_t maxlen, int flags, uint32_t *n_out, TgStr **out)
{
	if (arr->len > max_items)
		return tgw_err(v, path, "at most %u items, got %u", max_items, arr->len);
	*n_out = arr->len;
	*out = tgw_array(v, arr->len, sizeof(TgStr));
	if (arr->len > 0 && *out == NULL)
		return false;
	for (uint32_t i = 0; i < arr->len; i++)
	{
		char		p[PATH_LEN];

		tgw_indexpath(p, path, i);
		if (!tgw_check_str(v, &arr->v.items[i], p, minlen, maxlen, flags, &(*out)[i]))
			return false;
	}
	return true;
}

bool
tgw_check_number_map(V *v, const MpNode *m, const char *path, uint32_t max_entries,
					 uint32_t max_key, int key_flags)
{
	if (m->len > max_entries)
		return tgw_err(v, path, "at most %u entries, got %u", max_entries, m->len);
	for (uint32_t i = 0; i < m->len; i++)
	{
		const MpNode *k = &m->v.kv[2 * i];
		const MpNode *val = &m->v.kv[2 * i + 1];
		char		p[PATH_LEN];
		TgStr		key;
		double		d;

		if (k->type != MP_STR)
			return tgw_err(v, path, "keys must be strings, got %s", tgw_got(k));
		if (!tgw_check_str(v, k, path, 0, max_key, key_flags, &key))
			return false;
		if (val->type == MP_UNDEFINED)
			continue;
		if (mp_is_number(val) && isfinite(mp_number_as_double(val)))
			continue;
		tgw_pathf(p, "%s.%.*s", path, (int) (k->len > 16 ? 16 : k->len), k->v.s);
		return tgw_check_number(v, val, p, &d);
	}
	return true;
}

/* ====================================================== shared structures */

bool
tgw_check_timestamp(V *v, const MpNode *n, const char *path, TgTimestamp *ts)
{
	char		p[PATH_LEN];
	const MpNode *f;
	int64_t		iv;

	if (n->type != MP_MAP)
		return tgw_err(v, path, "expected a Timestamp map, got %s", tgw_got(n));

	tgw_subpath(p, path, "millis");
	f = mp_map_get(n, "millis");
	if (f == NULL)
		return tgw_err(v, p, "required");
	if (!tgw_check_int(v, f, p, 0, TG_WIRE_MAX_MILLIS, "0..2^53", &iv))
		return false;
	ts->millis = iv;

	tgw_subpath(p, path, "counter");
	f = mp_map_get(n, "counter");
	if (f == NULL)
		return tgw_err(v, p, "required");
	if (!tgw_check_int(v, f, p, 0, TG_WIRE_MAX_COUNTER, "0..2^31-1", &iv))
		return false;
	ts->counter = (uint32_t) iv;

	return tgw_req_str(v, n, path, "nodeId", 1, TG_WIRE_MAX_NODE_BYTES,
				   S_NO_NUL | S_NO_COLON, &ts->node_id);
}

bool
tgw_opt_int(V *v, const MpNode *obj, const char *path, const char *name,
			int64_t min, int64_t max, const char *range_text, bool *has, int64_t *out)
{
	char		p[PATH_LEN];
	const MpNode *n = mp_map_get(obj, name);

	*has = false;
	if (n == NULL)
		return true;
	tgw_subpath(p, path, name);
	if (n->type == MP_NIL)
		return tgw_err(v, p, "must not be null");
	if (!tgw_check_int(v, n, p, min, max, range_text, out))
		return false;
	*has = true;
	return true;
}

/* The value field of a record: any value including nil, but present. */
static bool
req_value(V *v, const MpNode *obj, const char *path, const MpNode **out)
{
	char		p[PATH_LEN];
	const MpNode *n = mp_map_get(obj, "value");

	if (n == NULL)
	{
		tgw_subpath(p, path, "value");
		return tgw_err(v, p, "required (undefined cannot be stored; use null)");
	}
	*out = n;
	return true;
}

/* What LWW and ORMap records share: a map with value and timestamp. */
static bool
check_record_head(V *v, const MpNode *n, const char *path, const char *what,
				  const MpNode **value, TgTimestamp *ts)
{
	char		p[PATH_LEN];
	const MpNode *f;

	if (n->type != MP_MAP)
		return tgw_err(v, path, "expected %s map, got %s", what, tgw_got(n));
	if (!req_value(v, n, path, value))
		return false;
	tgw_subpath(p, path, "timestamp");
	f = mp_map_get(n, "timestamp");
	if (f == NULL)
		return tgw_err(v, p, "required");
	return tgw_check_timestamp(v, f, p, ts);
}

bool
tgw_check_lww_record(V *v, const MpNode *n, const char *path, TgLwwRecord *r)
{
	if (!check_record_head(v, n, path, "a record", &r->value, &r->ts))
		return false;
	return tgw_opt_int(v, n, path, "ttlMs", 1, TG_WIRE_MAX_MILLIS,
					   "1..2^53 (a positive integer)", &r->has_ttl, &r->ttl_ms);
}

bool
tgw_check_or_record(V *v, const MpNode *n, const char *path, TgOrRecord *r)
{
	if (!check_record_head(v, n, path, "an ORMap record", &r->value, &r->ts))
		return false;
	if (!tgw_req_str(v, n, path, "tag", 1, TG_WIRE_MAX_TAG_BYTES, S_NO_NUL, &r->tag))
		return false;
	return tgw_opt_int(v, n, path, "ttlMs", 1, TG_WIRE_MAX_MILLIS,
					   "1..2^53 (a positive integer)", &r->has_ttl, &r->ttl_ms);
}

bool
tgw_opt_write_concern(V *v, const MpNode *obj, const char *path, TgWriteConcern *out)
{
	char		p[PATH_LEN];
	const MpNode *n = mp_map_get(obj, "writeConcern");

	*out = TG_WC_NONE;
	if (n == NULL)
		return true;
	tgw_subpath(p, path, "writeConcern");
	for (int wc = TG_WC_FIRE_AND_FORGET; wc <= TG_WC_PERSISTED; wc++)
	{
		if (mp_str_eq(n, wc_names[wc]))
		{
			*out = (TgWriteConcern) wc;
			return true;
		}
	}
	if (n->type != MP_STR)
		return tgw_err(v, p, "expected a string, got %s", tgw_got(n));
	return tgw_err(v, p, "must be one of FIRE_AND_FORGET, MEMORY, APPLIED, REPLICATED, PERSISTED");
}

bool
tgw_payload(V *v, const MpNode *root, const MpNode **payload)
{
	return tgw_req_node(v, root, "", "payload", MP_MAP, payload);
}

bool
tgw_map_name(V *v, const MpNode *obj, const char *path, TgStr *out)
{
	return tgw_req_str(v, obj, path, "mapName", 1, TG_WIRE_MAX_MAP_BYTES, S_NO_NUL, out);
}

