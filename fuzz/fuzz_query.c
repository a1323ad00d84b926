/*
 * fuzz_query.c — libFuzzer target for the live-query engine (src/query).
 *
 * Input: a msgpack array [query, value, value, ...] (anything else is also
 * tried as a raw regex pattern/subject pair).  For every input: compile the
 * query (errors are fine), evaluate it on every value, check that the sort
 * order is antisymmetric, that a cursor made for a result is accepted back as
 * "valid" and does not place that result after itself.  Any violated
 * property traps.
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
		}
	}
	tg_query_free(q);
	mp_arena_free(&arena);
	return 0;
}
