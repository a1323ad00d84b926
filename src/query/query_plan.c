/*
 * query_plan.c — what an index can do for a compiled query (issue 13).
 *
 * tg_query_prefilter turns the query's filter into a *prefilter*: a tree of
 * AND / OR over comparisons "attribute op constant" on indexed attributes
 * whose matches are a SUPERSET of the query's matches.  The reader turns it
 * into SQL over per-map expression indexes (value #> '{attr}') and then
 * applies the exact JavaScript-semantics predicate (query_eval.c) to the
 * candidates, so results are the same with and without an index; the
 * prefilter only has to be sound, never exact.
 *
 * What is sound (see docs/live.md "Indexes"):
 *   eq with null / boolean / string / number (|n| <= 2^53)   -> v = c
 *     (=== on these types is jsonb equality: numbers by value, strings by
 *     bytes; undefined, objects and arrays never === a scalar)
 *   gt/gte/lt/lte with a number (btree only)                 -> a range on
 *     numbers plus every non-number value (JS converts strings, booleans,
 *     null and arrays with ToNumber, so those may match: the reader keeps
 *     them as candidates; see query_sql.c)
 *   and: the prefilters of the children that have one; or: only if every
 *   child has one.  Everything else (neq, like, regex, not, comparisons
 *   with strings, whose JS order is UTF-16 and not the database collation's)
 *   has none: the enclosing and/or decides.
 *
 * tg_query_required_eq finds an equality every match satisfies (a child of
 * the top-level and) on an attribute the caller can use, for reading one
 * equality group of a two-field index (A, sort field) in index order.
 *
 * tg_query_sort_field names the first sort field (for reading a page in
 * index order) and tg_query_sort_tie tells whether two values tie on it.
 */
#include <math.h>
#include <string.h>

#include "query/query_internal.h"

#define EXACT_INT	9007199254740992.0	/* 2^53 */

static bool
exact_number(const MpNode *v)
{
	double		d;

	if (v == NULL || tgq_js_type(v) != JS_NUMBER)
		return false;
	d = mp_number_as_double(v);
	return isfinite(d) && fabs(d) <= EXACT_INT;
}

/*
 * The constants jsonb equality finds exactly what === finds for: null,
 * booleans, strings, numbers |n| <= 2^53.
 */
static bool
eq_indexable(const MpNode *v)
{
	JsType		t = tgq_js_type(v);

	return t == JS_NULL || t == JS_BOOL || t == JS_STRING || exact_number(v);
}

static TgPre *
pre_new(MpArena *arena, int kind)
{
	TgPre	   *p = mp_arena_alloc(arena, sizeof(TgPre));

	if (p)
		memset(p, 0, sizeof(*p));
	if (p)
		p->kind = kind;
	return p;
}

/*
 * like 'p%…': only strings match, and a match starts with the pattern's
 * literal prefix.  The prefix stops at a wildcard (% _), before a character
 * that * or ? applies to (the reference keeps their regex meaning), and at
 * anything but an ASCII non-letter: like is case-insensitive, and only
 * characters without case spell one byte sequence.
 */
static const TgPre *
like_prefix(const QNode *n, MpArena *arena, TgPreIndexed indexed, void *arg)
{
	size_t		k = 0;
	TgPre	   *p;

	if (n->attr == NULL || n->value == NULL || n->value->type != MP_STR ||
		indexed(n->attr, n->attrlen, arg) != TG_PRE_ORDERED)
		return NULL;
	while (k < n->value->len)
	{
		unsigned char c = (unsigned char) n->value->v.s[k];

		if (c < 0x20 || c > 0x7e || c == '%' || c == '_' || c == '*' || c == '?' ||
			(c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'))
			break;
		if (k + 1 < n->value->len && (n->value->v.s[k + 1] == '*' || n->value->v.s[k + 1] == '?'))
			break;
		k++;
	}
	if (k == 0 || (p = pre_new(arena, TG_PRE_CMP)) == NULL)
		return NULL;
	p->op = TG_PRE_PREFIX;
	p->attr = n->attr;
	p->attrlen = n->attrlen;
	p->value = n->value;
	p->prefixlen = k;
	return p;
}

static const TgPre *
plan(const QNode *n, MpArena *arena, TgPreIndexed indexed, void *arg, int depth)
{
	TgPre	   *p;
	const TgPre **kids;
	int			nk = 0;
	int			how;

	if (n == NULL || depth > 64)
		return NULL;
	switch (n->op)
	{
		case Q_AND:
		case Q_OR:
			kids = mp_arena_alloc(arena, sizeof(TgPre *) * (n->nchildren > 0 ? n->nchildren : 1));
			if (kids == NULL)
				return NULL;
			for (int i = 0; i < n->nchildren; i++)
			{
				const TgPre *k = plan(n->children[i], arena, indexed, arg, depth + 1);

				if (k)
					kids[nk++] = k;
				else if (n->op == Q_OR)
					return NULL;	/* one unrestricted branch: all rows */
			}
			if (nk == 0)
				return NULL;
			if (nk == 1)
				return kids[0];
			p = pre_new(arena, n->op == Q_AND ? TG_PRE_AND : TG_PRE_OR);
			if (p == NULL)
				return NULL;
			p->n = nk;
			p->kids = kids;
			return p;
		case Q_EQ:
		case Q_GT:
		case Q_GTE:
		case Q_LT:
		case Q_LTE:
			break;
		case Q_LIKE:
			return like_prefix(n, arena, indexed, arg);
		default:
			return NULL;
	}
	if (n->attr == NULL || n->value == NULL)
		return NULL;
	how = indexed(n->attr, n->attrlen, arg);
	if (how == TG_PRE_NONE)
		return NULL;
	if (n->op == Q_EQ)
	{
		if (!eq_indexable(n->value))
			return NULL;
	}
	else if (how != TG_PRE_ORDERED || !exact_number(n->value))
		return NULL;
	p = pre_new(arena, TG_PRE_CMP);
	if (p == NULL)
		return NULL;
	p->op = n->op == Q_EQ ? TG_PRE_EQ : n->op == Q_GT ? TG_PRE_GT : n->op == Q_GTE ? TG_PRE_GTE
		: n->op == Q_LT ? TG_PRE_LT : TG_PRE_LTE;
	p->attr = n->attr;
	p->attrlen = n->attrlen;
	p->value = n->value;
	return p;
}

const TgPre *
tg_query_prefilter(const TgQuery *q, MpArena *arena, TgPreIndexed indexed, void *arg)
{
	return q->root ? plan(q->root, arena, indexed, arg, 0) : NULL;
}

static const QNode *
required_eq(const QNode *n, TgPreIndexed usable, void *arg, int depth)
{
	if (n == NULL || depth > 64)
		return NULL;
	if (n->op == Q_AND)
	{
		for (int i = 0; i < n->nchildren; i++)
		{
			const QNode *e = required_eq(n->children[i], usable, arg, depth + 1);

			if (e)
				return e;
		}
		return NULL;
	}
	if (n->op == Q_EQ && n->attr && n->value && eq_indexable(n->value) &&
		usable(n->attr, n->attrlen, arg) != TG_PRE_NONE)
		return n;
	return NULL;
}

bool
tg_query_required_eq(const TgQuery *q, TgPreIndexed usable, void *arg, const char **attr,
					 size_t *len, const MpNode **value)
{
	const QNode *e = required_eq(q->root, usable, arg, 0);

	if (e == NULL)
		return false;
	*attr = e->attr;
	*len = e->attrlen;
	*value = e->value;
	return true;
}

int
tg_query_sort_count(const TgQuery *q)
{
	return q->nsort;
}

void
tg_query_set_limit(TgQuery *q, int64_t limit)
{
	q->limit = limit;
}

size_t
tg_query_bytes(const TgQuery *q)
{
	return sizeof(TgQuery) + q->arena.allocated;
}

const MpNode *
tg_query_attr(const MpNode *value, const char *attr, size_t len)
{
	return tgq_get_attr(value, attr, len);
}

bool
tg_query_sort_field(const TgQuery *q, const char **field, size_t *len, bool *desc)
{
	if (q->nsort == 0 || (q->sort[0].len == 4 && memcmp(q->sort[0].field, "_key", 4) == 0))
		return false;
	*field = q->sort[0].field;
	*len = q->sort[0].len;
	*desc = q->sort[0].desc;
	return true;
}

bool
tg_query_sort_tie(const TgQuery *q, const MpNode *a, const MpNode *b)
{
	if (q->nsort == 0)
		return false;
	return tgq_sort_compare(tgq_get_attr(a, q->sort[0].field, q->sort[0].len),
							tgq_get_attr(b, q->sort[0].field, q->sort[0].len)) == 0;
}
