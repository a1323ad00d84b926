/*
 * regex_internal.h — internal to src/query/regex*.c: the compiled program
 * (TgRegex), the pattern AST and the parser state.  regex_parse.c (pattern
 * -> AST) <- regex.c (AST -> program, tg_regex_compile/free) and
 * regex_run.c (the Pike VM, tg_regex_test); no other direction.
 */
#ifndef TG_QUERY_REGEX_INTERNAL_H
#define TG_QUERY_REGEX_INTERNAL_H

#include "query/query.h"

enum
{
	I_CHAR,						/* x = code unit */
	I_ANY,
	I_CLASS,					/* x = class index */
	I_SPLIT,					/* x, y */
	I_JMP,						/* x */
	I_BOL,
	I_EOL,
	I_WORDB,
	I_NWORDB,
	I_MATCH
};

typedef struct Inst
{
	uint8_t		op;
	uint32_t	x;
	uint32_t	y;
} Inst;

typedef struct Range
{
	uint16_t	lo;
	uint16_t	hi;
} Range;

typedef struct Class
{
	uint32_t	first;			/* into ranges */
	uint32_t	n;
	bool		negate;
} Class;

struct TgRegex
{
	bool		icase;
	Inst	   *prog;
	uint32_t	nprog;
	Class	   *classes;
	uint32_t	nclasses;
	Range	   *ranges;
	uint32_t	nranges;
};

/* ------------------------------------------------------------ AST */

enum
{
	R_EMPTY,
	R_CHAR,
	R_ANY,
	R_CLASS,
	R_CAT,
	R_ALT,
	R_REP,
	R_BOL,
	R_EOL,
	R_WB,
	R_NWB
};

typedef struct RNode
{
	int			type;
	uint32_t	x;				/* char or class index */
	struct RNode *a;
	struct RNode *b;
	int			min;
	int			max;			/* -1 = unbounded */
} RNode;

typedef struct Parser
{
	const uint16_t *p;			/* pattern as UTF-16 units */
	size_t		n;
	size_t		i;
	RNode	   *nodes;
	size_t		nnodes;
	size_t		capnodes;
	TgRegex    *re;
	uint32_t	capranges;
	uint32_t	capclasses;
	char	   *err;
	size_t		errlen;
	bool		failed;
	int			depth;
} Parser;

/* Record the first error of a parse (later ones are dropped). */
extern void tgr_perr(Parser *ps, const char *msg);

/* Parse an alternation (the whole pattern at depth 0) into the AST. */
extern RNode *tgr_parse_alt(Parser *ps);

/* Lower-case one UTF-16 unit (ASCII, Latin-1, Greek and Cyrillic capitals)
 * for the i flag. */
extern uint16_t tgr_fold(uint16_t c);

#endif							/* TG_QUERY_REGEX_INTERNAL_H */
