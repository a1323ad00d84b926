/*
 * regex.c — the JavaScript RegExp subset used by `regex` and `like`
 * predicates (PostgreSQL-free).
 *
 * Semantics follow a JS RegExp without flags (or with only `i` for `like`):
 * the subject is matched as UTF-16 code units, `.` matches any unit except
 * line terminators, `^`/`$` anchor at the subject ends (no `m` flag), and
 * test() succeeds if the pattern matches anywhere.
 *
 * Supported: literals, `.`, `[...]` / `[^...]` with ranges and class
 * escapes, `\d \D \w \W \s \S \b \B`, `\t \n \v \f \r \0 \cX \xHH \uHHHH`,
 * escaped punctuation (and Annex B identity escapes of other letters),
 * groups `( )`, `(?: )`, `(?<name> )`, alternation `|`, quantifiers
 * `* + ? {n} {n,} {n,m}` (greedy or lazy: test() does not care).
 * Rejected (the caller answers ERROR 400): backreferences `\1`..`\9` and
 * `\k<name>`, lookahead/lookbehind, quantifiers on nothing, unbalanced
 * parentheses, counted repetitions above 1000, programs above
 * TG_REGEX_MAX_PROG instructions.
 *
 * Matching uses a Pike VM (Thompson NFA simulation): time O(subject x
 * program), memory O(program), never exponential.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query/regex_internal.h"

/* ------------------------------------------------------------ codegen */

static bool
emit(Parser *ps, uint8_t op, uint32_t x, uint32_t y, uint32_t *at)
{
	TgRegex    *re = ps->re;

	if (re->nprog >= TG_REGEX_MAX_PROG)
	{
		tgr_perr(ps, "regular expression too large");
		return false;
	}
	re->prog[re->nprog].op = op;
	re->prog[re->nprog].x = x;
	re->prog[re->nprog].y = y;
	if (at)
		*at = re->nprog;
	re->nprog++;
	return true;
}

static bool gen(Parser *ps, const RNode *n);

static bool
gen_star(Parser *ps, const RNode *a)
{
	uint32_t	split;

	if (!emit(ps, I_SPLIT, 0, 0, &split))
		return false;
	ps->re->prog[split].x = split + 1;
	if (!gen(ps, a))
		return false;
	if (!emit(ps, I_JMP, split, 0, NULL))
		return false;
	ps->re->prog[split].y = ps->re->nprog;
	return true;
}

static bool
gen(Parser *ps, const RNode *n)
{
	uint32_t	at;

	if (ps->failed)
		return false;
	switch (n->type)
	{
		case R_EMPTY:
			return true;
		case R_CHAR:
			return emit(ps, I_CHAR, n->x, 0, NULL);
		case R_ANY:
			return emit(ps, I_ANY, 0, 0, NULL);
		case R_CLASS:
			return emit(ps, I_CLASS, n->x, 0, NULL);
		case R_BOL:
			return emit(ps, I_BOL, 0, 0, NULL);
		case R_EOL:
			return emit(ps, I_EOL, 0, 0, NULL);
		case R_WB:
			return emit(ps, I_WORDB, 0, 0, NULL);
		case R_NWB:
			return emit(ps, I_NWORDB, 0, 0, NULL);
		case R_CAT:
			return gen(ps, n->a) && gen(ps, n->b);
		case R_ALT:
			{
				uint32_t	jmp;

				if (!emit(ps, I_SPLIT, 0, 0, &at))
					return false;
				ps->re->prog[at].x = at + 1;
				if (!gen(ps, n->a) || !emit(ps, I_JMP, 0, 0, &jmp))
					return false;
				ps->re->prog[at].y = ps->re->nprog;
				if (!gen(ps, n->b))
					return false;
				ps->re->prog[jmp].x = ps->re->nprog;
				return true;
			}
		case R_REP:
			for (int k = 0; k < n->min; k++)
				if (!gen(ps, n->a))
					return false;
			if (n->max < 0)
				return gen_star(ps, n->a);
			for (int k = n->min; k < n->max; k++)
			{
				/* optional copy: split(next, end of copy) */
				if (!emit(ps, I_SPLIT, 0, 0, &at))
					return false;
				ps->re->prog[at].x = at + 1;
				if (!gen(ps, n->a))
					return false;
				ps->re->prog[at].y = ps->re->nprog;
			}
			return true;
	}
	return false;
}

/* ------------------------------------------------------------ API */

uint16_t
tgr_fold(uint16_t c)
{
	if (c >= 'A' && c <= 'Z')
		return c + 32;
	if (c >= 0xC0 && c <= 0xDE && c != 0xD7)
		return c + 32;
	if (c >= 0x391 && c <= 0x3A9)	/* Greek capitals */
		return c + 32;
	if (c >= 0x410 && c <= 0x42F)	/* Cyrillic capitals */
		return c + 32;
	return c;
}

TgRegex *
tg_regex_compile(const char *pattern, size_t len, bool icase, char *err, size_t errlen)
{
	Parser		ps;
	TgRegex    *re;
	uint16_t   *units;
	RNode	   *root;

	if (len > TG_REGEX_MAX_PATTERN)
	{
		snprintf(err, errlen, "pattern longer than %d bytes", TG_REGEX_MAX_PATTERN);
		return NULL;
	}
	re = calloc(1, sizeof(TgRegex));
	units = malloc(sizeof(uint16_t) * (2 * len + 1));
	memset(&ps, 0, sizeof(ps));
	ps.capnodes = 4 * len + 16;
	ps.nodes = malloc(sizeof(RNode) * ps.capnodes);
	if (re)
		re->prog = malloc(sizeof(Inst) * TG_REGEX_MAX_PROG);
	if (re == NULL || units == NULL || ps.nodes == NULL || re->prog == NULL)
	{
		free(units);
		free(ps.nodes);
		tg_regex_free(re);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	re->icase = icase;
	ps.p = units;
	ps.n = tg_utf8_to_utf16(pattern, len, units);
	ps.re = re;
	ps.err = err;
	ps.errlen = errlen;

	root = tgr_parse_alt(&ps);
	if (!ps.failed && ps.i < ps.n)
		tgr_perr(&ps, "unmatched ')'");
	if (!ps.failed && root)
		gen(&ps, root);
	if (!ps.failed)
		emit(&ps, I_MATCH, 0, 0, NULL);
	free(units);
	free(ps.nodes);
	if (ps.failed || root == NULL)
	{
		if (!ps.failed)
			snprintf(err, errlen, "invalid regular expression");
		tg_regex_free(re);
		return NULL;
	}
	if (icase)
		for (uint32_t i = 0; i < re->nprog; i++)
			if (re->prog[i].op == I_CHAR)
				re->prog[i].x = tgr_fold((uint16_t) re->prog[i].x);
	return re;
}

void
tg_regex_free(TgRegex *re)
{
	if (re == NULL)
		return;
	free(re->prog);
	free(re->classes);
	free(re->ranges);
	free(re);
}
