/*
 * msgpack_json.c — the msgpack → JSON text writer (mp_value_to_json).
 * PostgreSQL-free: see msgpack.h.
 */
#include "wire/msgpack.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* printf-style checking of our own formatting helpers */
#if defined(__GNUC__) || defined(__clang__)
#define tg_printf_attr(f, a) __attribute__((format(printf, f, a)))
#else
#define tg_printf_attr(f, a)
#endif

typedef struct JsonCtx
{
	MpBuf	   *out;
	char	   *err;
	size_t		errlen;
} JsonCtx;

static bool json_fail(JsonCtx *j, const MpNode *n, const char *fmt,...) tg_printf_attr(3, 4);

static bool
json_fail(JsonCtx *j, const MpNode *n, const char *fmt,...)
{
	va_list		ap;
	char		msg[200];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (j->err != NULL && j->errlen > 0)
	{
		if (n != NULL)
			snprintf(j->err, j->errlen, "%s (at offset %u)", msg, n->offset);
		else
			snprintf(j->err, j->errlen, "%s", msg);
	}
	return false;
}

static bool
json_oom(JsonCtx *j)
{
	return json_fail(j, NULL, j->out->oom ? "out of memory writing JSON" :
					 "JSON text exceeds the size limit");
}

static bool
json_string(JsonCtx *j, const MpNode *n, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t		run = 0;

	if (!mp_put_raw(j->out, "\"", 1))
		return json_oom(j);
	for (size_t i = 0; i < len; i++)
	{
		uint8_t		c = (uint8_t) s[i];
		char		esc[7];
		size_t		elen = 0;

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		if (c == 0)
			return json_fail(j, n, "string contains a NUL character, which jsonb cannot store");
		/* flush the plain run before this byte */
		if (!mp_put_raw(j->out, s + run, i - run))
			return json_oom(j);
		esc[0] = '\\';
		switch (c)
		{
			case '"':
				esc[1] = '"';
				elen = 2;
				break;
			case '\\':
				esc[1] = '\\';
				elen = 2;
				break;
			case '\b':
				esc[1] = 'b';
				elen = 2;
				break;
			case '\f':
				esc[1] = 'f';
				elen = 2;
				break;
			case '\n':
				esc[1] = 'n';
				elen = 2;
				break;
			case '\r':
				esc[1] = 'r';
				elen = 2;
				break;
			case '\t':
				esc[1] = 't';
				elen = 2;
				break;
			default:
				esc[1] = 'u';
				esc[2] = '0';
				esc[3] = '0';
				esc[4] = hex[c >> 4];
				esc[5] = hex[c & 15];
				elen = 6;
				break;
		}
		if (!mp_put_raw(j->out, esc, elen))
			return json_oom(j);
		run = i + 1;
	}
	if (!mp_put_raw(j->out, s + run, len - run) || !mp_put_raw(j->out, "\"", 1))
		return json_oom(j);
	return true;
}

#define JSON_MAX_SAFE	INT64_C(9007199254740992)	/* 2^53 */

static bool
json_double(JsonCtx *j, const MpNode *n, double f)
{
	char		tmp[40];

	if (isnan(f))
		return json_fail(j, n, "NaN cannot be stored in JSON");
	if (isinf(f))
		return json_fail(j, n, "Infinity cannot be stored in JSON");
	if (f == 0)
	{
		/* -0 becomes 0, as JSON.stringify does */
		tmp[0] = '0';
		tmp[1] = '\0';
	}
	else
	{
		/* shortest of %.15g/%.16g/%.17g that reads back exactly */
		static const int precs[] = {15, 16, 17};

		for (int k = 0; k < 3; k++)
		{
			snprintf(tmp, sizeof(tmp), "%.*g", precs[k], f);
			if (strtod(tmp, NULL) == f)
				break;
		}
	}
	if (!mp_put_raw(j->out, tmp, strlen(tmp)))
		return json_oom(j);
	return true;
}

static bool
json_value(JsonCtx *j, const MpNode *n, int depth)
{
	char		tmp[40];

	switch (n->type)
	{
		case MP_NIL:
			if (!mp_put_raw(j->out, "null", 4))
				return json_oom(j);
			return true;
		case MP_BOOL:
			if (!(n->v.b ? mp_put_raw(j->out, "true", 4) : mp_put_raw(j->out, "false", 5)))
				return json_oom(j);
			return true;
		case MP_INT:
			if (n->v.i > JSON_MAX_SAFE || n->v.i < -JSON_MAX_SAFE)
				return json_fail(j, n, "integer beyond 2^53");
			snprintf(tmp, sizeof(tmp), "%lld", (long long) n->v.i);
			if (!mp_put_raw(j->out, tmp, strlen(tmp)))
				return json_oom(j);
			return true;
		case MP_UINT:
			return json_fail(j, n, "integer beyond 2^53");
		case MP_FLOAT:
			return json_double(j, n, n->v.f);
		case MP_STR:
			return json_string(j, n, n->v.s, n->len);
		case MP_BIN:
			return json_fail(j, n, "binary data (bin) cannot be stored as JSON");
		case MP_EXT:
			if (n->v.ext.type == -1)
				return json_fail(j, n, "Date values (ext -1) cannot be stored as JSON");
			return json_fail(j, n, "msgpack extension type %d cannot be stored as JSON",
							 (int) n->v.ext.type);
		case MP_UNDEFINED:
			return json_fail(j, n, "undefined cannot be stored as JSON here");
		case MP_ARRAY:
			if (depth >= MP_JSON_MAX_DEPTH)
				return json_fail(j, n, "value nested deeper than %d levels", MP_JSON_MAX_DEPTH);
			if (!mp_put_raw(j->out, "[", 1))
				return json_oom(j);
			for (uint32_t i = 0; i < n->len; i++)
			{
				const MpNode *it = &n->v.items[i];

				if (it->type == MP_UNDEFINED)
					return json_fail(j, it, "undefined inside an array cannot be stored as JSON");
				if (i > 0 && !mp_put_raw(j->out, ",", 1))
					return json_oom(j);
				if (!json_value(j, it, depth + 1))
					return false;
			}
			if (!mp_put_raw(j->out, "]", 1))
				return json_oom(j);
			return true;
		case MP_MAP:
			{
				bool		first = true;

				if (depth >= MP_JSON_MAX_DEPTH)
					return json_fail(j, n, "value nested deeper than %d levels", MP_JSON_MAX_DEPTH);
				if (!mp_put_raw(j->out, "{", 1))
					return json_oom(j);
				for (uint32_t i = 0; i < n->len; i++)
				{
					const MpNode *k = &n->v.kv[2 * i];
					const MpNode *v = &n->v.kv[2 * i + 1];

					if (k->type != MP_STR)
						return json_fail(j, k, "map key of type %s cannot be stored as JSON "
										 "(object keys must be strings)",
										 mp_type_name(k->type));
					/* JSON.stringify drops undefined properties */
					if (v->type == MP_UNDEFINED)
						continue;
					if (!first && !mp_put_raw(j->out, ",", 1))
						return json_oom(j);
					first = false;
					if (!json_string(j, k, k->v.s, k->len))
						return false;
					if (!mp_put_raw(j->out, ":", 1))
						return json_oom(j);
					if (!json_value(j, v, depth + 1))
						return false;
				}
				if (!mp_put_raw(j->out, "}", 1))
					return json_oom(j);
				return true;
			}
	}
	return json_fail(j, n, "unknown value type");
}

bool
mp_value_to_json(const MpNode *v, MpBuf *out, char *err, size_t errlen)
{
	JsonCtx		j;

	j.out = out;
	j.err = err;
	j.errlen = errlen;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (v == NULL)
		return json_fail(&j, NULL, "missing value");
	if (out->failed)
		return json_oom(&j);
	if (!json_value(&j, v, 0))
		return false;
	/* the encoder always keeps one spare byte for this terminator */
	if (!mp_put_raw(out, "", 0))
		return json_oom(&j);
	out->data[out->len] = '\0';
	return true;
}

