/*
 * query.c — compile TopGun queries (where, predicate trees, sort, limit)
 * into a TgQuery (PostgreSQL-free; see query.h for the language).
 * Evaluation, sort and cursors are query_eval.c; JS values query_value.c.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query/query_internal.h"

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
	q->arena.chunk_min = 1024;	/* a subscription keeps it: stay small */
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
