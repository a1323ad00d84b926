/*
 * regex_run.c — tg_regex_test(): the Pike VM (Thompson NFA simulation)
 * over the subject's UTF-16 units; time O(subject x program), memory
 * O(program).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query/regex_internal.h"


static bool
in_class(const TgRegex *re, const Class *cl, uint16_t c)
{
	bool		hit = false;

	for (uint32_t k = 0; k < cl->n && !hit; k++)
	{
		const Range *r = &re->ranges[cl->first + k];

		if (c >= r->lo && c <= r->hi)
			hit = true;
		else if (re->icase)
		{
			/* case-insensitive: either case of c */
			uint16_t	l = tgr_fold(c);
			uint16_t	u = (c >= 'a' && c <= 'z') ? c - 32 :
				((c >= 0xE0 && c <= 0xFE && c != 0xF7) ? c - 32 : c);

			if ((l >= r->lo && l <= r->hi) || (u >= r->lo && u <= r->hi))
				hit = true;
		}
	}
	return hit != cl->negate;
}

static bool
is_word(uint16_t c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

typedef struct Threads
{
	uint32_t   *pc;
	uint32_t	n;
} Threads;

/*
 * Add pc and everything reachable through empty transitions at position i.
 * Returns true if MATCH is reachable.
 */
static bool
add_thread(const TgRegex *re, Threads *list, uint32_t *mark, uint32_t gen_id,
		   uint32_t *stack, uint32_t pc0, const uint16_t *s, size_t n, size_t i)
{
	uint32_t	sp = 0;

	stack[sp++] = pc0;
	while (sp > 0)
	{
		uint32_t	pc = stack[--sp];
		const Inst *in;

		if (mark[pc] == gen_id)
			continue;
		mark[pc] = gen_id;
		in = &re->prog[pc];
		switch (in->op)
		{
			case I_JMP:
				stack[sp++] = in->x;
				break;
			case I_SPLIT:
				stack[sp++] = in->y;
				stack[sp++] = in->x;
				break;
			case I_BOL:
				if (i == 0)
					stack[sp++] = pc + 1;
				break;
			case I_EOL:
				if (i == n)
					stack[sp++] = pc + 1;
				break;
			case I_WORDB:
			case I_NWORDB:
				{
					bool		a = i > 0 && is_word(s[i - 1]);
					bool		b = i < n && is_word(s[i]);

					if ((a != b) == (in->op == I_WORDB))
						stack[sp++] = pc + 1;
					break;
				}
			case I_MATCH:
				return true;
			default:
				list->pc[list->n++] = pc;
				break;
		}
	}
	return false;
}

bool
tg_regex_test(const TgRegex *re, const char *subject, size_t len)
{
	uint16_t   *s;
	size_t		n;
	uint32_t   *mark,
			   *stack;
	Threads		cur,
				nxt;
	bool		matched = false;
	uint32_t	gen_id = 0;

	if (re == NULL || len > TG_REGEX_MAX_SUBJECT)
		return false;
	s = malloc(sizeof(uint16_t) * (2 * len + 1));
	mark = calloc(re->nprog, sizeof(uint32_t));
	/* every pc is pushed at most twice per closure (split pushes two) */
	stack = malloc(sizeof(uint32_t) * (2 * re->nprog + 2));
	cur.pc = malloc(sizeof(uint32_t) * re->nprog);
	nxt.pc = malloc(sizeof(uint32_t) * re->nprog);
	if (s == NULL || mark == NULL || stack == NULL || cur.pc == NULL || nxt.pc == NULL)
		goto done;
	n = tg_utf8_to_utf16(subject, len, s);
	cur.n = 0;
	for (size_t i = 0; i <= n && !matched; i++)
	{
		uint16_t	c;

		/* unanchored search: a new thread starts at every position */
		gen_id++;
		{
			/* re-mark the threads already in cur for this generation */
			for (uint32_t t = 0; t < cur.n; t++)
				mark[cur.pc[t]] = gen_id;
		}
		if (add_thread(re, &cur, mark, gen_id, stack, 0, s, n, i))
		{
			matched = true;
			break;
		}
		if (i == n)
			break;
		c = re->icase ? tgr_fold(s[i]) : s[i];
		nxt.n = 0;
		gen_id++;
		for (uint32_t t = 0; t < cur.n && !matched; t++)
		{
			const Inst *in = &re->prog[cur.pc[t]];
			bool		ok;

			switch (in->op)
			{
				case I_CHAR:
					ok = c == in->x;
					break;
				case I_ANY:
					ok = !(s[i] == '\n' || s[i] == '\r' || s[i] == 0x2028 || s[i] == 0x2029);
					break;
				case I_CLASS:
					ok = in_class(re, &re->classes[in->x], s[i]);
					break;
				default:
					ok = false;
					break;
			}
			if (ok && add_thread(re, &nxt, mark, gen_id, stack, cur.pc[t] + 1, s, n, i + 1))
				matched = true;
		}
		{
			Threads		tmp = cur;

			cur = nxt;
			nxt = tmp;
		}
	}
done:
	free(s);
	free(mark);
	free(stack);
	free(cur.pc);
	free(nxt.pc);
	return matched;
}

