/*
 * fuzz_query.c — libFuzzer target for the live-query engine (src/query).
 *
 * Input: a msgpack array [query, value, value, ...] (anything else is also
 * tried as a raw regex pattern/subject pair).  For every input: compile the
 * query (errors are fine), evaluate it on every value, check that the sort
 * order is antisymmetric and transitive (a total order), that a cursor made
 * for a result is accepted back as "valid" and does not place that result
 * after itself, and that the index prefilter (every attribute indexed) has
 * at most one comparison per predicate node, which bounds the parameters of
 * its SQL (src/exec/query_sql.c), and that every match satisfies the
 * equality tg_query_required_eq names (a composite index reads only that
 * group, src/exec/query_fetch.c).  Any violated property traps.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query/query.h"
#include "wire/msgpack.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
sign(int v)
{
	return (v > 0) - (v < 0);
}

static int
all_indexed(const char *attr, size_t len, void *arg)
{
	(void) attr;
	(void) arg;
	return (len & 1) ? TG_PRE_EQUALITY : TG_PRE_ORDERED;
}

/* comparisons in a prefilter (traps on a malformed tree) */
static int
pre_leaves(const TgPre *p, int depth)
{
	int			n = 0;

	if (p == NULL || depth > TG_QUERY_MAX_NODES)
		__builtin_trap();
	if (p->kind == TG_PRE_CMP)
	{
		if (p->attr == NULL || p->value == NULL || p->op < TG_PRE_EQ || p->op > TG_PRE_PREFIX ||
			(p->op == TG_PRE_PREFIX && (p->value->type != MP_STR || p->prefixlen == 0 ||
										p->prefixlen > p->value->len)))
			__builtin_trap();
		return 1;
	}
	if (p->n < 2)
		__builtin_trap();
	for (int i = 0; i < p->n; i++)
		n += pre_leaves(p->kids[i], depth + 1);
	return n;
}

static MpNode
str_node(const char *s, size_t len)
{
	MpNode		n;

	memset(&n, 0, sizeof(n));
	n.type = MP_STR;
	n.v.s = s;
	n.len = (uint32_t) len;
	return n;
}

/* {predicate: {op: 'eq', attribute: attr, value: value}} compiled */
static TgQuery *
eq_query(const char *attr, size_t len, const MpNode *value)
{
	MpNode		pred[6],
				top[2],
				q;
	char		err[256];

	pred[0] = str_node("op", 2);
	pred[1] = str_node("eq", 2);
	pred[2] = str_node("attribute", 9);
	pred[3] = str_node(attr, len);
	pred[4] = str_node("value", 5);
	pred[5] = *value;
	memset(&top[1], 0, sizeof(top[1]));
	top[0] = str_node("predicate", 9);
	top[1].type = MP_MAP;
	top[1].len = 3;
	top[1].v.kv = pred;
	memset(&q, 0, sizeof(q));
	q.type = MP_MAP;
	q.len = 1;
	q.v.kv = top;
	return tg_query_compile(&q, err, sizeof(err));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	MpArena		arena;
	MpLimits	lim = {32, 4096, 65536};
	char		err[256];
	MpNode	   *root;
	TgQuery    *q;

	if (size > 65536)
		return 0;

	/* raw regex: pattern \0 subject */
	{
		const uint8_t *nul = memchr(data, 0, size);

		if (nul != NULL)
		{
			size_t		plen = (size_t) (nul - data);
			TgRegex    *re = tg_regex_compile((const char *) data, plen, (plen & 1) != 0,
											  err, sizeof(err));

			if (re != NULL)
			{
				(void) tg_regex_test(re, (const char *) nul + 1, size - plen - 1);
				tg_regex_free(re);
			}
		}
	}

	mp_arena_init(&arena);
	root = mp_decode(&arena, data, size, &lim, err, sizeof(err));
	if (root == NULL || root->type != MP_ARRAY || root->len == 0)
	{
		mp_arena_free(&arena);
		return 0;
	}
	q = tg_query_compile(&root->v.items[0], err, sizeof(err));
	if (q == NULL)
	{
		if (err[0] == '\0')
			__builtin_trap();	/* a rejection always says why */
		mp_arena_free(&arena);
		return 0;
	}
	{
		MpArena		pa;
		const TgPre *pre;

		mp_arena_init(&pa);
		pre = tg_query_prefilter(q, &pa, all_indexed, NULL);
		if (pre && pre_leaves(pre, 0) > TG_QUERY_MAX_NODES)
			__builtin_trap();
		mp_arena_free(&pa);
	}
	{
		const char *attr;
		size_t		alen;
		const MpNode *value;

		if (tg_query_required_eq(q, all_indexed, NULL, &attr, &alen, &value))
		{
			TgQuery    *eq = eq_query(attr, alen, value);

			if (eq == NULL)
				__builtin_trap();
			for (uint32_t i = 1; i < root->len; i++)
				if (tg_query_match(q, &root->v.items[i]) && !tg_query_match(eq, &root->v.items[i]))
					__builtin_trap();	/* a match outside the equality group */
			tg_query_free(eq);
		}
	}
	for (uint32_t i = 1; i < root->len; i++)
	{
		const MpNode *v = &root->v.items[i];
		char		key[16];
		char		cursor[16384];

		(void) tg_query_match(q, v);
		snprintf(key, sizeof(key), "k%u", i);
		if (tg_query_cursor_make(q, key, strlen(key), v, 1000, cursor, sizeof(cursor)))
		{
			TgCursor	cur;
			const char *st = tg_query_cursor_check(q, cursor, strlen(cursor), 1000, 600000, &cur);

			if (strcmp(st, "valid") != 0)
				__builtin_trap();
			if (tg_query_after(q, &cur, key, strlen(key), v))
				__builtin_trap();
			tg_query_cursor_free(&cur);
		}
		for (uint32_t j = 1; j < root->len && j < 8; j++)
		{
			char		key2[16];
			int			ab,
						ba;

			snprintf(key2, sizeof(key2), "k%u", j);
			ab = tg_query_compare(q, key, strlen(key), v, key2, strlen(key2), &root->v.items[j]);
			ba = tg_query_compare(q, key2, strlen(key2), &root->v.items[j], key, strlen(key), v);
			if (sign(ab) != -sign(ba))
				__builtin_trap();
			for (uint32_t k = 1; k < root->len && k < 8; k++)
			{
				char		key3[16];

				snprintf(key3, sizeof(key3), "k%u", k);
				if (ab < 0 &&
					tg_query_compare(q, key2, strlen(key2), &root->v.items[j], key3, strlen(key3),
									 &root->v.items[k]) < 0 &&
					tg_query_compare(q, key, strlen(key), v, key3, strlen(key3), &root->v.items[k]) >= 0)
					__builtin_trap();	/* the sort order is total: < is transitive */
			}
		}
	}
	tg_query_free(q);
	mp_arena_free(&arena);
	return 0;
}
