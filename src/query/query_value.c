/*
 * query_value.c — JavaScript value semantics for the query engine: deep
 * copies into the query arena, typeof, ===, String(), Number(), the
 * comparator, and attribute lookup.  See query_internal.h.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query/query_internal.h"

/* ------------------------------------------------------------ copying */

MpNode *
mp_node_copy(MpArena *arena, const MpNode *n)
{
	MpNode	   *c = mp_arena_alloc(arena, sizeof(MpNode));

	if (c == NULL)
		return NULL;
	*c = *n;
	switch (n->type)
	{
		case MP_STR:
			c->v.s = mp_arena_strndup(arena, n->v.s, n->len);
			if (c->v.s == NULL)
				return NULL;
			break;
		case MP_BIN:
			{
				uint8_t    *b = mp_arena_alloc(arena, n->len ? n->len : 1);

				if (b == NULL)
					return NULL;
				memcpy(b, n->v.bin, n->len);
				c->v.bin = b;
				break;
			}
		case MP_EXT:
			{
				uint8_t    *b = mp_arena_alloc(arena, n->len ? n->len : 1);

				if (b == NULL)
					return NULL;
				memcpy(b, n->v.ext.data, n->len);
				c->v.ext.data = b;
				break;
			}
		case MP_ARRAY:
		case MP_MAP:
			{
				uint32_t	cnt = n->type == MP_MAP ? 2 * n->len : n->len;
				MpNode	   *items = mp_arena_alloc(arena, sizeof(MpNode) * (cnt ? cnt : 1));
				const MpNode *src = n->type == MP_MAP ? n->v.kv : n->v.items;

				if (items == NULL)
					return NULL;
				for (uint32_t i = 0; i < cnt; i++)
				{
					MpNode	   *e = mp_node_copy(arena, &src[i]);

					if (e == NULL)
						return NULL;
					items[i] = *e;
				}
				if (n->type == MP_MAP)
					c->v.kv = items;
				else
					c->v.items = items;
				break;
			}
		default:
			break;
	}
	return c;
}

JsType
tgq_js_type(const MpNode *v)
{
	if (v == NULL)
		return JS_UNDEFINED;
	switch (v->type)
	{
		case MP_UNDEFINED:
			return JS_UNDEFINED;
		case MP_NIL:
			return JS_NULL;
		case MP_BOOL:
			return JS_BOOL;
		case MP_INT:
		case MP_UINT:
		case MP_FLOAT:
			return JS_NUMBER;
		case MP_STR:
			return JS_STRING;
		case MP_ARRAY:
			return JS_ARRAY;
		default:
			return JS_OBJECT;	/* maps, Uint8Array (bin), ext */
	}
}

bool
tgq_strict_eq(const MpNode *a, const MpNode *b)
{
	JsType		ta = tgq_js_type(a),
				tb = tgq_js_type(b);

	if (ta != tb)
		return false;
	switch (ta)
	{
		case JS_UNDEFINED:
		case JS_NULL:
			return true;
		case JS_BOOL:
			return a->v.b == b->v.b;
		case JS_NUMBER:
			if (a->type == MP_INT && b->type == MP_INT)
				return a->v.i == b->v.i;
			return mp_number_as_double(a) == mp_number_as_double(b);
		case JS_STRING:
			return a->len == b->len && memcmp(a->v.s, b->v.s, a->len) == 0;
		default:
			return false;		/* objects compare by identity */
	}
}

/* Growable char buffer for ToString. */
typedef struct SBuf
{
	char	   *p;
	size_t		len;
	size_t		cap;
	bool		failed;
} SBuf;

static void
sb_add(SBuf *b, const char *s, size_t n)
{
	if (b->failed)
		return;
	if (b->len + n + 1 > b->cap)
	{
		size_t		cap = b->cap ? b->cap * 2 : 64;
		char	   *p;

		while (cap < b->len + n + 1)
			cap *= 2;
		if (cap > TG_REGEX_MAX_SUBJECT)
		{
			b->failed = true;
			return;
		}
		p = realloc(b->p, cap);
		if (p == NULL)
		{
			b->failed = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

/* Number.prototype.toString() (radix 10). */
static void
js_number_string(double d, char *out, size_t outlen)
{
	char		buf[40];
	char		digits[24];
	int			nd = 0,
				exp10,
				prec;
	bool		neg;
	char	   *e;

	if (isnan(d))
	{
		snprintf(out, outlen, "NaN");
		return;
	}
	if (isinf(d))
	{
		snprintf(out, outlen, d > 0 ? "Infinity" : "-Infinity");
		return;
	}
	if (d == 0)
	{
		snprintf(out, outlen, "0");
		return;
	}
	/* shortest round-tripping digits */
	for (prec = 1; prec <= 17; prec++)
	{
		snprintf(buf, sizeof(buf), "%.*e", prec - 1, d);
		if (strtod(buf, NULL) == d)
			break;
	}
	neg = buf[0] == '-';
	for (char *p = buf + (neg ? 1 : 0); *p && *p != 'e'; p++)
		if (*p >= '0' && *p <= '9')
			digits[nd++] = *p;
	while (nd > 1 && digits[nd - 1] == '0')
		nd--;
	digits[nd] = '\0';
	e = strchr(buf, 'e');
	exp10 = e ? atoi(e + 1) : 0;	/* value = 0.d1d2... x 10^(exp10+1) */
	{
		int			n = exp10 + 1;	/* position of the decimal point */
		char		res[64];
		size_t		r = 0;

		if (neg)
			res[r++] = '-';
		if (nd <= n && n <= 21)
		{
			memcpy(res + r, digits, nd);
			r += nd;
			for (int k = 0; k < n - nd; k++)
				res[r++] = '0';
		}
		else if (0 < n && n <= 21)
		{
			memcpy(res + r, digits, n);
			r += n;
			res[r++] = '.';
			memcpy(res + r, digits + n, nd - n);
			r += nd - n;
		}
		else if (-6 < n && n <= 0)
		{
			res[r++] = '0';
			res[r++] = '.';
			for (int k = 0; k < -n; k++)
				res[r++] = '0';
			memcpy(res + r, digits, nd);
			r += nd;
		}
		else
		{
			res[r++] = digits[0];
			if (nd > 1)
			{
				res[r++] = '.';
				memcpy(res + r, digits + 1, nd - 1);
				r += nd - 1;
			}
			r += snprintf(res + r, sizeof(res) - r, "e%c%d", n - 1 >= 0 ? '+' : '-',
						  abs(n - 1));
		}
		res[r] = '\0';
		snprintf(out, outlen, "%s", res);
	}
}

/* ToString of a value (arrays join with ","; objects "[object Object]"). */
static void
js_to_string(const MpNode *v, SBuf *b, int depth)
{
	char		num[64];

	if (depth > 32)
	{
		b->failed = true;
		return;
	}
	switch (tgq_js_type(v))
	{
		case JS_UNDEFINED:
			sb_add(b, "undefined", 9);
			break;
		case JS_NULL:
			sb_add(b, "null", 4);
			break;
		case JS_BOOL:
			if (v->v.b)
				sb_add(b, "true", 4);
			else
				sb_add(b, "false", 5);
			break;
		case JS_NUMBER:
			if (v->type == MP_INT)
				snprintf(num, sizeof(num), "%lld", (long long) v->v.i);
			if (v->type != MP_INT || (v->v.i > INT64_C(9007199254740992) || v->v.i < -INT64_C(9007199254740992)))
				js_number_string(mp_number_as_double(v), num, sizeof(num));
			sb_add(b, num, strlen(num));
			break;
		case JS_STRING:
			sb_add(b, v->v.s, v->len);
			break;
		case JS_ARRAY:
			for (uint32_t i = 0; i < v->len; i++)
			{
				const MpNode *e = &v->v.items[i];

				if (i > 0)
					sb_add(b, ",", 1);
				if (tgq_js_type(e) != JS_NULL && tgq_js_type(e) != JS_UNDEFINED)
					js_to_string(e, b, depth + 1);
			}
			break;
		case JS_OBJECT:
			if (v->type == MP_BIN)
			{
				for (uint32_t i = 0; i < v->len; i++)
				{
					snprintf(num, sizeof(num), i ? ",%u" : "%u", v->v.bin[i]);
					sb_add(b, num, strlen(num));
				}
			}
			else
				sb_add(b, "[object Object]", 15);
			break;
	}
}

static bool
js_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* Number(string) for the common forms; NaN when JS would give NaN. */
static double
js_string_to_number(const char *s, size_t len)
{
	size_t		i = 0,
				j = len;
	char		buf[400];
	size_t		k;
	bool		digits = false;

	while (i < j && js_space((unsigned char) s[i]))
		i++;
	while (j > i && js_space((unsigned char) s[j - 1]))
		j--;
	if (i == j)
		return 0;
	if (j - i >= sizeof(buf))
		return NAN;
	memcpy(buf, s + i, j - i);
	buf[j - i] = '\0';
	if (strcmp(buf, "Infinity") == 0 || strcmp(buf, "+Infinity") == 0)
		return INFINITY;
	if (strcmp(buf, "-Infinity") == 0)
		return -INFINITY;
	if (buf[0] == '0' && (buf[1] == 'x' || buf[1] == 'X' || buf[1] == 'o' || buf[1] == 'O' ||
						  buf[1] == 'b' || buf[1] == 'B'))
	{
		int			base = (buf[1] == 'x' || buf[1] == 'X') ? 16 : (buf[1] == 'o' || buf[1] == 'O') ? 8 : 2;
		double		v = 0;

		if (buf[2] == '\0')
			return NAN;
		for (k = 2; buf[k]; k++)
		{
			int			d = (buf[k] >= '0' && buf[k] <= '9') ? buf[k] - '0' :
				(buf[k] >= 'a' && buf[k] <= 'f') ? buf[k] - 'a' + 10 :
				(buf[k] >= 'A' && buf[k] <= 'F') ? buf[k] - 'A' + 10 : 99;

			if (d >= base)
				return NAN;
			v = v * base + d;
		}
		return v;
	}
	/* StrDecimalLiteral: [+-] (digits [. digits] | . digits) [(e|E) [+-] digits] */
	k = 0;
	if (buf[k] == '+' || buf[k] == '-')
		k++;
	while (buf[k] >= '0' && buf[k] <= '9')
	{
		k++;
		digits = true;
	}
	if (buf[k] == '.')
	{
		k++;
		while (buf[k] >= '0' && buf[k] <= '9')
		{
			k++;
			digits = true;
		}
	}
	if (!digits)
		return NAN;
	if (buf[k] == 'e' || buf[k] == 'E')
	{
		bool		ed = false;

		k++;
		if (buf[k] == '+' || buf[k] == '-')
			k++;
		while (buf[k] >= '0' && buf[k] <= '9')
		{
			k++;
			ed = true;
		}
		if (!ed)
			return NAN;
	}
	if (buf[k] != '\0')
		return NAN;
	return strtod(buf, NULL);
}

/*
 * ToPrimitive for the relational operators: strings stay strings (returned
 * in *str, which the caller frees), everything else becomes a number.
 */
static bool
js_primitive(const MpNode *v, SBuf *str, double *num)
{
	switch (tgq_js_type(v))
	{
		case JS_UNDEFINED:
			*num = NAN;
			return false;
		case JS_NULL:
			*num = 0;
			return false;
		case JS_BOOL:
			*num = v->v.b ? 1 : 0;
			return false;
		case JS_NUMBER:
			*num = mp_number_as_double(v);
			return false;
		case JS_STRING:
			sb_add(str, v->v.s, v->len);
			return true;
		default:
			js_to_string(v, str, 0);
			if (str->p == NULL)
				sb_add(str, "", 0);
			return true;
	}
}

/* UTF-16 code unit order of two UTF-8 strings. */
int
tgq_utf16_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	uint16_t   *ua = malloc(sizeof(uint16_t) * (2 * alen + 1));
	uint16_t   *ub = malloc(sizeof(uint16_t) * (2 * blen + 1));
	size_t		na,
				nb;
	int			r = 0;

	if (ua == NULL || ub == NULL)
	{
		free(ua);
		free(ub);
		return 0;
	}
	na = tg_utf8_to_utf16(a, alen, ua);
	nb = tg_utf8_to_utf16(b, blen, ub);
	for (size_t i = 0; i < na && i < nb; i++)
		if (ua[i] != ub[i])
		{
			r = ua[i] < ub[i] ? -1 : 1;
			break;
		}
	if (r == 0 && na != nb)
		r = na < nb ? -1 : 1;
	free(ua);
	free(ub);
	return r;
}

/*
 * JS abstract relational comparison: -1 (a < b), 1 (a > b), 0 (neither
 * but comparable and equal), 2 (undefined: NaN involved).
 */
int
tgq_js_compare(const MpNode *a, const MpNode *b)
{
	SBuf		sa = {0},
				sb = {0};
	double		na = 0,
				nb = 0;
	bool		isa = js_primitive(a, &sa, &na);
	bool		isb = js_primitive(b, &sb, &nb);
	int			r;

	if (sa.failed || sb.failed)
		r = 2;
	else if (isa && isb)
		r = tgq_utf16_cmp(sa.p, sa.len, sb.p, sb.len);
	else
	{
		if (isa)
			na = js_string_to_number(sa.p, sa.len);
		if (isb)
			nb = js_string_to_number(sb.p, sb.len);
		if (a && b && a->type == MP_INT && b->type == MP_INT)
			r = a->v.i < b->v.i ? -1 : a->v.i > b->v.i ? 1 : 0;
		else if (isnan(na) || isnan(nb))
			r = 2;
		else
			r = na < nb ? -1 : na > nb ? 1 : 0;
	}
	free(sa.p);
	free(sb.p);
	return r;
}

/*
 * Sort order of two field values: a total order (so that pages, cursors and
 * index reads agree whatever order records are read in).  Values of the same
 * JS type compare as JS < does (numbers by value, strings by UTF-16 code
 * units, false < true, arrays by their string form); values of different
 * types by type: number < string < boolean < null < array < object <
 * undefined (a missing field sorts last).  JS's own < across types
 * (ToNumber) is not transitive, which made the reference's order depend on
 * insertion order.
 */
static int
sort_rank(JsType t)
{
	switch (t)
	{
		case JS_NUMBER:
			return 0;
		case JS_STRING:
			return 1;
		case JS_BOOL:
			return 2;
		case JS_NULL:
			return 3;
		case JS_ARRAY:
			return 4;
		case JS_OBJECT:
			return 5;
		default:
			return 6;
	}
}

int
tgq_sort_compare(const MpNode *a, const MpNode *b)
{
	JsType		ta = tgq_js_type(a),
				tb = tgq_js_type(b);
	int			c;

	if (ta != tb)
		return sort_rank(ta) < sort_rank(tb) ? -1 : 1;
	if (ta == JS_NUMBER)
	{
		double		x = mp_number_as_double(a),
					y = mp_number_as_double(b);

		/* NaN (never stored: only in a forged cursor) after every number */
		if (isnan(x) || isnan(y))
			return isnan(x) == isnan(y) ? 0 : isnan(x) ? 1 : -1;
		if (a->type == MP_INT && b->type == MP_INT)
			return a->v.i < b->v.i ? -1 : a->v.i > b->v.i;
		return x < y ? -1 : x > y;
	}
	if (ta != JS_STRING && ta != JS_BOOL && ta != JS_ARRAY)
		return 0;
	c = tgq_js_compare(a, b);
	return c == 2 ? 0 : c;
}


/* data[attribute] */
const MpNode *
tgq_get_attr(const MpNode *data, const char *attr, size_t len)
{
	if (data == NULL)
		return NULL;
	if (data->type == MP_MAP)
		return mp_map_getn(data, attr, len);
	if (data->type == MP_ARRAY)
	{
		uint64_t	idx = 0;

		if (len == 6 && memcmp(attr, "length", 6) == 0)
			return NULL;		/* a number we cannot point at; rare, treated as undefined */
		if (len == 0 || len > 9 || (len > 1 && attr[0] == '0'))
			return NULL;
		for (size_t i = 0; i < len; i++)
		{
			if (attr[i] < '0' || attr[i] > '9')
				return NULL;
			idx = idx * 10 + (attr[i] - '0');
		}
		return idx < data->len ? &data->v.items[idx] : NULL;
	}
	return NULL;
}
