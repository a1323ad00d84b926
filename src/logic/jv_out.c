/*
 * jv_out.c — output of the JSON document model: the growable buffer,
 * JSON.stringify (storage and equality forms) and JSON.stringify equality.
 */
#include "logic/jv.h"

#include <math.h>
#include <string.h>

void
jv_buf_init(JvBuf *b, JvArena *a)
{
	memset(b, 0, sizeof(*b));
	b->a = a;
}

void
jv_buf_put(JvBuf *b, const char *s, size_t n)
{
	if (b->failed)
		return;
	if (b->len + n + 1 > b->cap)
	{
		size_t		ncap = b->cap ? b->cap * 2 : 64;
		char	   *nd;

		while (ncap < b->len + n + 1)
			ncap *= 2;
		nd = jv_alloc(b->a, ncap);
		if (nd == NULL)
		{
			b->failed = true;
			return;
		}
		if (b->len)
			memcpy(nd, b->data, b->len);
		b->data = nd;
		b->cap = ncap;
	}
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

static void
put_json_string(JvBuf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t		run = 0;

	jv_buf_put(b, "\"", 1);
	for (size_t i = 0; i < n; i++)
	{
		unsigned char c = (unsigned char) s[i];
		char		esc[6];
		size_t		elen = 2;

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		jv_buf_put(b, s + run, i - run);
		run = i + 1;
		esc[0] = '\\';
		switch (c)
		{
			case '"':
				esc[1] = '"';
				break;
			case '\\':
				esc[1] = '\\';
				break;
			case '\b':
				esc[1] = 'b';
				break;
			case '\f':
				esc[1] = 'f';
				break;
			case '\n':
				esc[1] = 'n';
				break;
			case '\r':
				esc[1] = 'r';
				break;
			case '\t':
				esc[1] = 't';
				break;
			default:
				memcpy(esc + 1, "u00", 3);
				esc[4] = hex[c >> 4];
				esc[5] = hex[c & 15];
				elen = 6;
				break;
		}
		jv_buf_put(b, esc, elen);
	}
	jv_buf_put(b, s + run, n - run);
	jv_buf_put(b, "\"", 1);
}

static bool
stringify(JvBuf *b, const Jv *v, bool store)
{
	char		num[40];
	bool		first = true;

	switch (v->t)
	{
		case JV_UNDEF:
		case JV_HOLE:
		case JV_NULL:
			jv_buf_put(b, "null", 4);	/* top-level undefined is handled by the caller */
			return true;
		case JV_FALSE:
			jv_buf_put(b, "false", 5);
			return true;
		case JV_TRUE:
			jv_buf_put(b, "true", 4);
			return true;
		case JV_NUM:
			if (!isfinite(v->num))
			{
				if (store)
					return false;
				jv_buf_put(b, "null", 4);
			}
			else if (store && v->numtxt)
				jv_buf_put(b, v->numtxt, v->numlen);
			else
			{
				jv_fmt_number(v->num, num, sizeof(num));
				jv_buf_put(b, num, strlen(num));
			}
			return true;
		case JV_STR:
			put_json_string(b, v->s, v->len);
			return true;
		case JV_ARR:
			jv_buf_put(b, "[", 1);
			for (size_t i = 0; i < v->len; i++)
			{
				if (i)
					jv_buf_put(b, ",", 1);
				if (!stringify(b, v->items[i], store))
					return false;
			}
			jv_buf_put(b, "]", 1);
			return true;
		case JV_OBJ:
			jv_buf_put(b, "{", 1);
			for (size_t i = 0; i < v->len; i++)
			{
				const JvMember *m = &v->members[i];

				if (m->val->t == JV_UNDEF || m->val->t == JV_HOLE)
					continue;
				if (!first)
					jv_buf_put(b, ",", 1);
				first = false;
				put_json_string(b, m->key, m->klen);
				jv_buf_put(b, ":", 1);
				if (!stringify(b, m->val, store))
					return false;
			}
			jv_buf_put(b, "}", 1);
			return true;
	}
	return false;
}

bool
jv_stringify(JvBuf *b, const Jv *v, bool store)
{
	if (v == NULL || v->t == JV_UNDEF || v->t == JV_HOLE)
		return false;
	return stringify(b, v, store) && !b->failed;
}

bool
jv_json_equal(JvArena *a, const Jv *x, const Jv *y)
{
	JvBuf		bx,
				by;
	bool		hx,
				hy;

	jv_buf_init(&bx, a);
	jv_buf_init(&by, a);
	hx = x != NULL && x->t != JV_UNDEF && x->t != JV_HOLE && jv_stringify(&bx, x, false);
	hy = y != NULL && y->t != JV_UNDEF && y->t != JV_HOLE && jv_stringify(&by, y, false);
	if (!hx || !hy)
		return hx == hy;
	return bx.len == by.len && memcmp(bx.data, by.data, bx.len) == 0;
}
