/*
 * jv.c — arena, constructors and parser of the JSON document model (see
 * jv.h).  JSON.stringify is in jv_out.c, the JavaScript operators in jv_js.c.
 */
#include "logic/jv.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct JvChunk
{
	JvChunk    *next;
	size_t		size;
	size_t		off;
	/* data follows, max-aligned */
};

#define CHUNK_HDR ((sizeof(JvChunk) + 15) & ~(size_t) 15)
#define CHUNK_FIRST 960			/* small values never need a second chunk */
#define CHUNK_MAX (64 * 1024)

void
jv_arena_init(JvArena *a, void *(*alloc) (size_t), void (*release) (void *), size_t limit)
{
	memset(a, 0, sizeof(*a));
	a->alloc = alloc;
	a->release = release;
	a->limit = limit;
}

void
jv_arena_free(JvArena *a)
{
	JvChunk    *c = a->chunks;

	while (c != NULL)
	{
		JvChunk    *next = c->next;

		if (a->release)
			a->release(c);
		c = next;
	}
	a->chunks = NULL;
	a->used = 0;
}

void *
jv_alloc(JvArena *a, size_t n)
{
	JvChunk    *c = a->chunks;
	char	   *p;

	n = (n + 15) & ~(size_t) 15;
	if (a->failed || (a->limit && a->used + n > a->limit))
	{
		a->failed = true;
		return NULL;
	}
	if (c == NULL || c->size - c->off < n)
	{
		/* chunks double from CHUNK_FIRST up to CHUNK_MAX, or fit one big request */
		size_t		grow = c == NULL ? CHUNK_FIRST : (c->size * 2 < CHUNK_MAX ? c->size * 2 : CHUNK_MAX);
		size_t		sz = n > grow ? n : grow;

		c = a->alloc(CHUNK_HDR + sz);
		if (c == NULL)
		{
			a->failed = true;
			return NULL;
		}
		c->size = sz;
		c->off = 0;
		c->next = a->chunks;
		a->chunks = c;
	}
	p = (char *) c + CHUNK_HDR + c->off;
	c->off += n;
	a->used += n;
	memset(p, 0, n);
	return p;
}

Jv *
jv_new(JvArena *a, JvType t)
{
	Jv		   *v = jv_alloc(a, sizeof(Jv));

	if (v)
		v->t = t;
	return v;
}

Jv *
jv_num(JvArena *a, double d)
{
	Jv		   *v = jv_new(a, JV_NUM);

	if (v)
		v->num = d;
	return v;
}

Jv *
jv_str(JvArena *a, const char *s, size_t len)
{
	Jv		   *v = jv_new(a, JV_STR);
	char	   *copy = jv_alloc(a, len + 1);

	if (v == NULL || copy == NULL)
		return NULL;
	memcpy(copy, s, len);
	v->s = copy;
	v->len = len;
	return v;
}

Jv *
jv_bool(JvArena *a, bool b)
{
	return jv_new(a, b ? JV_TRUE : JV_FALSE);
}

static bool
grow(JvArena *a, Jv *c, size_t elem)
{
	size_t		ncap;
	void	   *n;
	void	   *old = c->t == JV_ARR ? (void *) c->items : (void *) c->members;

	if (c->len < c->cap)
		return true;
	ncap = c->cap ? c->cap * 2 : 4;
	n = jv_alloc(a, ncap * elem);
	if (n == NULL)
		return false;
	if (c->len)
		memcpy(n, old, c->len * elem);
	if (c->t == JV_ARR)
		c->items = n;
	else
		c->members = n;
	c->cap = ncap;
	return true;
}

bool
jv_arr_push(JvArena *a, Jv *arr, Jv *v)
{
	if (v == NULL || !grow(a, arr, sizeof(Jv *)))
		return false;
	arr->items[arr->len++] = v;
	return true;
}

Jv *
jv_obj_get(const Jv *obj, const char *k, size_t klen)
{
	if (obj == NULL || obj->t != JV_OBJ)
		return NULL;
	for (size_t i = 0; i < obj->len; i++)
		if (obj->members[i].klen == klen && memcmp(obj->members[i].key, k, klen) == 0)
			return obj->members[i].val;
	return NULL;
}

/* Set (replace in place, or append: JavaScript property order). */
bool
jv_obj_set(JvArena *a, Jv *obj, const char *k, size_t klen, Jv *v)
{
	char	   *kc;
	size_t		pos;
	uint32_t	idx;

	if (v == NULL)
		return false;
	for (size_t i = 0; i < obj->len; i++)
		if (obj->members[i].klen == klen && memcmp(obj->members[i].key, k, klen) == 0)
		{
			obj->members[i].val = v;
			return true;
		}
	if (!grow(a, obj, sizeof(JvMember)) || (kc = jv_alloc(a, klen + 1)) == NULL)
		return false;
	memcpy(kc, k, klen);
	/* JavaScript order: array-index keys first, ascending; then insertion order */
	pos = obj->len;
	if (jv_array_index(k, klen, &idx))
	{
		for (pos = 0; pos < obj->len; pos++)
		{
			uint32_t	other;

			if (!jv_array_index(obj->members[pos].key, obj->members[pos].klen, &other) || other > idx)
				break;
		}
		memmove(&obj->members[pos + 1], &obj->members[pos], (obj->len - pos) * sizeof(JvMember));
	}
	obj->members[pos].key = kc;
	obj->members[pos].klen = klen;
	obj->members[pos].val = v;
	obj->len++;
	return true;
}

/* A canonical array index: "0", or digits without a leading zero, < 2^32 - 1. */
bool
jv_array_index(const char *k, size_t klen, uint32_t *idx)
{
	uint64_t	v = 0;

	if (klen == 0 || klen > 10 || (klen > 1 && k[0] == '0'))
		return false;
	for (size_t i = 0; i < klen; i++)
	{
		if (k[i] < '0' || k[i] > '9')
			return false;
		v = v * 10 + (uint64_t) (k[i] - '0');
	}
	if (v >= 4294967295u)
		return false;
	*idx = (uint32_t) v;
	return true;
}

bool
jv_obj_delete(Jv *obj, const char *k, size_t klen)
{
	for (size_t i = 0; i < obj->len; i++)
		if (obj->members[i].klen == klen && memcmp(obj->members[i].key, k, klen) == 0)
		{
			memmove(&obj->members[i], &obj->members[i + 1], (obj->len - i - 1) * sizeof(JvMember));
			obj->len--;
			return true;
		}
	return false;
}

/* { ...src } into dst: own enumerable properties (object members, array indices, string chars). */
bool
jv_spread(JvArena *a, Jv *dst, const Jv *src)
{
	char		ib[16];

	if (src == NULL)
		return true;
	if (src->t == JV_OBJ)
	{
		for (size_t i = 0; i < src->len; i++)
			if (!jv_obj_set(a, dst, src->members[i].key, src->members[i].klen, src->members[i].val))
				return false;
	}
	else if (src->t == JV_ARR || src->t == JV_STR)
		for (size_t i = 0; i < src->len; i++)
		{
			int			n = snprintf(ib, sizeof(ib), "%zu", i);
			Jv		   *x = src->t == JV_ARR ? src->items[i] : jv_str(a, src->s + i, 1);

			if (x == NULL || (x->t != JV_HOLE && !jv_obj_set(a, dst, ib, (size_t) n, x)))
				return false;
		}
	return true;
}

Jv *
jv_clone(JvArena *a, const Jv *v)
{
	Jv		   *c;

	if (v == NULL)
		return NULL;
	c = jv_new(a, v->t);
	if (c == NULL)
		return NULL;
	switch (v->t)
	{
		case JV_ARR:
			for (size_t i = 0; i < v->len; i++)
				if (!jv_arr_push(a, c, jv_clone(a, v->items[i])))
					return NULL;
			break;
		case JV_OBJ:
			for (size_t i = 0; i < v->len; i++)
				if (!jv_obj_set(a, c, v->members[i].key, v->members[i].klen, jv_clone(a, v->members[i].val)))
					return NULL;
			break;
		default:
			c->num = v->num;
			c->numtxt = v->numtxt;
			c->numlen = v->numlen;
			c->s = v->s;		/* strings are never mutated in place */
			c->len = v->len;
			break;
	}
	return c;
}

/* ---------------------------------------------------------------- parser */

typedef struct Parser
{
	JvArena    *a;
	const char *p;
	const char *end;
	int			depth;
	int			max_depth;
	bool		tagged;
	const char *err;
} Parser;

static Jv  *parse_value(Parser *ps);

static void
skip_ws(Parser *ps)
{
	while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
		ps->p++;
}

static Jv  *
fail(Parser *ps, const char *msg)
{
	if (ps->err == NULL)
		ps->err = msg;
	return NULL;
}

static int
hex4(const char *p)
{
	int			v = 0;

	for (int i = 0; i < 4; i++)
	{
		char		c = p[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= c - '0';
		else if (c >= 'a' && c <= 'f')
			v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			v |= c - 'A' + 10;
		else
			return -1;
	}
	return v;
}

static size_t
put_utf8(char *o, unsigned cp)
{
	if (cp < 0x80)
	{
		o[0] = (char) cp;
		return 1;
	}
	if (cp < 0x800)
	{
		o[0] = (char) (0xC0 | (cp >> 6));
		o[1] = (char) (0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000)
	{
		o[0] = (char) (0xE0 | (cp >> 12));
		o[1] = (char) (0x80 | ((cp >> 6) & 0x3F));
		o[2] = (char) (0x80 | (cp & 0x3F));
		return 3;
	}
	o[0] = (char) (0xF0 | (cp >> 18));
	o[1] = (char) (0x80 | ((cp >> 12) & 0x3F));
	o[2] = (char) (0x80 | ((cp >> 6) & 0x3F));
	o[3] = (char) (0x80 | (cp & 0x3F));
	return 4;
}

/* A string token into (out, outlen); the output is never longer than the input. */
static bool
parse_string(Parser *ps, const char **out, size_t *outlen)
{
	const char *start = ++ps->p;	/* past the quote */
	char	   *buf;
	size_t		n = 0;

	while (ps->p < ps->end && *ps->p != '"')
	{
		if (*ps->p == '\\')
			ps->p++;
		else if ((unsigned char) *ps->p < 0x20)
			return fail(ps, "control character in string"), false;
		ps->p++;
	}
	if (ps->p >= ps->end)
		return fail(ps, "unterminated string"), false;
	buf = jv_alloc(ps->a, (size_t) (ps->p - start) + 1);
	if (buf == NULL)
		return fail(ps, "out of memory"), false;
	for (const char *q = start; q < ps->p;)
	{
		if (*q != '\\')
		{
			buf[n++] = *q++;
			continue;
		}
		q++;
		switch (*q)
		{
			case '"':
			case '\\':
			case '/':
				buf[n++] = *q++;
				break;
			case 'b':
				buf[n++] = '\b', q++;
				break;
			case 'f':
				buf[n++] = '\f', q++;
				break;
			case 'n':
				buf[n++] = '\n', q++;
				break;
			case 'r':
				buf[n++] = '\r', q++;
				break;
			case 't':
				buf[n++] = '\t', q++;
				break;
			case 'u':
				{
					int			cp = ps->p - q >= 5 ? hex4(q + 1) : -1;

					if (cp < 0)
						return fail(ps, "bad \\u escape"), false;
					q += 5;
					if (cp >= 0xD800 && cp < 0xDC00 && ps->p - q >= 6 && q[0] == '\\' && q[1] == 'u')
					{
						int			lo = hex4(q + 2);

						if (lo >= 0xDC00 && lo < 0xE000)
						{
							cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
							q += 6;
						}
					}
					n += put_utf8(buf + n, (unsigned) cp);
					break;
				}
			default:
				return fail(ps, "bad escape"), false;
		}
	}
	ps->p++;					/* closing quote */
	*out = buf;
	*outlen = n;
	return true;
}

static Jv  *
parse_number(Parser *ps)
{
	const char *s = ps->p;
	char		tmp[64];
	Jv		   *v;

	if (ps->p < ps->end && *ps->p == '-')
		ps->p++;
	if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9')
		return fail(ps, "bad number");
	if (*ps->p == '0')
		ps->p++;
	else
		while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
			ps->p++;
	if (ps->p < ps->end && *ps->p == '.')
	{
		ps->p++;
		if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9')
			return fail(ps, "bad number");
		while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
			ps->p++;
	}
	if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E'))
	{
		ps->p++;
		if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-'))
			ps->p++;
		if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9')
			return fail(ps, "bad number");
		while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
			ps->p++;
	}
	v = jv_new(ps->a, JV_NUM);
	if (v == NULL)
		return fail(ps, "out of memory");
	v->numtxt = s;
	v->numlen = (size_t) (ps->p - s);
	if (v->numlen < sizeof(tmp))
	{
		memcpy(tmp, s, v->numlen);
		tmp[v->numlen] = '\0';
		v->num = strtod(tmp, NULL);
	}
	else
	{
		char	   *big = jv_alloc(ps->a, v->numlen + 1);

		if (big == NULL)
			return fail(ps, "out of memory");
		memcpy(big, s, v->numlen);
		v->num = strtod(big, NULL);
	}
	return v;
}

/* The golden-vector tags for values JSON cannot carry. */
static Jv  *
untag(Parser *ps, Jv *obj)
{
	Jv		   *t;

	if (obj->len != 1)
		return obj;
	if ((t = jv_obj_get(obj, "$undefined", 10)) != NULL && t->t == JV_TRUE)
		return jv_new(ps->a, JV_UNDEF);
	if ((t = jv_obj_get(obj, "$hole", 5)) != NULL && t->t == JV_TRUE)
		return jv_new(ps->a, JV_HOLE);
	if ((t = jv_obj_get(obj, "$number", 7)) != NULL && t->t == JV_STR)
	{
		double		d = (t->len == 3 && memcmp(t->s, "NaN", 3) == 0) ? NAN
			: (t->len == 2 && memcmp(t->s, "-0", 2) == 0) ? -0.0
			: (t->len == 8 && memcmp(t->s, "Infinity", 8) == 0) ? INFINITY
			: (t->len == 9 && memcmp(t->s, "-Infinity", 9) == 0) ? -INFINITY : 0;

		return jv_num(ps->a, d);
	}
	return obj;
}

static Jv  *
parse_container(Parser *ps, bool is_obj)
{
	Jv		   *c = jv_new(ps->a, is_obj ? JV_OBJ : JV_ARR);
	char		close = is_obj ? '}' : ']';

	if (c == NULL)
		return fail(ps, "out of memory");
	if (++ps->depth > ps->max_depth)
		return fail(ps, "nested too deeply");
	ps->p++;
	skip_ws(ps);
	if (ps->p < ps->end && *ps->p == close)
	{
		ps->p++;
		ps->depth--;
		return c;
	}
	for (;;)
	{
		const char *k = NULL;
		size_t		klen = 0;
		Jv		   *v;

		skip_ws(ps);
		if (is_obj)
		{
			if (ps->p >= ps->end || *ps->p != '"' || !parse_string(ps, &k, &klen))
				return fail(ps, "expected a member name");
			skip_ws(ps);
			if (ps->p >= ps->end || *ps->p != ':')
				return fail(ps, "expected ':'");
			ps->p++;
		}
		v = parse_value(ps);
		if (v == NULL)
			return NULL;
		if (is_obj ? !jv_obj_set(ps->a, c, k, klen, v) : !jv_arr_push(ps->a, c, v))
			return fail(ps, "out of memory");
		skip_ws(ps);
		if (ps->p < ps->end && *ps->p == ',')
		{
			ps->p++;
			continue;
		}
		if (ps->p < ps->end && *ps->p == close)
		{
			ps->p++;
			break;
		}
		return fail(ps, is_obj ? "expected ',' or '}'" : "expected ',' or ']'");
	}
	ps->depth--;
	return is_obj && ps->tagged ? untag(ps, c) : c;
}

static bool
literal(Parser *ps, const char *word, size_t n)
{
	if ((size_t) (ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
		return false;
	ps->p += n;
	return true;
}

static Jv  *
parse_value(Parser *ps)
{
	skip_ws(ps);
	if (ps->p >= ps->end)
		return fail(ps, "unexpected end of input");
	switch (*ps->p)
	{
		case '{':
			return parse_container(ps, true);
		case '[':
			return parse_container(ps, false);
		case '"':
			{
				const char *s;
				size_t		n;
				Jv		   *v;

				if (!parse_string(ps, &s, &n))
					return NULL;
				if ((v = jv_new(ps->a, JV_STR)) == NULL)
					return fail(ps, "out of memory");
				v->s = s;
				v->len = n;
				return v;
			}
		case 't':
			return literal(ps, "true", 4) ? jv_new(ps->a, JV_TRUE) : fail(ps, "bad literal");
		case 'f':
			return literal(ps, "false", 5) ? jv_new(ps->a, JV_FALSE) : fail(ps, "bad literal");
		case 'n':
			return literal(ps, "null", 4) ? jv_new(ps->a, JV_NULL) : fail(ps, "bad literal");
		default:
			return parse_number(ps);
	}
}

Jv *
jv_parse(JvArena *a, const char *txt, size_t len, int max_depth, bool tagged, const char **err)
{
	Parser		ps = {a, txt, txt + len, 0, max_depth, tagged, NULL};
	Jv		   *v = parse_value(&ps);

	if (v != NULL)
	{
		skip_ws(&ps);
		if (ps.p != ps.end)
			v = fail(&ps, "trailing characters");
	}
	if (v == NULL && ps.err == NULL)
		ps.err = "out of memory";
	if (err)
		*err = ps.err;
	return v;
}

