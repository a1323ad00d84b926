/*
 * message.c — shape validation of client → server messages.
 *
 * Follows PROTOCOL.md §3.1/§3.2 (the reference server's Zod MessageSchema),
 * with the extra limits PostgreSQL needs (string lengths, no NUL characters
 * in anything that becomes text, integral timestamps).  See message.h.
 */
#include "wire/message.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* printf-style checking of our own formatting helpers */
#if defined(__GNUC__) || defined(__clang__)
#define tg_printf_attr(f, a) __attribute__((format(printf, f, a)))
#else
#define tg_printf_attr(f, a)
#endif

/* Flags for string checks. */
#define S_NO_NUL	0x01		/* becomes PostgreSQL text */
#define S_NO_COLON	0x02		/* nodeId: HLC.parse splits on ':' */
#define S_HEXPATH	0x04		/* Merkle path: lowercase hex digits */

#define PATH_LEN	200

typedef struct V
{
	MpArena    *arena;
	char	   *err;
	size_t		errlen;
	bool		nomem;
} V;

static const char *const msg_type_names[TG_MSG_COUNT_] = {
	[TG_MSG_AUTH] = "AUTH",
	[TG_MSG_PING] = "PING",
	[TG_MSG_OP_BATCH] = "OP_BATCH",
	[TG_MSG_CLIENT_OP] = "CLIENT_OP",
	[TG_MSG_SYNC_INIT] = "SYNC_INIT",
	[TG_MSG_MERKLE_REQ_BUCKET] = "MERKLE_REQ_BUCKET",
	[TG_MSG_ORMAP_SYNC_INIT] = "ORMAP_SYNC_INIT",
	[TG_MSG_ORMAP_MERKLE_REQ_BUCKET] = "ORMAP_MERKLE_REQ_BUCKET",
	[TG_MSG_ORMAP_PUSH_DIFF] = "ORMAP_PUSH_DIFF",
	[TG_MSG_ORMAP_DIFF_REQUEST] = "ORMAP_DIFF_REQUEST",
	[TG_MSG_QUERY_SUB] = "QUERY_SUB",
	[TG_MSG_QUERY_UNSUB] = "QUERY_UNSUB",
	[TG_MSG_TOPIC_SUB] = "TOPIC_SUB",
	[TG_MSG_TOPIC_UNSUB] = "TOPIC_UNSUB",
	[TG_MSG_TOPIC_PUB] = "TOPIC_PUB",
	[TG_MSG_COUNTER_REQUEST] = "COUNTER_REQUEST",
	[TG_MSG_COUNTER_SYNC] = "COUNTER_SYNC",
	[TG_MSG_LOCK_REQUEST] = "LOCK_REQUEST",
	[TG_MSG_LOCK_RELEASE] = "LOCK_RELEASE",
};

const char *
tg_msg_type_name(TgMsgType type)
{
	if ((int) type < 0 || type >= TG_MSG_COUNT_)
		return "UNKNOWN";
	return msg_type_names[type];
}

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

static bool verr(V *v, const char *path, const char *fmt,...) tg_printf_attr(3, 4);

static bool
verr(V *v, const char *path, const char *fmt,...)
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

static bool
vnomem(V *v)
{
	v->nomem = true;
	return verr(v, NULL, "out of memory");
}

/* Format a field path into dst (PATH_LEN bytes); long paths are cut. */
static void pathf(char *dst, const char *fmt,...) tg_printf_attr(2, 3);

static void
pathf(char *dst, const char *fmt,...)
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
static void
subpath(char *dst, const char *path, const char *field)
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
static void
indexpath(char *dst, const char *path, uint32_t i)
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

static const char *
got(const MpNode *n)
{
	return mp_type_name(n->type);
}

/* ======================================================== scalar checks */

static bool
check_str(V *v, const MpNode *n, const char *path, uint32_t minlen,
		  uint32_t maxlen, int flags, TgStr *out)
{
	if (n->type != MP_STR)
		return verr(v, path, "expected a string, got %s", got(n));
	if (n->len < minlen || n->len > maxlen)
	{
		if (minlen == maxlen)
			return verr(v, path, "must be %u bytes long, got %u", minlen, n->len);
		if (n->len < minlen && minlen == 1)
			return verr(v, path, "must not be empty");
		return verr(v, path, "must be %u..%u bytes long, got %u", minlen, maxlen, n->len);
	}
	for (uint32_t i = 0; i < n->len; i++)
	{
		char		c = n->v.s[i];

		if ((flags & S_NO_NUL) && c == '\0')
			return verr(v, path, "must not contain NUL characters");
		if ((flags & S_NO_COLON) && c == ':')
			return verr(v, path, "must not contain ':'");
		if ((flags & S_HEXPATH) && !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return verr(v, path, "must be lowercase hex digits");
	}
	out->p = n->v.s;
	out->len = n->len;
	return true;
}

/* A required string field: absent and undefined are both "required". */
static bool
req_str(V *v, const MpNode *obj, const char *path, const char *name,
		uint32_t minlen, uint32_t maxlen, int flags, TgStr *out)
{
	char		p[PATH_LEN];
	const MpNode *n = mp_map_get(obj, name);

	subpath(p, path, name);
	if (n == NULL)
		return verr(v, p, "required");
	return check_str(v, n, p, minlen, maxlen, flags, out);
}

/* An optional string field; nil is accepted as absent only when nullable. */
static bool
opt_str(V *v, const MpNode *obj, const char *path, const char *name,
		uint32_t minlen, uint32_t maxlen, int flags, bool nullable,
		bool *has, TgStr *out)
{
	char		p[PATH_LEN];
	const MpNode *n = mp_map_get(obj, name);

	*has = false;
	if (n == NULL)
		return true;
	subpath(p, path, name);
	if (n->type == MP_NIL)
	{
		if (nullable)
			return true;
		return verr(v, p, "must not be null");
	}
	if (!check_str(v, n, p, minlen, maxlen, flags, out))
		return false;
	*has = true;
	return true;
}

static bool
check_number(V *v, const MpNode *n, const char *path, double *out)
{
	double		f;

	if (!mp_is_number(n))
		return verr(v, path, "expected a number, got %s", got(n));
	f = mp_number_as_double(n);
	if (!isfinite(f))
		return verr(v, path, "must be a finite number");
	*out = f;
	return true;
}

static bool
req_number(V *v, const MpNode *obj, const char *path, const char *name, double *out)
{
	char		p[PATH_LEN];
	const MpNode *n = mp_map_get(obj, name);

	subpath(p, path, name);
	if (n == NULL)
		return verr(v, p, "required");
	return check_number(v, n, p, out);
}

static bool
opt_number(V *v, const MpNode *obj, const char *path, const char *name,
		   bool *has, double *out)
{
	char		p[PATH_LEN];
	const MpNode *n = mp_map_get(obj, name);

	*has = false;
	if (n == NULL)
		return true;
	subpath(p, path, name);
	if (n->type == MP_NIL)
		return verr(v, p, "must not be null");
	if (!check_number(v, n, p, out))
		return false;
	*has = true;
	return true;
}

/* An integral number in [min, max]; range_text is used in the message. */
static bool
check_int(V *v, const MpNode *n, const char *path, int64_t min, int64_t max,
		  const char *range_text, int64_t *out)
{
	if (!mp_is_number(n))
		return verr(v, path, "expected a number, got %s", got(n));
	if (n->type == MP_FLOAT && !isfinite(n->v.f))
		return verr(v, path, "must be a finite number");
	if (!mp_number_as_int64(n, min, max, out))
		return verr(v, path, "expected an integer in %s", range_text);
	return true;
}

static bool
req_map(V *v, const MpNode *obj, const char *path, const char *name,
		const MpNode **out)
{
	char		p[PATH_LEN];
	const MpNode *n = mp_map_get(obj, name);

	subpath(p, path, name);
	if (n == NULL)
		return verr(v, p, "required");
	if (n->type != MP_MAP)
		return verr(v, p, "expected a map, got %s", got(n));
	*out = n;
	return true;
}

static bool
req_array(V *v, const MpNode *obj, const char *path, const char *name,
		  const MpNode **out)
{
	char		p[PATH_LEN];
	const MpNode *n = mp_map_get(obj, name);

	subpath(p, path, name);
	if (n == NULL)
		return verr(v, p, "required");
	if (n->type != MP_ARRAY)
		return verr(v, p, "expected an array, got %s", got(n));
	*out = n;
	return true;
}

/* Arena array of n elements (NULL allowed for n == 0). */
static void *
varray(V *v, uint32_t n, size_t elsize)
{
	void	   *p;

	if (n == 0)
		return NULL;
	p = mp_arena_alloc(v->arena, (size_t) n * elsize);
	if (p == NULL)
		vnomem(v);
	else
		memset(p, 0, (size_t) n * elsize);
	return p;
}

/* ====================================================== shared structures */

static bool
check_timestamp(V *v, const MpNode *n, const char *path, TgTimestamp *ts)
{
	char		p[PATH_LEN];
	const MpNode *f;
	int64_t		iv;

	if (n->type != MP_MAP)
		return verr(v, path, "expected a Timestamp map, got %s", got(n));

	subpath(p, path, "millis");
	f = mp_map_get(n, "millis");
	if (f == NULL)
		return verr(v, p, "required");
	if (!check_int(v, f, p, 0, TG_WIRE_MAX_MILLIS, "0..2^53", &iv))
		return false;
	ts->millis = iv;

	subpath(p, path, "counter");
	f = mp_map_get(n, "counter");
	if (f == NULL)
		return verr(v, p, "required");
	if (!check_int(v, f, p, 0, TG_WIRE_MAX_COUNTER, "0..2^31-1", &iv))
		return false;
	ts->counter = (uint32_t) iv;

	return req_str(v, n, path, "nodeId", 1, TG_WIRE_MAX_NODE_BYTES,
				   S_NO_NUL | S_NO_COLON, &ts->node_id);
}

static bool
opt_ttl(V *v, const MpNode *obj, const char *path, bool *has, int64_t *out)
{
	char		p[PATH_LEN];
	const MpNode *n = mp_map_get(obj, "ttlMs");

	*has = false;
	if (n == NULL)
		return true;
	subpath(p, path, "ttlMs");
	if (n->type == MP_NIL)
		return verr(v, p, "must not be null");
	if (!check_int(v, n, p, 1, TG_WIRE_MAX_MILLIS, "1..2^53 (a positive integer)", out))
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
		subpath(p, path, "value");
		return verr(v, p, "required (undefined cannot be stored; use null)");
	}
	*out = n;
	return true;
}

static bool
check_lww_record(V *v, const MpNode *n, const char *path, TgLwwRecord *r)
{
	char		p[PATH_LEN];
	const MpNode *ts;

	if (n->type != MP_MAP)
		return verr(v, path, "expected a record map, got %s", got(n));
	if (!req_value(v, n, path, &r->value))
		return false;
	subpath(p, path, "timestamp");
	ts = mp_map_get(n, "timestamp");
	if (ts == NULL)
		return verr(v, p, "required");
	if (!check_timestamp(v, ts, p, &r->ts))
		return false;
	return opt_ttl(v, n, path, &r->has_ttl, &r->ttl_ms);
}

static bool
check_or_record(V *v, const MpNode *n, const char *path, TgOrRecord *r)
{
	char		p[PATH_LEN];
	const MpNode *ts;

	if (n->type != MP_MAP)
		return verr(v, path, "expected an ORMap record map, got %s", got(n));
	if (!req_value(v, n, path, &r->value))
		return false;
	subpath(p, path, "timestamp");
	ts = mp_map_get(n, "timestamp");
	if (ts == NULL)
		return verr(v, p, "required");
	if (!check_timestamp(v, ts, p, &r->ts))
		return false;
	if (!req_str(v, n, path, "tag", 1, TG_WIRE_MAX_TAG_BYTES, S_NO_NUL, &r->tag))
		return false;
	return opt_ttl(v, n, path, &r->has_ttl, &r->ttl_ms);
}

static bool
opt_write_concern(V *v, const MpNode *obj, const char *path, TgWriteConcern *out)
{
	char		p[PATH_LEN];
	const MpNode *n = mp_map_get(obj, "writeConcern");

	*out = TG_WC_NONE;
	if (n == NULL)
		return true;
	subpath(p, path, "writeConcern");
	for (int wc = TG_WC_FIRE_AND_FORGET; wc <= TG_WC_PERSISTED; wc++)
	{
		if (mp_str_eq(n, wc_names[wc]))
		{
			*out = (TgWriteConcern) wc;
			return true;
		}
	}
	if (n->type != MP_STR)
		return verr(v, p, "expected a string, got %s", got(n));
	return verr(v, p, "must be one of FIRE_AND_FORGET, MEMORY, APPLIED, REPLICATED, PERSISTED");
}

/* ================================================================= ops */

/* Validate one ClientOp; errors land in v->err.  path is the op's own path. */
static bool
check_op_fields(V *v, const MpNode *n, const char *path, TgOp *op)
{
	char		p[PATH_LEN];
	const MpNode *f;

	if (n->type != MP_MAP)
		return verr(v, path, "expected an op map, got %s", got(n));

	if (!req_str(v, n, path, "mapName", 1, TG_WIRE_MAX_MAP_BYTES, S_NO_NUL, &op->map_name))
		return false;
	if (!req_str(v, n, path, "key", 0, TG_WIRE_MAX_KEY_BYTES, S_NO_NUL, &op->key))
		return false;
	if (!opt_str(v, n, path, "opType", 0, UINT32_MAX, 0, false,
				 &op->has_op_type, &op->op_type_str))
		return false;
	op->op_type = TG_OP_LWW;
	if (op->has_op_type)
	{
		if (tg_str_eq(op->op_type_str, "PUT"))
			op->op_type = TG_OP_PUT;
		else if (tg_str_eq(op->op_type_str, "REMOVE"))
			op->op_type = TG_OP_REMOVE;
		else if (tg_str_eq(op->op_type_str, "OR_ADD"))
			op->op_type = TG_OP_OR_ADD;
		else if (tg_str_eq(op->op_type_str, "OR_REMOVE"))
			op->op_type = TG_OP_OR_REMOVE;
	}

	/* record / orRecord / orTag are .nullable().optional() */
	f = mp_map_get(n, "record");
	if (f != NULL && f->type != MP_NIL)
	{
		subpath(p, path, "record");
		if (!check_lww_record(v, f, p, &op->record))
			return false;
		op->has_record = true;
	}
	f = mp_map_get(n, "orRecord");
	if (f != NULL && f->type != MP_NIL)
	{
		subpath(p, path, "orRecord");
		if (!check_or_record(v, f, p, &op->or_record))
			return false;
		op->has_or_record = true;
	}
	if (!opt_str(v, n, path, "orTag", 1, TG_WIRE_MAX_TAG_BYTES, S_NO_NUL, true,
				 &op->has_or_tag, &op->or_tag))
		return false;
	if (!opt_write_concern(v, n, path, &op->write_concern))
		return false;
	if (!opt_number(v, n, path, "timeout", &op->has_timeout, &op->timeout))
		return false;

	switch (op->op_type)
	{
		case TG_OP_OR_ADD:
			if (!op->has_or_record)
			{
				subpath(p, path, "orRecord");
				return verr(v, p, "required for opType OR_ADD");
			}
			break;
		case TG_OP_OR_REMOVE:
			if (!op->has_or_tag)
			{
				subpath(p, path, "orTag");
				return verr(v, p, "required for opType OR_REMOVE");
			}
			break;
		default:
			if (!op->has_record)
			{
				subpath(p, path, "record");
				if (op->has_op_type)
					return verr(v, p, "required for opType %.*s",
								(int) (op->op_type_str.len > 32 ? 32 : op->op_type_str.len),
								op->op_type_str.p);
				return verr(v, p, "required for an LWW op");
			}
			break;
	}
	return true;
}

/*
 * Validate one op in isolation.  A malformed op is marked invalid with its
 * own error text; false is returned only when memory ran out.
 */
static bool
check_op(V *outer, const MpNode *n, TgOp *op)
{
	char		errbuf[320];
	V			v;
	const MpNode *idn;

	memset(op, 0, sizeof(*op));
	v.arena = outer->arena;
	v.err = errbuf;
	v.errlen = sizeof(errbuf);
	v.nomem = false;
	errbuf[0] = '\0';

	/* The id first, so that even an invalid op can be named in the ack. */
	idn = mp_map_get(n, "id");
	if (n->type == MP_MAP && idn != NULL && idn->type == MP_STR &&
		idn->len <= TG_WIRE_MAX_ID_BYTES && memchr(idn->v.s, '\0', idn->len) == NULL)
	{
		op->has_id = true;
		op->id.p = idn->v.s;
		op->id.len = idn->len;
	}
	else if (idn != NULL)
	{
		if (idn->type != MP_STR)
			verr(&v, "id", "expected a string, got %s", got(idn));
		else if (idn->len > TG_WIRE_MAX_ID_BYTES)
			verr(&v, "id", "must be 0..%u bytes long, got %u", TG_WIRE_MAX_ID_BYTES, idn->len);
		else
			verr(&v, "id", "must not contain NUL characters");
		goto invalid;
	}

	if (check_op_fields(&v, n, "", op))
	{
		op->valid = true;
		op->error = NULL;
		return true;
	}
	if (v.nomem)
		return vnomem(outer);

invalid:
	{
		bool		has_id = op->has_id;
		TgStr		id = op->id;

		/* forget half-filled fields so nobody uses them by mistake */
		memset(op, 0, sizeof(*op));
		op->has_id = has_id;
		op->id = id;
		op->valid = false;
		op->error = mp_arena_strndup(outer->arena, errbuf, strlen(errbuf));
		if (op->error == NULL)
			return vnomem(outer);
	}
	return true;
}

/* ============================================================ messages */

static bool
get_payload(V *v, const MpNode *root, const MpNode **payload)
{
	return req_map(v, root, "", "payload", payload);
}

static bool
check_map_name(V *v, const MpNode *obj, const char *path, TgStr *out)
{
	return req_str(v, obj, path, "mapName", 1, TG_WIRE_MAX_MAP_BYTES, S_NO_NUL, out);
}

static bool
parse_op_batch(V *v, const MpNode *root, TgMessage *msg)
{
	const MpNode *payload;
	const MpNode *ops;

	if (!get_payload(v, root, &payload))
		return false;
	if (!req_array(v, payload, "payload", "ops", &ops))
		return false;
	if (!opt_write_concern(v, payload, "payload", &msg->u.op_batch.write_concern))
		return false;
	if (!opt_number(v, payload, "payload", "timeout",
					&msg->u.op_batch.has_timeout, &msg->u.op_batch.timeout))
		return false;
	msg->u.op_batch.n_ops = ops->len;
	msg->u.op_batch.ops = varray(v, ops->len, sizeof(TgOp));
	if (ops->len > 0 && msg->u.op_batch.ops == NULL)
		return false;
	for (uint32_t i = 0; i < ops->len; i++)
	{
		TgOp	   *op = &msg->u.op_batch.ops[i];

		if (!check_op(v, &ops->v.items[i], op))
			return false;
		if (!op->valid)
			msg->u.op_batch.n_invalid++;
	}
	return true;
}

static bool
parse_client_op(V *v, const MpNode *root, TgMessage *msg)
{
	const MpNode *payload;

	if (!get_payload(v, root, &payload))
		return false;
	return check_op(v, payload, &msg->u.client_op.op);
}

static bool
parse_bucket_req(V *v, const MpNode *root, TgMessage *msg)
{
	const MpNode *payload;

	if (!get_payload(v, root, &payload))
		return false;
	if (!check_map_name(v, payload, "payload", &msg->u.bucket_req.map_name))
		return false;
	return req_str(v, payload, "payload", "path", 0, 3, S_HEXPATH, &msg->u.bucket_req.path);
}

static bool
parse_ormap_sync_init(V *v, const MpNode *root, TgMessage *msg)
{
	const MpNode *bh;

	if (!check_map_name(v, root, "", &msg->u.ormap_sync_init.map_name))
		return false;
	if (!req_number(v, root, "", "rootHash", &msg->u.ormap_sync_init.root_hash))
		return false;
	if (!req_map(v, root, "", "bucketHashes", &bh))
		return false;
	for (uint32_t i = 0; i < bh->len; i++)
	{
		const MpNode *k = &bh->v.kv[2 * i];
		const MpNode *val = &bh->v.kv[2 * i + 1];
		char		p[PATH_LEN];
		double		d;

		if (k->type != MP_STR)
			return verr(v, "bucketHashes", "keys must be strings, got %s", got(k));
		if (val->type == MP_UNDEFINED)
			continue;
		if (mp_is_number(val) && isfinite(mp_number_as_double(val)))
			continue;
		pathf(p, "bucketHashes.%.*s", (int) (k->len > 16 ? 16 : k->len), k->v.s);
		return check_number(v, val, p, &d);
	}
	msg->u.ormap_sync_init.bucket_hashes = bh;
	return opt_number(v, root, "", "lastSyncTimestamp",
					  &msg->u.ormap_sync_init.has_last_sync,
					  &msg->u.ormap_sync_init.last_sync);
}

static bool
parse_ormap_push_diff(V *v, const MpNode *root, TgMessage *msg)
{
	const MpNode *payload;
	const MpNode *entries;

	if (!get_payload(v, root, &payload))
		return false;
	if (!check_map_name(v, payload, "payload", &msg->u.ormap_push_diff.map_name))
		return false;
	if (!req_array(v, payload, "payload", "entries", &entries))
		return false;
	msg->u.ormap_push_diff.n_entries = entries->len;
	msg->u.ormap_push_diff.entries = varray(v, entries->len, sizeof(TgOrEntry));
	if (entries->len > 0 && msg->u.ormap_push_diff.entries == NULL)
		return false;
	for (uint32_t i = 0; i < entries->len; i++)
	{
		const MpNode *e = &entries->v.items[i];
		TgOrEntry  *out = &msg->u.ormap_push_diff.entries[i];
		const MpNode *records;
		const MpNode *tombs;
		char		p[PATH_LEN];

		indexpath(p, "payload.entries", i);
		if (e->type != MP_MAP)
			return verr(v, p, "expected a map, got %s", got(e));
		if (!req_str(v, e, p, "key", 0, TG_WIRE_MAX_KEY_BYTES, S_NO_NUL, &out->key))
			return false;
		if (!req_array(v, e, p, "records", &records))
			return false;
		if (!req_array(v, e, p, "tombstones", &tombs))
			return false;
		out->n_records = records->len;
		out->records = varray(v, records->len, sizeof(TgOrRecord));
		if (records->len > 0 && out->records == NULL)
			return false;
		for (uint32_t j = 0; j < records->len; j++)
		{
			char		rp[PATH_LEN];

			subpath(rp, p, "records");
			indexpath(rp, rp, j);
			if (!check_or_record(v, &records->v.items[j], rp, &out->records[j]))
				return false;
		}
		out->n_tombstones = tombs->len;
		out->tombstones = varray(v, tombs->len, sizeof(TgStr));
		if (tombs->len > 0 && out->tombstones == NULL)
			return false;
		for (uint32_t j = 0; j < tombs->len; j++)
		{
			char		tp[PATH_LEN];

			subpath(tp, p, "tombstones");
			indexpath(tp, tp, j);
			if (!check_str(v, &tombs->v.items[j], tp, 1, TG_WIRE_MAX_TAG_BYTES,
						   S_NO_NUL, &out->tombstones[j]))
				return false;
		}
	}
	return true;
}

static bool
parse_ormap_diff_request(V *v, const MpNode *root, TgMessage *msg)
{
	const MpNode *payload;
	const MpNode *keys;

	if (!get_payload(v, root, &payload))
		return false;
	if (!check_map_name(v, payload, "payload", &msg->u.ormap_diff_request.map_name))
		return false;
	if (!req_array(v, payload, "payload", "keys", &keys))
		return false;
	msg->u.ormap_diff_request.n_keys = keys->len;
	msg->u.ormap_diff_request.keys = varray(v, keys->len, sizeof(TgStr));
	if (keys->len > 0 && msg->u.ormap_diff_request.keys == NULL)
		return false;
	for (uint32_t i = 0; i < keys->len; i++)
	{
		char		p[PATH_LEN];

		indexpath(p, "payload.keys", i);
		if (!check_str(v, &keys->v.items[i], p, 0, TG_WIRE_MAX_KEY_BYTES, S_NO_NUL,
					   &msg->u.ormap_diff_request.keys[i]))
			return false;
	}
	return true;
}

/* ----------------------------------------------------------- queries */

static const char *const pred_ops[] = {
	"eq", "neq", "gt", "gte", "lt", "lte", "like", "regex", "and", "or", "not"
};

static bool
check_predicate(V *v, const MpNode *n, const char *path)
{
	const MpNode *op;
	const MpNode *f;
	bool		known = false;
	char		p[PATH_LEN];

	if (n->type != MP_MAP)
		return verr(v, path, "expected a predicate map, got %s", got(n));
	subpath(p, path, "op");
	op = mp_map_get(n, "op");
	if (op == NULL)
		return verr(v, p, "required");
	if (op->type != MP_STR)
		return verr(v, p, "expected a string, got %s", got(op));
	for (size_t i = 0; i < sizeof(pred_ops) / sizeof(pred_ops[0]); i++)
		if (mp_str_eq(op, pred_ops[i]))
			known = true;
	if (!known)
		return verr(v, p, "unsupported predicate operator '%.*s'",
					(int) (op->len > 32 ? 32 : op->len), op->v.s);

	f = mp_map_get(n, "attribute");
	if (f != NULL)
	{
		TgStr		dummy;

		subpath(p, path, "attribute");
		if (!check_str(v, f, p, 0, UINT32_MAX, 0, &dummy))
			return false;
	}
	f = mp_map_get(n, "children");
	if (f != NULL)
	{
		subpath(p, path, "children");
		if (f->type != MP_ARRAY)
			return verr(v, p, "expected an array, got %s", got(f));
		for (uint32_t i = 0; i < f->len; i++)
		{
			char		cp[PATH_LEN];

			indexpath(cp, p, i);
			if (!check_predicate(v, &f->v.items[i], cp))
				return false;
		}
	}
	return true;
}

static bool
check_query(V *v, const MpNode *q, const char *path)
{
	const MpNode *f;
	char		p[PATH_LEN];

	f = mp_map_get(q, "where");
	if (f != NULL)
	{
		subpath(p, path, "where");
		if (f->type != MP_MAP)
			return verr(v, p, "expected a map, got %s", got(f));
		for (uint32_t i = 0; i < f->len; i++)
			if (f->v.kv[2 * i].type != MP_STR)
				return verr(v, p, "keys must be strings, got %s", got(&f->v.kv[2 * i]));
	}
	f = mp_map_get(q, "predicate");
	if (f != NULL)
	{
		subpath(p, path, "predicate");
		if (!check_predicate(v, f, p))
			return false;
	}
	f = mp_map_get(q, "sort");
	if (f != NULL)
	{
		subpath(p, path, "sort");
		if (f->type != MP_MAP)
			return verr(v, p, "expected a map, got %s", got(f));
		for (uint32_t i = 0; i < f->len; i++)
		{
			const MpNode *k = &f->v.kv[2 * i];
			const MpNode *dir = &f->v.kv[2 * i + 1];

			if (k->type != MP_STR)
				return verr(v, p, "keys must be strings, got %s", got(k));
			if (dir->type == MP_UNDEFINED)
				continue;
			if (!mp_str_eq(dir, "asc") && !mp_str_eq(dir, "desc"))
				return verr(v, p, "direction of '%.*s' must be 'asc' or 'desc'",
							(int) (k->len > 32 ? 32 : k->len), k->v.s);
		}
	}
	{
		bool		has;
		double		limit;

		if (!opt_number(v, q, path, "limit", &has, &limit))
			return false;
	}
	{
		bool		has;
		TgStr		cursor;

		if (!opt_str(v, q, path, "cursor", 0, UINT32_MAX, 0, false, &has, &cursor))
			return false;
	}
	return true;
}

static bool
parse_query_sub(V *v, const MpNode *root, TgMessage *msg)
{
	const MpNode *payload;
	const MpNode *query;

	if (!get_payload(v, root, &payload))
		return false;
	if (!req_str(v, payload, "payload", "queryId", 0, TG_WIRE_MAX_ID_BYTES, S_NO_NUL,
				 &msg->u.query_sub.query_id))
		return false;
	if (!check_map_name(v, payload, "payload", &msg->u.query_sub.map_name))
		return false;
	if (!req_map(v, payload, "payload", "query", &query))
		return false;
	if (!check_query(v, query, "payload.query"))
		return false;
	msg->u.query_sub.query = query;
	return true;
}

/* ---------------------------------------------------------- counters */

static bool
parse_counter_parts(V *v, const MpNode *state, const char *path, const char *name,
					uint32_t *n_out, TgCounterPart **out)
{
	const MpNode *m;
	char		p[PATH_LEN];
	uint32_t	n = 0;

	if (!req_map(v, state, path, name, &m))
		return false;
	subpath(p, path, name);
	*out = varray(v, m->len, sizeof(TgCounterPart));
	if (m->len > 0 && *out == NULL)
		return false;
	for (uint32_t i = 0; i < m->len; i++)
	{
		const MpNode *k = &m->v.kv[2 * i];
		const MpNode *val = &m->v.kv[2 * i + 1];
		TgCounterPart *part = &(*out)[n];
		char		vp[PATH_LEN];

		if (val->type == MP_UNDEFINED)
			continue;
		if (!check_str(v, k, p, 1, TG_WIRE_MAX_ID_BYTES, S_NO_NUL, &part->node_id))
			return false;
		pathf(vp, "%s.%.*s", p, (int) (k->len > 64 ? 64 : k->len), k->v.s);
		if (!check_int(v, val, vp, 0, TG_WIRE_MAX_MILLIS, "0..2^53", &part->value))
			return false;
		n++;
	}
	*n_out = n;
	return true;
}

static bool
parse_counter_sync(V *v, const MpNode *root, TgMessage *msg)
{
	const MpNode *payload;
	const MpNode *state;
	bool		client_shape;

	if (!get_payload(v, root, &payload))
		return false;
	if (!req_str(v, payload, "payload", "name", 1, TG_WIRE_MAX_ID_BYTES, S_NO_NUL,
				 &msg->u.counter_sync.name))
		return false;
	if (!req_map(v, payload, "payload", "state", &state))
		return false;
	if (mp_map_get(state, "p") != NULL || mp_map_get(state, "n") != NULL)
		client_shape = false;
	else if (mp_map_get(state, "positive") != NULL || mp_map_get(state, "negative") != NULL)
		client_shape = true;
	else
		return verr(v, "payload.state", "expected {p, n} or {positive, negative}");
	msg->u.counter_sync.client_shape = client_shape;
	if (!parse_counter_parts(v, state, "payload.state", client_shape ? "positive" : "p",
							 &msg->u.counter_sync.n_p, &msg->u.counter_sync.p))
		return false;
	return parse_counter_parts(v, state, "payload.state", client_shape ? "negative" : "n",
							   &msg->u.counter_sync.n_n, &msg->u.counter_sync.n);
}

/* ------------------------------------------------------------- other */

static bool
parse_by_type(V *v, const MpNode *root, TgMessage *msg)
{
	const MpNode *payload;

	switch (msg->type)
	{
		case TG_MSG_AUTH:
			return req_str(v, root, "", "token", 0, UINT32_MAX, S_NO_NUL, &msg->u.auth.token);
		case TG_MSG_PING:
			return req_number(v, root, "", "timestamp", &msg->u.ping.timestamp);
		case TG_MSG_OP_BATCH:
			return parse_op_batch(v, root, msg);
		case TG_MSG_CLIENT_OP:
			return parse_client_op(v, root, msg);
		case TG_MSG_SYNC_INIT:
			if (!check_map_name(v, root, "", &msg->u.sync_init.map_name))
				return false;
			return opt_number(v, root, "", "lastSyncTimestamp",
							  &msg->u.sync_init.has_last_sync,
							  &msg->u.sync_init.last_sync);
		case TG_MSG_MERKLE_REQ_BUCKET:
		case TG_MSG_ORMAP_MERKLE_REQ_BUCKET:
			return parse_bucket_req(v, root, msg);
		case TG_MSG_ORMAP_SYNC_INIT:
			return parse_ormap_sync_init(v, root, msg);
		case TG_MSG_ORMAP_PUSH_DIFF:
			return parse_ormap_push_diff(v, root, msg);
		case TG_MSG_ORMAP_DIFF_REQUEST:
			return parse_ormap_diff_request(v, root, msg);
		case TG_MSG_QUERY_SUB:
			return parse_query_sub(v, root, msg);
		case TG_MSG_QUERY_UNSUB:
			if (!get_payload(v, root, &payload))
				return false;
			return req_str(v, payload, "payload", "queryId", 0, TG_WIRE_MAX_ID_BYTES,
						   S_NO_NUL, &msg->u.query_unsub.query_id);
		case TG_MSG_TOPIC_SUB:
		case TG_MSG_TOPIC_UNSUB:
		case TG_MSG_TOPIC_PUB:
			if (!get_payload(v, root, &payload))
				return false;
			if (!req_str(v, payload, "payload", "topic", 1, TG_WIRE_MAX_ID_BYTES,
						 S_NO_NUL, &msg->u.topic.topic))
				return false;
			if (msg->type == TG_MSG_TOPIC_PUB)
				msg->u.topic.data = mp_map_get(payload, "data");
			return true;
		case TG_MSG_COUNTER_REQUEST:
			if (!get_payload(v, root, &payload))
				return false;
			return req_str(v, payload, "payload", "name", 1, TG_WIRE_MAX_ID_BYTES,
						   S_NO_NUL, &msg->u.counter_request.name);
		case TG_MSG_COUNTER_SYNC:
			return parse_counter_sync(v, root, msg);
		case TG_MSG_LOCK_REQUEST:
			if (!get_payload(v, root, &payload))
				return false;
			if (!req_str(v, payload, "payload", "requestId", 0, TG_WIRE_MAX_ID_BYTES,
						 S_NO_NUL, &msg->u.lock_request.request_id))
				return false;
			if (!req_str(v, payload, "payload", "name", 1, TG_WIRE_MAX_ID_BYTES,
						 S_NO_NUL, &msg->u.lock_request.name))
				return false;
			return opt_number(v, payload, "payload", "ttl",
							  &msg->u.lock_request.has_ttl, &msg->u.lock_request.ttl);
		case TG_MSG_LOCK_RELEASE:
			if (!get_payload(v, root, &payload))
				return false;
			if (!opt_str(v, payload, "payload", "requestId", 0, TG_WIRE_MAX_ID_BYTES,
						 S_NO_NUL, false, &msg->u.lock_release.has_request_id,
						 &msg->u.lock_release.request_id))
				return false;
			if (!req_str(v, payload, "payload", "name", 1, TG_WIRE_MAX_ID_BYTES,
						 S_NO_NUL, &msg->u.lock_release.name))
				return false;
			return req_number(v, payload, "payload", "fencingToken",
							  &msg->u.lock_release.fencing_token);
		case TG_MSG_COUNT_:
			break;
	}
	return verr(v, NULL, "internal error: unhandled message type");
}

TgParseResult
tg_message_parse(const uint8_t *data, size_t len, const MpLimits *limits,
				 TgMessage *msg, char *err, size_t errlen)
{
	MpLimits	deflim;
	const MpNode *root;
	const MpNode *type;
	V			v;

	memset(msg, 0, sizeof(*msg));
	mp_arena_init(&msg->arena);
	if (err != NULL && errlen > 0)
		err[0] = '\0';

	if (limits == NULL)
	{
		deflim.max_depth = 32;
		deflim.max_nodes = len > UINT32_MAX - 1 ? UINT32_MAX : (uint32_t) len + 1;
		deflim.max_str = len > UINT32_MAX ? UINT32_MAX : (uint32_t) len;
		limits = &deflim;
	}

	root = mp_decode(&msg->arena, data, len, limits, err, errlen);
	if (root == NULL)
	{
		if (err != NULL && strncmp(err, "out of memory", 13) == 0)
			return TG_PARSE_NOMEM;
		return TG_PARSE_DECODE_ERROR;
	}
	msg->root = root;

	v.arena = &msg->arena;
	v.err = err;
	v.errlen = errlen;
	v.nomem = false;

	if (root->type != MP_MAP)
	{
		verr(&v, NULL, "message must be a map, got %s", got(root));
		return TG_PARSE_INVALID;
	}
	type = mp_map_get(root, "type");
	if (type == NULL)
	{
		verr(&v, "type", "required");
		return TG_PARSE_INVALID;
	}
	if (type->type != MP_STR)
	{
		verr(&v, "type", "expected a string, got %s", got(type));
		return TG_PARSE_INVALID;
	}
	for (int t = 0; t < TG_MSG_COUNT_; t++)
	{
		if (mp_str_eq(type, msg_type_names[t]))
		{
			msg->type = (TgMsgType) t;
			if (parse_by_type(&v, root, msg))
				return TG_PARSE_OK;
			return v.nomem ? TG_PARSE_NOMEM : TG_PARSE_INVALID;
		}
	}

	/* Unknown type: quote it, cut at a character boundary, no controls. */
	{
		char		shown[68];
		uint32_t	n = type->len;
		uint32_t	o = 0;

		if (n > 64)
		{
			n = 64;
			while (n > 0 && ((uint8_t) type->v.s[n] & 0xC0) == 0x80)
				n--;
		}
		for (uint32_t i = 0; i < n; i++)
		{
			uint8_t		c = (uint8_t) type->v.s[i];

			shown[o++] = (c < 0x20 || c == 0x7f) ? '?' : (char) c;
		}
		shown[o] = '\0';
		verr(&v, NULL, "unknown message type %s%s", shown, type->len > n ? "..." : "");
	}
	return TG_PARSE_INVALID;
}

void
tg_message_free(TgMessage *msg)
{
	mp_arena_free(&msg->arena);
	msg->root = NULL;
}
