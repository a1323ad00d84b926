/*
 * json_claims.h — a small, strict, allocation-free JSON reader (RFC 8259)
 * for JWT headers and claim sets.
 *
 * tg_json_parse() validates a whole document in one pass (grammar, UTF-8,
 * escapes including surrogate pairs, nesting depth) and hands back the root
 * value as a span of the input.  Iterators and accessors then walk values of
 * an already-validated document; they still bounds-check every read, so even
 * misuse cannot read outside the span.  Nothing is allocated; values point
 * into the caller's buffer, which must outlive them.
 *
 * Strictness beyond RFC 8259's minimum: invalid UTF-8 (overlong forms,
 * surrogates, > U+10FFFF) and lone surrogate escapes are refused, because
 * the strings end up as C strings in roles and ids.
 */
#ifndef TG_AUTH_JSON_CLAIMS_H
#define TG_AUTH_JSON_CLAIMS_H

#include <stdbool.h>
#include <stddef.h>

/* Nesting limit for JWT headers and payloads. */
#define TG_JSON_TOKEN_MAX_DEPTH	32

typedef enum TgJsonType
{
	TG_JSON_NULL = 0,
	TG_JSON_FALSE,
	TG_JSON_TRUE,
	TG_JSON_NUMBER,
	TG_JSON_STRING,				/* span includes the quotes */
	TG_JSON_ARRAY,
	TG_JSON_OBJECT
} TgJsonType;

/* A value: its type and its exact text in the document (no surrounding space). */
typedef struct TgJsonValue
{
	TgJsonType	type;
	const char *start;
	size_t		len;
} TgJsonValue;

/* Iterator over the elements of an array or the members of an object. */
typedef struct TgJsonIter
{
	const char *p;
	const char *end;
	bool		is_object;
	bool		done;
} TgJsonIter;

/*
 * Validate doc[0..len) as exactly one JSON value (whitespace around it
 * allowed) nested at most max_depth arrays/objects deep.  On success stores
 * the root value and returns true.
 */
extern bool tg_json_parse(const char *doc, size_t len, int max_depth,
						  TgJsonValue *root);

/* Start iterating an array or object value (false for other types). */
extern bool tg_json_iter_init(TgJsonIter *it, const TgJsonValue *container);

/* Next array element; false at the end (or when used on an object). */
extern bool tg_json_array_next(TgJsonIter *it, TgJsonValue *elem);

/* Next object member: key (a TG_JSON_STRING) and value; false at the end. */
extern bool tg_json_object_next(TgJsonIter *it, TgJsonValue *key,
								TgJsonValue *val);

/*
 * Decode a string value into buf (NUL-terminated).  Returns the decoded
 * byte length, or -1 if v is not a string or the decoded text needs more
 * than buflen - 1 bytes.  *has_nul (may be NULL) is set when the text
 * contains U+0000, which C callers usually must refuse.
 */
extern long tg_json_string_decode(const TgJsonValue *v, char *buf,
								  size_t buflen, bool *has_nul);

/* True when v is a string whose decoded text is exactly s (NUL-terminated). */
extern bool tg_json_string_equals(const TgJsonValue *v, const char *s);

/*
 * Convert a number value to double, independently of the C locale.
 * Returns false for non-numbers and for values that overflow to infinity.
 * Precision is that of strtod for up to 19 significant digits and within
 * one unit in the last place beyond, which is ample for NumericDates.
 */
extern bool tg_json_number(const TgJsonValue *v, double *out);

/*
 * Look up a member by decoded key in an object.  Returns the number of
 * members with that key (0, 1, or more for duplicates) and stores the first
 * one's value in *val when non-NULL.
 */
extern int	tg_json_object_get(const TgJsonValue *obj, const char *key,
							   TgJsonValue *val);

#endif							/* TG_AUTH_JSON_CLAIMS_H */
