/*
 * value_jsonb.c — a client's value (msgpack) straight to jsonb, without the
 * JSON text and jsonb_in's parse of it (that round trip was ~9 % of the
 * session executor's ingest CPU).
 *
 * The result is exactly what mp_value_to_json() + jsonb_in store: numbers
 * through numeric_in of the same text (integers as %lld, floats as the
 * shortest %.15g/%.16g/%.17g that reads back, -0 as 0), strings as they are
 * (the decoder already checked their UTF-8), undefined properties dropped,
 * duplicate keys resolved by pushJsonbValue as jsonb_in resolves them.
 * Whatever mp_value_to_json() refuses — NaN, ±Infinity, integers beyond
 * 2^53, bin, ext, undefined in an array or on its own, non-string keys, NUL
 * in a string, nesting of MP_JSON_MAX_DEPTH levels, a JSON text over the
 * caller's limit — is declined here (NULL), and the caller takes the text
 * path, which reports the refusal with its own message.
 */
#include "postgres.h"

#include <math.h>

#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "exec/apply.h"
#include "wire/msgpack.h"

#define JSON_MAX_SAFE	INT64_C(9007199254740992)	/* 2^53, as msgpack_json.c */

typedef struct Ctx
{
	JsonbParseState *st;
	JsonbValue *res;			/* the outermost container, once closed */
	size_t		text_len;		/* length of the JSON text mp_value_to_json writes */
	size_t		text_max;
} Ctx;

static bool
add_text(Ctx *c, size_t n)
{
	c->text_len += n;
	return c->text_len <= c->text_max;
}

/* The JSON text of a string: its bytes, quotes and escapes (json_string). */
static bool
string_ok(Ctx *c, const char *s, size_t len)
{
	size_t		n = len + 2;

	for (size_t i = 0; i < len; i++)
	{
		uint8_t		ch = (uint8_t) s[i];

		if (ch >= 0x20 && ch != '"' && ch != '\\')
			continue;
		if (ch == 0)
			return false;
		n += (ch == '"' || ch == '\\' || ch == '\b' || ch == '\f' || ch == '\n' || ch == '\r' || ch == '\t')
			? 1 : 5;
	}
	return add_text(c, n);
}

static Numeric
number(Ctx *c, const char *txt)
{
	if (!add_text(c, strlen(txt)))
		return NULL;
	return DatumGetNumeric(DirectFunctionCall3(numeric_in, CStringGetDatum(txt),
											   ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
}

/* A scalar as jsonb_in would hold it; false: declined. */
static bool
scalar(Ctx *c, const MpNode *n, JsonbValue *out)
{
	char		tmp[40];

	switch (n->type)
	{
		case MP_NIL:
			out->type = jbvNull;
			return add_text(c, 4);
		case MP_BOOL:
			out->type = jbvBool;
			out->val.boolean = n->v.b;
			return add_text(c, n->v.b ? 4 : 5);
		case MP_INT:
			if (n->v.i > JSON_MAX_SAFE || n->v.i < -JSON_MAX_SAFE)
				return false;
			snprintf(tmp, sizeof(tmp), "%lld", (long long) n->v.i);
			out->type = jbvNumeric;
			return (out->val.numeric = number(c, tmp)) != NULL;
		case MP_FLOAT:
			if (isnan(n->v.f) || isinf(n->v.f))
				return false;
			if (n->v.f == 0)
				strcpy(tmp, "0");
			else
			{
				static const int precs[] = {15, 16, 17};

				for (int k = 0; k < 3; k++)
				{
					snprintf(tmp, sizeof(tmp), "%.*g", precs[k], n->v.f);
					if (strtod(tmp, NULL) == n->v.f)
						break;
				}
			}
			out->type = jbvNumeric;
			return (out->val.numeric = number(c, tmp)) != NULL;
		case MP_STR:
			if (!string_ok(c, n->v.s, n->len))
				return false;
			out->type = jbvString;
			out->val.string.val = (char *) n->v.s;
			out->val.string.len = (int) n->len;
			return true;
		default:
			return false;		/* bin, ext, undefined, uint beyond 2^53 */
	}
}

static bool
value(Ctx *c, const MpNode *n, int depth, JsonbIteratorToken as)
{
	JsonbValue	v;

	if (n->type == MP_ARRAY)
	{
		if (depth >= MP_JSON_MAX_DEPTH || !add_text(c, 2 + (n->len > 0 ? n->len - 1 : 0)))
			return false;
		pushJsonbValue(&c->st, WJB_BEGIN_ARRAY, NULL);
		for (uint32_t i = 0; i < n->len; i++)
			if (n->v.items[i].type == MP_UNDEFINED || !value(c, &n->v.items[i], depth + 1, WJB_ELEM))
				return false;
		c->res = pushJsonbValue(&c->st, WJB_END_ARRAY, NULL);
		return true;
	}
	if (n->type == MP_MAP)
	{
		uint32_t	kept = 0;

		if (depth >= MP_JSON_MAX_DEPTH)
			return false;
		pushJsonbValue(&c->st, WJB_BEGIN_OBJECT, NULL);
		for (uint32_t i = 0; i < n->len; i++)
		{
			const MpNode *k = &n->v.kv[2 * i];
			const MpNode *x = &n->v.kv[2 * i + 1];
			JsonbValue	kv;

			if (k->type != MP_STR)
				return false;
			if (x->type == MP_UNDEFINED)
				continue;		/* JSON.stringify drops undefined properties */
			if (!string_ok(c, k->v.s, k->len) || !add_text(c, 1))	/* the key and ':' */
				return false;
			kv.type = jbvString;
			kv.val.string.val = (char *) k->v.s;
			kv.val.string.len = (int) k->len;
			pushJsonbValue(&c->st, WJB_KEY, &kv);
			if (!value(c, x, depth + 1, WJB_VALUE))
				return false;
			kept++;
		}
		if (!add_text(c, 2 + (kept > 0 ? kept - 1 : 0)))
			return false;
		c->res = pushJsonbValue(&c->st, WJB_END_OBJECT, NULL);
		return true;
	}
	if (!scalar(c, n, &v))
		return false;
	pushJsonbValue(&c->st, as, &v);
	return true;
}

Jsonb *
tg_value_jsonb(const MpNode *n, size_t max_text)
{
	Ctx			c;
	JsonbValue	v;

	c.st = NULL;
	c.res = NULL;
	c.text_len = 0;
	/* a margin below the text path's buffer, which then decides exactly */
	c.text_max = max_text > 64 ? max_text - 64 : 0;
	if (n == NULL)
		return NULL;
	if (n->type != MP_ARRAY && n->type != MP_MAP)
		return scalar(&c, n, &v) ? JsonbValueToJsonb(&v) : NULL;
	if (!value(&c, n, 0, WJB_VALUE) || c.res == NULL)
		return NULL;			/* what was built is garbage of the caller's context */
	return JsonbValueToJsonb(c.res);
}
