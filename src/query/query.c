/*
 * query.c — compile and evaluate TopGun queries with JavaScript semantics
 * (PostgreSQL-free; see query.h for the language).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query/query.h"


enum
{
	Q_EQ,
	Q_NEQ,
	Q_GT,
	Q_GTE,
	Q_LT,
	Q_LTE,
	Q_LIKE,
	Q_REGEX,
	Q_AND,
	Q_OR,
	Q_NOT,
	Q_TRUE,
	Q_FALSE
};

typedef struct QNode
{
	int			op;
	const char *attr;			/* NULL: leaf without attribute (false) */
	size_t		attrlen;
	const MpNode *value;		/* NULL: undefined */
	TgRegex    *re;
	int			nchildren;
	struct QNode **children;
} QNode;

typedef struct QSort
{
	const char *field;
	size_t		len;
	bool		desc;
} QSort;

struct TgQuery
{
	MpArena		arena;
	QNode	   *root;
	int			nnodes;
	QSort		sort[TG_QUERY_MAX_SORT];
	int			nsort;
	int64_t		limit;
	uint32_t	hash;
	TgRegex   **regexes;		/* to free */
	int			nregexes;
	int			capregexes;
};

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

/* ------------------------------------------------------------ JS values */

typedef enum JsType
{
	JS_UNDEFINED,
	JS_NULL,
	JS_BOOL,
	JS_NUMBER,
	JS_STRING,
	JS_ARRAY,
	JS_OBJECT
} JsType;

static JsType
js_type(const MpNode *v)
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

static bool
strict_eq(const MpNode *a, const MpNode *b)
{
	JsType		ta = js_type(a),
				tb = js_type(b);

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
	switch (js_type(v))
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
				if (js_type(e) != JS_NULL && js_type(e) != JS_UNDEFINED)
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
	switch (js_type(v))
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
static int
utf16_cmp(const char *a, size_t alen, const char *b, size_t blen)
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
static int
js_compare(const MpNode *a, const MpNode *b)
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
		r = utf16_cmp(sa.p, sa.len, sb.p, sb.len);
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

/* data[attribute] */
static const MpNode *
get_attr(const MpNode *data, const char *attr, size_t len)
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

/* ------------------------------------------------------------ compile */

typedef struct Compiler
{
	TgQuery    *q;
	char	   *err;
	size_t		errlen;
	bool		failed;
} Compiler;

static void
cerr(Compiler *cc, const char *fmt, const char *arg)
{
	if (!cc->failed)
		snprintf(cc->err, cc->errlen, fmt, arg);
	cc->failed = true;
}

static QNode *
qnode_new(Compiler *cc, int op)
{
	QNode	   *n;

	if (cc->failed)
		return NULL;
	if (++cc->q->nnodes > TG_QUERY_MAX_NODES)
	{
		cerr(cc, "query has more than %s predicate nodes", "256");
		return NULL;
	}
	n = mp_arena_alloc(&cc->q->arena, sizeof(QNode));
	if (n == NULL)
	{
		cerr(cc, "%s", "out of memory");
		return NULL;
	}
	memset(n, 0, sizeof(*n));
	n->op = op;
	return n;
}

static bool
keep_regex(Compiler *cc, TgRegex *re)
{
	TgQuery    *q = cc->q;

	if (q->nregexes == q->capregexes)
	{
		int			cap = q->capregexes ? q->capregexes * 2 : 4;
		TgRegex   **r = realloc(q->regexes, sizeof(TgRegex *) * cap);

		if (r == NULL)
		{
			tg_regex_free(re);
			cerr(cc, "%s", "out of memory");
			return false;
		}
		q->regexes = r;
		q->capregexes = cap;
	}
	q->regexes[q->nregexes++] = re;
	return true;
}

/* like pattern → regex source: % → .*, _ → ., metacharacters escaped except * and ? */
static TgRegex *
like_regex(Compiler *cc, const char *p, size_t len)
{
	char	   *src;
	size_t		o = 0;
	TgRegex    *re;
	char		err[160];

	if (len > TG_REGEX_MAX_PATTERN / 2)
	{
		cerr(cc, "like pattern longer than %s bytes", "512");
		return NULL;
	}
	src = malloc(2 * len + 3);
	if (src == NULL)
	{
		cerr(cc, "%s", "out of memory");
		return NULL;
	}
	src[o++] = '^';
	for (size_t i = 0; i < len; i++)
	{
		char		c = p[i];

		if (c == '%')
		{
			src[o++] = '.';
			src[o++] = '*';
		}
		else if (c == '_')
			src[o++] = '.';
		else
		{
			if (strchr(".+^${}()|[]\\", c) != NULL && c != '\0')
				src[o++] = '\\';
			src[o++] = c;
		}
	}
	src[o++] = '$';
	re = tg_regex_compile(src, o, true, err, sizeof(err));
	free(src);
	if (re == NULL)
		cerr(cc, "invalid like pattern: %s", err);
	return re;
}

static QNode *compile_pred(Compiler *cc, const MpNode *n, int depth);

static QNode *
compile_pred(Compiler *cc, const MpNode *n, int depth)
{
	static const char *const names[] = {"eq", "neq", "gt", "gte", "lt", "lte", "like", "regex",
	"and", "or", "not"};
	const MpNode *op,
			   *attr,
			   *value,
			   *children;
	QNode	   *q;
	int			k;

	if (depth > 32)
	{
		cerr(cc, "%s", "predicate nested too deeply");
		return NULL;
	}
	if (n == NULL || n->type != MP_MAP)
	{
		cerr(cc, "%s", "predicate: expected a map");
		return NULL;
	}
	op = mp_map_get(n, "op");
	if (op == NULL || op->type != MP_STR)
	{
		cerr(cc, "%s", "predicate.op: expected a string");
		return NULL;
	}
	for (k = 0; k < 11; k++)
		if (mp_str_eq(op, names[k]))
			break;
	if (k == 11)
	{
		char		tmp[64];

		snprintf(tmp, sizeof(tmp), "%.*s", (int) (op->len > 40 ? 40 : op->len), op->v.s);
		cerr(cc, "unsupported predicate op '%s'", tmp);
		return NULL;
	}
	q = qnode_new(cc, k);
	if (q == NULL)
		return NULL;
	attr = mp_map_get(n, "attribute");
	value = mp_map_get(n, "value");
	children = mp_map_get(n, "children");
	if (attr != NULL && attr->type != MP_STR && attr->type != MP_NIL)
	{
		cerr(cc, "%s", "predicate.attribute: expected a string");
		return NULL;
	}
	if (children != NULL && children->type != MP_ARRAY && children->type != MP_NIL)
	{
		cerr(cc, "%s", "predicate.children: expected an array");
		return NULL;
	}
	if (k == Q_AND || k == Q_OR || k == Q_NOT)
	{
		uint32_t	nc = (children && children->type == MP_ARRAY) ? children->len : 0;

		if (k == Q_NOT && nc > 1)
			nc = 1;				/* not uses children[0] only */
		q->nchildren = (int) nc;
		q->children = mp_arena_alloc(&cc->q->arena, sizeof(QNode *) * (nc ? nc : 1));
		if (q->children == NULL)
		{
			cerr(cc, "%s", "out of memory");
			return NULL;
		}
		for (uint32_t i = 0; i < nc; i++)
		{
			q->children[i] = compile_pred(cc, &children->v.items[i], depth + 1);
			if (q->children[i] == NULL)
				return NULL;
		}
		return q;
	}
	if (attr == NULL || attr->type != MP_STR)
	{
		q->op = Q_FALSE;		/* a leaf without attribute is false */
		return q;
	}
	q->attr = mp_arena_strndup(&cc->q->arena, attr->v.s, attr->len);
	q->attrlen = attr->len;
	if (value)
	{
		q->value = mp_node_copy(&cc->q->arena, value);
		if (q->value == NULL || q->attr == NULL)
		{
			cerr(cc, "%s", "out of memory");
			return NULL;
		}
	}
	if (k == Q_LIKE || k == Q_REGEX)
	{
		char		err[160];

		if (value == NULL || value->type != MP_STR)
		{
			cerr(cc, "%s: expected a string value", names[k]);
			return NULL;
		}
		if (k == Q_LIKE)
			q->re = like_regex(cc, value->v.s, value->len);
		else
		{
			q->re = tg_regex_compile(value->v.s, value->len, false, err, sizeof(err));
			if (q->re == NULL)
				cerr(cc, "unsupported regex: %s", err);
		}
		if (q->re == NULL || !keep_regex(cc, q->re))
			return NULL;
	}
	return q;
}

/* where {attr: value | {$op: v}} → and of leaves. */
static QNode *
compile_where(Compiler *cc, const MpNode *w)
{
	QNode	   *and;
	int			n = 0;

	if (w->type != MP_MAP)
	{
		cerr(cc, "%s", "where: expected a map");
		return NULL;
	}
	and = qnode_new(cc, Q_AND);
	if (and == NULL)
		return NULL;
	and->children = mp_arena_alloc(&cc->q->arena, sizeof(QNode *) * (4 * w->len + 1));
	if (and->children == NULL)
	{
		cerr(cc, "%s", "out of memory");
		return NULL;
	}
	for (uint32_t i = 0; i < w->len; i++)
	{
		const MpNode *k = &w->v.kv[2 * i];
		const MpNode *v = &w->v.kv[2 * i + 1];
		char	   *attr;

		if (k->type != MP_STR)
		{
			cerr(cc, "%s", "where: keys must be strings");
			return NULL;
		}
		if (v->type == MP_UNDEFINED)
			continue;
		attr = mp_arena_strndup(&cc->q->arena, k->v.s, k->len);
		if (attr == NULL)
		{
			cerr(cc, "%s", "out of memory");
			return NULL;
		}
		if (v->type == MP_ARRAY || v->type == MP_BIN || v->type == MP_EXT)
		{
			/* compared by identity: never matches */
			QNode	   *f = qnode_new(cc, Q_FALSE);

			if (f == NULL)
				return NULL;
			and->children[n++] = f;
		}
		else if (v->type == MP_MAP)
		{
			for (uint32_t j = 0; j < v->len; j++)
			{
				static const char *const ops[] = {"$gt", "$gte", "$lt", "$lte", "$ne"};
				static const int codes[] = {Q_GT, Q_GTE, Q_LT, Q_LTE, Q_NEQ};
				const MpNode *ok = &v->v.kv[2 * j];
				int			m;
				QNode	   *leaf;

				for (m = 0; m < 5; m++)
					if (mp_str_eq(ok, ops[m]))
						break;
				leaf = qnode_new(cc, m < 5 ? codes[m] : Q_FALSE);
				if (leaf == NULL)
					return NULL;
				leaf->attr = attr;
				leaf->attrlen = k->len;
				if (v->v.kv[2 * j + 1].type != MP_UNDEFINED)
				{
					leaf->value = mp_node_copy(&cc->q->arena, &v->v.kv[2 * j + 1]);
					if (leaf->value == NULL)
					{
						cerr(cc, "%s", "out of memory");
						return NULL;
					}
				}
				and->children[n++] = leaf;
				if (n >= (int) (4 * w->len))
				{
					cerr(cc, "%s", "where: too many conditions");
					return NULL;
				}
			}
		}
		else
		{
			QNode	   *leaf = qnode_new(cc, Q_EQ);

			if (leaf == NULL)
				return NULL;
			leaf->attr = attr;
			leaf->attrlen = k->len;
			leaf->value = mp_node_copy(&cc->q->arena, v);
			if (leaf->value == NULL)
			{
				cerr(cc, "%s", "out of memory");
				return NULL;
			}
			and->children[n++] = leaf;
		}
	}
	and->nchildren = n;
	return and;
}

static uint32_t
fnv_bytes(uint32_t h, const void *p, size_t n)
{
	const unsigned char *u = p;

	for (size_t i = 0; i < n; i++)
	{
		h ^= u[i];
		h *= 16777619u;
	}
	return h;
}

static uint32_t
hash_node(uint32_t h, const MpNode *n, int depth)
{
	uint8_t		t;

	if (n == NULL || depth > 64)
		return fnv_bytes(h, "\xff", 1);
	t = (uint8_t) n->type;
	h = fnv_bytes(h, &t, 1);
	switch (n->type)
	{
		case MP_BOOL:
			return fnv_bytes(h, &n->v.b, 1);
		case MP_INT:
		case MP_UINT:
		case MP_FLOAT:
			{
				double		d = mp_number_as_double(n);

				return fnv_bytes(h, &d, sizeof(d));
			}
		case MP_STR:
			h = fnv_bytes(h, &n->len, sizeof(n->len));
			return fnv_bytes(h, n->v.s, n->len);
		case MP_BIN:
			return fnv_bytes(h, n->v.bin, n->len);
		case MP_ARRAY:
			for (uint32_t i = 0; i < n->len; i++)
				h = hash_node(h, &n->v.items[i], depth + 1);
			return h;
		case MP_MAP:
			for (uint32_t i = 0; i < 2 * n->len; i++)
				h = hash_node(h, &n->v.kv[i], depth + 1);
			return h;
		default:
			return h;
	}
}

TgQuery *
tg_query_compile(const MpNode *query, char *err, size_t errlen)
{
	Compiler	cc;
	TgQuery    *q = calloc(1, sizeof(TgQuery));
	const MpNode *where = NULL,
			   *pred = NULL,
			   *sort = NULL,
			   *limit = NULL;

	if (q == NULL)
	{
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	mp_arena_init(&q->arena);
	q->limit = -1;
	cc.q = q;
	cc.err = err;
	cc.errlen = errlen;
	cc.failed = false;
	q->hash = 2166136261u;

	if (query != NULL && query->type != MP_NIL && query->type != MP_UNDEFINED)
	{
		if (query->type != MP_MAP)
		{
			cerr(&cc, "%s", "query: expected a map");
			goto fail;
		}
		where = mp_map_get(query, "where");
		pred = mp_map_get(query, "predicate");
		sort = mp_map_get(query, "sort");
		limit = mp_map_get(query, "limit");
	}
	if (pred && pred->type != MP_NIL)
	{
		q->root = compile_pred(&cc, pred, 0);
		q->hash = hash_node(fnv_bytes(q->hash, "p", 1), pred, 0);
	}
	else if (where && where->type != MP_NIL)
	{
		q->root = compile_where(&cc, where);
		q->hash = hash_node(fnv_bytes(q->hash, "w", 1), where, 0);
	}
	if (cc.failed)
		goto fail;
	if (sort && sort->type != MP_NIL)
	{
		if (sort->type != MP_MAP)
		{
			cerr(&cc, "%s", "sort: expected a map");
			goto fail;
		}
		for (uint32_t i = 0; i < sort->len; i++)
		{
			const MpNode *f = &sort->v.kv[2 * i];
			const MpNode *d = &sort->v.kv[2 * i + 1];

			if (f->type != MP_STR || !(mp_str_eq(d, "asc") || mp_str_eq(d, "desc")))
			{
				cerr(&cc, "%s", "sort: expected field -> 'asc' | 'desc'");
				goto fail;
			}
			if (q->nsort == TG_QUERY_MAX_SORT)
			{
				cerr(&cc, "%s", "sort: at most 8 fields");
				goto fail;
			}
			q->sort[q->nsort].field = mp_arena_strndup(&q->arena, f->v.s, f->len);
			if (q->sort[q->nsort].field == NULL)
			{
				cerr(&cc, "%s", "out of memory");
				goto fail;
			}
			q->sort[q->nsort].len = f->len;
			q->sort[q->nsort].desc = mp_str_eq(d, "desc");
			q->nsort++;
		}
		q->hash = hash_node(fnv_bytes(q->hash, "s", 1), sort, 0);
	}
	if (limit && limit->type != MP_NIL)
	{
		double		l;

		if (!mp_is_number(limit))
		{
			cerr(&cc, "%s", "limit: expected a number");
			goto fail;
		}
		l = mp_number_as_double(limit);
		if (!(l >= 0) || l > 1e15)
		{
			cerr(&cc, "%s", "limit: expected a non-negative number");
			goto fail;
		}
		q->limit = (int64_t) ceil(l);	/* slice(0, 2.5) takes 3 elements */
	}
	return q;

fail:
	tg_query_free(q);
	return NULL;
}

void
tg_query_free(TgQuery *q)
{
	if (q == NULL)
		return;
	for (int i = 0; i < q->nregexes; i++)
		tg_regex_free(q->regexes[i]);
	free(q->regexes);
	mp_arena_free(&q->arena);
	free(q);
}

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
	v = get_attr(data, n->attr, n->attrlen);
	switch (n->op)
	{
		case Q_EQ:
			return strict_eq(v, n->value);
		case Q_NEQ:
			return !strict_eq(v, n->value);
		case Q_LIKE:
		case Q_REGEX:
			return v != NULL && v->type == MP_STR && tg_regex_test(n->re, v->v.s, v->len);
		default:
			c = js_compare(v, n->value);
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
	if (value == NULL || value->type == MP_NIL || value->type == MP_UNDEFINED)
		return false;			/* tombstones never match */
	return q->root == NULL || eval(q->root, value);
}

static int
key_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	return utf16_cmp(a, alen, b, blen);
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
			c = js_compare(get_attr(a, s->field, s->len), get_attr(b, s->field, s->len));
			if (c == 2)
				c = 0;			/* incomparable: neither < nor > */
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

			if (c->op == Q_EQ && c->attr && c->value && js_type(c->value) <= JS_STRING &&
				js_type(c->value) >= JS_NULL)
			{
				*attr = c->attr;
				*attrlen = c->attrlen;
				*value = c->value;
				return true;
			}
		}
		return false;
	}
	if (n->op == Q_EQ && n->attr && n->value && js_type(n->value) <= JS_STRING &&
		js_type(n->value) >= JS_NULL)
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
		sv = get_attr(value, q->sort[0].field, q->sort[0].len);
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
		c = js_compare(get_attr(value, q->sort[0].field, q->sort[0].len), cur->sort_value);
		if (c == 2)
			c = 0;
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
