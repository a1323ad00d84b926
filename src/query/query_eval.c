/*
 * query_eval.c — evaluate a compiled TgQuery: match, sort order, limit,
 * hash, equality constraint, and opaque keyset cursors.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query/query_internal.h"

/* ------------------------------------------------------------ evaluate */

static bool
eval(const QNode *n, const MpNode *data)
{
	const MpNode *v;
	int			c;

	switch (n->op)
	{
		case Q_TRUE:
			return true;
		case Q_FALSE:
			return false;
		case Q_AND:
			for (int i = 0; i < n->nchildren; i++)
				if (!eval(n->children[i], data))
					return false;
			return true;
		case Q_OR:
			for (int i = 0; i < n->nchildren; i++)
				if (eval(n->children[i], data))
					return true;
			return false;
		case Q_NOT:
			return n->nchildren == 0 ? true : !eval(n->children[0], data);
		default:
			break;
	}
	v = tgq_get_attr(data, n->attr, n->attrlen);
	switch (n->op)
	{
		case Q_EQ:
			return tgq_strict_eq(v, n->value);
		case Q_NEQ:
			return !tgq_strict_eq(v, n->value);
		case Q_LIKE:
		case Q_REGEX:
			return v != NULL && v->type == MP_STR && tg_regex_test(n->re, v->v.s, v->len);
		default:
			c = tgq_js_compare(v, n->value);
			if (c == 2)
				return false;
			switch (n->op)
			{
				case Q_GT:
					return c > 0;
				case Q_GTE:
					return c >= 0;
				case Q_LT:
					return c < 0;
				default:
					return c <= 0;
			}
	}
}

bool
tg_query_match(const TgQuery *q, const MpNode *value)
{
	if (value != NULL && (value->type == MP_NIL || value->type == MP_UNDEFINED))
		return false;			/* tombstones never match */
	return tg_query_match_value(q, value);
}

/* tg_query_match for a value that is never a tombstone: an OR-map value (null included). */
bool
tg_query_match_value(const TgQuery *q, const MpNode *value)
{
	if (value == NULL)
		return false;
	return q->root == NULL || eval(q->root, value);
}

/*
 * An OR-map key's values (docs/live.md "OR maps"): the key matches when one
 * of its values does, and sorts where the first of its matching values (in
 * the query's order) would.  Returns that value, or NULL when none matches
 * (or values is not an array).
 */
const MpNode *
tg_query_or_pick(const TgQuery *q, const MpNode *values)
{
	const MpNode *best = NULL;

	if (values == NULL || values->type != MP_ARRAY)
		return NULL;
	for (uint32_t i = 0; i < values->len; i++)
	{
		const MpNode *v = &values->v.items[i];

		if (!tg_query_match_value(q, v))
			continue;
		if (best == NULL || tg_query_compare(q, "", 0, v, "", 0, best) < 0)
			best = v;
	}
	return best;
}

static int
key_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	return tgq_utf16_cmp(a, alen, b, blen);
}

int
tg_query_compare(const TgQuery *q, const char *ka, size_t kalen, const MpNode *a,
				 const char *kb, size_t kblen, const MpNode *b)
{
	for (int i = 0; i < q->nsort; i++)
	{
		const QSort *s = &q->sort[i];
		int			c;

		if (s->len == 4 && memcmp(s->field, "_key", 4) == 0)
			c = key_cmp(ka, kalen, kb, kblen);
		else
		{
			c = tgq_sort_compare(tgq_get_attr(a, s->field, s->len), tgq_get_attr(b, s->field, s->len));
		}
		if (c != 0)
			return s->desc ? -c : c;
	}
	return key_cmp(ka, kalen, kb, kblen);
}

int64_t
tg_query_limit(const TgQuery *q)
{
	return q->limit;
}

bool
tg_query_has_sort(const TgQuery *q)
{
	return q->nsort > 0;
}

uint32_t
tg_query_hash(const TgQuery *q)
{
	return q->hash;
}

bool
tg_query_eq_constraint(const TgQuery *q, const char **attr, size_t *attrlen, const MpNode **value)
{
	const QNode *n = q->root;

	if (n == NULL)
		return false;
	if (n->op == Q_AND)
	{
		for (int i = 0; i < n->nchildren; i++)
		{
			const QNode *c = n->children[i];

			if (c->op == Q_EQ && c->attr && c->value && tgq_js_type(c->value) <= JS_STRING &&
				tgq_js_type(c->value) >= JS_NULL)
			{
				*attr = c->attr;
				*attrlen = c->attrlen;
				*value = c->value;
				return true;
			}
		}
		return false;
	}
	if (n->op == Q_EQ && n->attr && n->value && tgq_js_type(n->value) <= JS_STRING &&
		tgq_js_type(n->value) >= JS_NULL)
	{
		*attr = n->attr;
		*attrlen = n->attrlen;
		*value = n->value;
		return true;
	}
	return false;
}

/* ------------------------------------------------------------ cursors */

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static bool
b64url_encode(const uint8_t *in, size_t n, char *out, size_t outlen)
{
	size_t		o = 0;

	if ((n + 2) / 3 * 4 + 1 > outlen)
		return false;
	for (size_t i = 0; i < n; i += 3)
	{
		uint32_t	v = (uint32_t) in[i] << 16;

		if (i + 1 < n)
			v |= (uint32_t) in[i + 1] << 8;
		if (i + 2 < n)
			v |= in[i + 2];
		out[o++] = b64chars[(v >> 18) & 63];
		out[o++] = b64chars[(v >> 12) & 63];
		if (i + 1 < n)
			out[o++] = b64chars[(v >> 6) & 63];
		if (i + 2 < n)
			out[o++] = b64chars[v & 63];
	}
	out[o] = '\0';
	return true;
}

static size_t
b64url_decode(const char *in, size_t n, uint8_t *out)
{
	uint32_t	acc = 0;
	int			bits = 0;
	size_t		o = 0;

	for (size_t i = 0; i < n; i++)
	{
		const char *p = memchr(b64chars, in[i], 64);

		if (p == NULL || in[i] == '\0')
			return (size_t) -1;
		acc = (acc << 6) | (uint32_t) (p - b64chars);
		bits += 6;
		if (bits >= 8)
		{
			bits -= 8;
			out[o++] = (uint8_t) (acc >> bits);
		}
	}
	return o;
}

bool
tg_query_cursor_make(const TgQuery *q, const char *key, size_t keylen, const MpNode *value,
					 int64_t now_ms, char *out, size_t outlen)
{
	MpBuf		b;
	const MpNode *sv = NULL;
	bool		ok;

	if (q->nsort > 0 && !(q->sort[0].len == 4 && memcmp(q->sort[0].field, "_key", 4) == 0))
		sv = tgq_get_attr(value, q->sort[0].field, q->sort[0].len);
	mp_buf_init(&b, 4096);
	mp_put_array_header(&b, 5);
	mp_put_int(&b, 1);
	mp_put_int(&b, q->hash);
	mp_put_int(&b, now_ms);
	mp_put_strn(&b, key, keylen);
	if (sv)
		mp_put_node(&b, sv);
	else
		mp_put_undefined(&b);
	ok = mp_buf_ok(&b) && b64url_encode(b.data, b.len, out, outlen);
	mp_buf_free(&b);
	return ok;
}

const char *
tg_query_cursor_check(const TgQuery *q, const char *cursor, size_t len, int64_t now_ms,
					  int64_t ttl_ms, TgCursor *cur)
{
	uint8_t    *raw;
	size_t		n;
	MpNode	   *root;
	MpLimits	lim = {16, 256, 4096};
	char		err[64];
	int64_t		ver,
				hash,
				created;

	memset(cur, 0, sizeof(*cur));
	mp_arena_init(&cur->arena);
	if (len == 0 || len > 8192)
		return "invalid";
	raw = mp_arena_alloc(&cur->arena, len);
	if (raw == NULL)
		return "invalid";
	n = b64url_decode(cursor, len, raw);
	if (n == (size_t) -1 || n == 0)
		return "invalid";
	root = mp_decode(&cur->arena, raw, n, &lim, err, sizeof(err));
	if (root == NULL || root->type != MP_ARRAY || root->len != 5 ||
		!mp_number_as_int64(&root->v.items[0], 0, 1000, &ver) || ver != 1 ||
		!mp_number_as_int64(&root->v.items[1], 0, UINT32_MAX, &hash) ||
		!mp_number_as_int64(&root->v.items[2], 0, INT64_C(1) << 53, &created) ||
		root->v.items[3].type != MP_STR)
		return "invalid";
	if ((uint32_t) hash != q->hash)
		return "invalid";
	if (now_ms - created > ttl_ms || created - now_ms > ttl_ms)
		return "expired";
	cur->valid = true;
	cur->key = (char *) root->v.items[3].v.s;
	cur->keylen = root->v.items[3].len;
	cur->sort_value = root->v.items[4].type == MP_UNDEFINED ? NULL : &root->v.items[4];
	return "valid";
}

bool
tg_query_after(const TgQuery *q, const TgCursor *cur, const char *key, size_t keylen,
			   const MpNode *value)
{
	int			c = 0;

	if (!cur->valid)
		return true;
	/* the reference pages on the first sort field only, then the key */
	if (q->nsort > 0 && !(q->sort[0].len == 4 && memcmp(q->sort[0].field, "_key", 4) == 0))
	{
		c = tgq_sort_compare(tgq_get_attr(value, q->sort[0].field, q->sort[0].len), cur->sort_value);
		if (q->sort[0].desc)
			c = -c;
	}
	if (c == 0)
	{
		c = key_cmp(key, keylen, cur->key, cur->keylen);
		if (q->nsort > 0 && q->sort[0].len == 4 && memcmp(q->sort[0].field, "_key", 4) == 0 &&
			q->sort[0].desc)
			c = -c;
	}
	return c > 0;
}

void
tg_query_cursor_free(TgCursor *cur)
{
	mp_arena_free(&cur->arena);
	cur->valid = false;
}

