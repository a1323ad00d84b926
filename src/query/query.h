/*
 * query.h — TopGun's live-query language (PROTOCOL.md §7.2), evaluated in C.
 *
 * PostgreSQL-free (C11 + libc) so that it can be fuzzed and unit-tested
 * standalone.  A query is compiled once from the QUERY_SUB tree (already
 * shape-checked by src/wire/message.c) into a self-contained TgQuery that
 * owns copies of every constant, then evaluated against record values
 * (msgpack trees) with JavaScript semantics:
 *
 *   eq / neq      strict === / !== (numbers compare by value whatever their
 *                 msgpack form; objects and arrays are never === anything)
 *   gt gte lt lte JS relational comparison (strings by UTF-16 code units,
 *                 otherwise ToNumber; NaN compares false)
 *   like          case-insensitive whole-string match, % = any sequence,
 *                 _ = one character; * and ? keep their regex meaning as in
 *                 the reference server
 *   regex         a JS RegExp subset (see tg_regex_compile), test() semantics
 *   and / or / not, where {attr: value | {$gt,$gte,$lt,$lte,$ne}}
 *   sort {field: asc|desc} (field _key = the record key), limit, cursor
 *
 * Regular expressions run on a Pike VM (no backtracking): matching time is
 * linear in the subject length times the program size, so a hostile pattern
 * cannot stall the worker.
 */
#ifndef TG_QUERY_H
#define TG_QUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire/msgpack.h"

#define TG_QUERY_MAX_NODES		256 /* predicate nodes per query */
#define TG_QUERY_MAX_SORT		8	/* sort fields */
#define TG_REGEX_MAX_PATTERN	1024	/* bytes of a regex / like pattern */
#define TG_REGEX_MAX_PROG		8192	/* compiled instructions */
#define TG_REGEX_MAX_SUBJECT	(1 << 20)	/* UTF-16 units tested */

typedef struct TgRegex TgRegex;
typedef struct TgQuery TgQuery;

/* Regex subset; NULL and a reason in err when unsupported or malformed. */
extern TgRegex *tg_regex_compile(const char *pattern, size_t len, bool icase,
								 char *err, size_t errlen);
/* RegExp.prototype.test on a UTF-8 subject. */
extern bool tg_regex_test(const TgRegex *re, const char *subject, size_t len);
extern void tg_regex_free(TgRegex *re);

/*
 * Compile a Query map (MP_MAP, or NULL for "everything").  Returns NULL with
 * err set for anything outside the supported language (the caller answers
 * ERROR 400 with it) or on out-of-memory ("out of memory").
 */
extern TgQuery *tg_query_compile(const MpNode *query, char *err, size_t errlen);
extern void tg_query_free(TgQuery *q);

/* Does the value (NULL or nil = tombstone, never matches) satisfy it? */
extern bool tg_query_match(const TgQuery *q, const MpNode *value);

/*
 * An OR-map key, given the array of its values: the value that matches and
 * comes first in the query's order (the key's stand-in for matching, sort
 * and cursors), or NULL when none matches.
 */
extern const MpNode *tg_query_or_pick(const TgQuery *q, const MpNode *values);
/* tg_query_match for one OR-map value: null is a value there, not a tombstone. */
extern bool tg_query_match_value(const TgQuery *q, const MpNode *value);

/* Order of two results under the query's sort (then by key). */
extern int	tg_query_compare(const TgQuery *q, const char *ka, size_t kalen, const MpNode *a,
							 const char *kb, size_t kblen, const MpNode *b);

/* limit (-1 = none), whether a cursor was given, stable hash of filter+sort. */
extern int64_t tg_query_limit(const TgQuery *q);
extern bool tg_query_has_sort(const TgQuery *q);
extern uint32_t tg_query_hash(const TgQuery *q);

/*
 * Top-level `where`/`predicate` equality the query requires of every match
 * (attribute === constant under a top-level and), for indexing: returns
 * false if there is none.
 */
extern bool tg_query_eq_constraint(const TgQuery *q, const char **attr, size_t *attrlen,
								   const MpNode **value);

/*
 * Index prefilters (query_plan.c).  A superset of the query's matches as
 * and/or over "attribute op constant" on indexed attributes; NULL when no
 * index restricts the candidates.  indexed() says what the caller has for an
 * attribute: TG_PRE_NONE, TG_PRE_EQUALITY (hash) or TG_PRE_ORDERED (btree).
 */
enum
{
	TG_PRE_NONE = 0,
	TG_PRE_EQUALITY = 1,
	TG_PRE_ORDERED = 2
};
enum
{
	TG_PRE_AND,
	TG_PRE_OR,
	TG_PRE_CMP
};
enum
{
	TG_PRE_EQ,
	TG_PRE_GT,
	TG_PRE_GTE,
	TG_PRE_LT,
	TG_PRE_LTE,
	TG_PRE_PREFIX				/* a string starting with value[0 .. prefixlen) */
};
typedef struct TgPre
{
	int			kind;			/* TG_PRE_AND / _OR / _CMP */
	int			op;				/* CMP: TG_PRE_EQ .. TG_PRE_LTE */
	const char *attr;			/* CMP */
	size_t		attrlen;
	const MpNode *value;		/* CMP: null/bool/string/number (EQ), number, pattern */
	size_t		prefixlen;		/* TG_PRE_PREFIX: ASCII non-letters of the like pattern */
	int			n;				/* AND / OR */
	const struct TgPre **kids;
} TgPre;
typedef int (*TgPreIndexed) (const char *attr, size_t len, void *arg);

extern const TgPre *tg_query_prefilter(const TgQuery *q, MpArena *arena, TgPreIndexed indexed,
									   void *arg);
/*
 * An equality attr === constant that every match satisfies (a child of the
 * top-level and, or the whole filter) whose constant a jsonb equality finds
 * exactly (null, boolean, string, number |n| <= 2^53), on an attribute
 * usable() does not answer TG_PRE_NONE for; false when there is none.
 */
extern bool tg_query_required_eq(const TgQuery *q, TgPreIndexed usable, void *arg,
								 const char **attr, size_t *len, const MpNode **value);
/* Number of sort fields; a page of at most `limit` results (refills: 1). */
extern int	tg_query_sort_count(const TgQuery *q);
extern void tg_query_set_limit(TgQuery *q, int64_t limit);
/* Memory a compiled query holds. */
extern size_t tg_query_bytes(const TgQuery *q);
/* value[attr] as the query language reads it (NULL: undefined). */
extern const MpNode *tg_query_attr(const MpNode *value, const char *attr, size_t len);
/* The first sort field unless it is _key (false: none). */
extern bool tg_query_sort_field(const TgQuery *q, const char **field, size_t *len, bool *desc);
/* Do a and b tie on the first sort field? */
extern bool tg_query_sort_tie(const TgQuery *q, const MpNode *a, const MpNode *b);

/*
 * Cursors.  A cursor is an opaque base64url string naming the last result
 * of a page (its sort value and key) plus the query hash and creation time.
 * tg_query_cursor_make writes a NUL-terminated string into out (returns
 * false if it does not fit).  tg_query_cursor_check answers
 * "valid" / "expired" / "invalid"; when valid, tg_query_after tells whether
 * a result comes after the cursor position.
 */
typedef struct TgCursor
{
	bool		valid;
	MpArena		arena;
	const MpNode *sort_value;	/* NULL: absent (undefined) */
	char	   *key;
	size_t		keylen;
} TgCursor;

extern bool tg_query_cursor_make(const TgQuery *q, const char *key, size_t keylen,
								 const MpNode *value, int64_t now_ms, char *out, size_t outlen);
extern const char *tg_query_cursor_check(const TgQuery *q, const char *cursor, size_t len,
										 int64_t now_ms, int64_t ttl_ms, TgCursor *cur);
extern bool tg_query_after(const TgQuery *q, const TgCursor *cur, const char *key, size_t keylen,
						   const MpNode *value);
extern void tg_query_cursor_free(TgCursor *cur);

/* UTF-8 → UTF-16 code units (bad bytes → U+FFFD); out needs 2*len units. */
extern size_t tg_utf8_to_utf16(const char *s, size_t len, uint16_t *out);

/* Deep copy of a msgpack tree into an arena (NULL on OOM). */
extern MpNode *mp_node_copy(MpArena *arena, const MpNode *n);

#endif							/* TG_QUERY_H */
