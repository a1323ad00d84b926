/*
 * query_internal.h — internal to src/query/query*.c: the compiled query
 * (TgQuery) and the JavaScript value semantics the compiler and the
 * evaluator share.  query_value.c (JS values) <- query.c (compile) and
 * query_eval.c (match, sort, cursors); no other direction.
 */
#ifndef TG_QUERY_INTERNAL_H
#define TG_QUERY_INTERNAL_H

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

/* The JS type of a value; NULL and MP_UNDEFINED are undefined, bin and ext
 * are objects. */
extern JsType tgq_js_type(const MpNode *v);

/* JS a === b (numbers by value, strings by bytes, objects by identity:
 * never equal). */
extern bool tgq_strict_eq(const MpNode *a, const MpNode *b);

/* Compare two UTF-8 strings in UTF-16 code unit order (JS < on strings). */
extern int	tgq_utf16_cmp(const char *a, size_t alen, const char *b, size_t blen);

/*
 * JS abstract relational comparison: -1 (a < b), 1 (a > b), 0 (neither but
 * comparable and equal), 2 (undefined: NaN involved).
 */
extern int	tgq_js_compare(const MpNode *a, const MpNode *b);

/* Sort order of two field values: a total order (see query_value.c). */
extern int	tgq_sort_compare(const MpNode *a, const MpNode *b);

/* data[attribute]: a map key or an array index, else NULL (undefined). */
extern const MpNode *tgq_get_attr(const MpNode *data, const char *attr, size_t len);

#endif							/* TG_QUERY_INTERNAL_H */
