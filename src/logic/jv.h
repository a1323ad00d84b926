/*
 * jv.h — a small JSON document model with JavaScript value semantics, for
 * the built-in entry processors and conflict resolvers (PostgreSQL-free).
 *
 * Values live in an arena (JvArena) and are freed all at once.  Object
 * members keep insertion order (JavaScript property order).  Besides the JSON
 * types there is `undefined` (a missing value) and an array hole; numbers are
 * IEEE doubles (NaN, -0 and the infinities included), and a parsed number
 * keeps its source text so that a value that is only passed through is
 * written back exactly as it was read.
 */
#ifndef TG_LOGIC_JV_H
#define TG_LOGIC_JV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum JvType
{
	JV_UNDEF,
	JV_HOLE,					/* array hole (after `delete arr[i]`) */
	JV_NULL,
	JV_FALSE,
	JV_TRUE,
	JV_NUM,
	JV_STR,
	JV_ARR,
	JV_OBJ
} JvType;

typedef struct Jv Jv;

typedef struct JvMember
{
	const char *key;
	size_t		klen;
	Jv		   *val;
} JvMember;

struct Jv
{
	JvType		t;
	double		num;			/* JV_NUM */
	const char *numtxt;			/* JV_NUM: source text, NULL for a computed number */
	size_t		numlen;
	const char *s;				/* JV_STR bytes (UTF-8, not NUL-terminated) */
	size_t		len;			/* JV_STR bytes; JV_ARR/JV_OBJ element count */
	size_t		cap;
	Jv		  **items;			/* JV_ARR */
	JvMember   *members;		/* JV_OBJ */
};

/* Arena: chunks from a caller-supplied allocator (palloc in the server). */
typedef struct JvChunk JvChunk;
typedef struct JvArena
{
	void	   *(*alloc) (size_t);
	void		(*release) (void *);	/* NULL: the allocator frees everything itself */
	JvChunk    *chunks;
	size_t		used;			/* bytes handed out (bounded by limit) */
	size_t		limit;			/* 0: no limit */
	bool		failed;			/* an allocation failed or exceeded limit */
} JvArena;

extern void jv_arena_init(JvArena *a, void *(*alloc) (size_t), void (*release) (void *), size_t limit);
extern void jv_arena_free(JvArena *a);
extern void *jv_alloc(JvArena *a, size_t n);

/* Constructors (NULL on arena failure). */
extern Jv  *jv_new(JvArena *a, JvType t);
extern Jv  *jv_num(JvArena *a, double d);
extern Jv  *jv_str(JvArena *a, const char *s, size_t len);
extern Jv  *jv_bool(JvArena *a, bool b);
extern bool jv_arr_push(JvArena *a, Jv *arr, Jv *v);
extern bool jv_obj_set(JvArena *a, Jv *obj, const char *k, size_t klen, Jv *v);
extern Jv  *jv_obj_get(const Jv *obj, const char *k, size_t klen);
extern bool jv_obj_delete(Jv *obj, const char *k, size_t klen);
extern bool jv_array_index(const char *k, size_t klen, uint32_t *idx);
extern Jv  *jv_clone(JvArena *a, const Jv *v);
extern bool jv_spread(JvArena *a, Jv *dst, const Jv *src);	/* { ...src } */

/*
 * Parse JSON text (RFC 8259, at most max_depth levels).  With `tagged`, the
 * golden-vector tags {"$undefined":true}, {"$hole":true} and
 * {"$number":"NaN"|"-0"|"Infinity"|"-Infinity"} are read as those values.
 * Returns NULL on a syntax error (err set) or arena failure.
 */
extern Jv  *jv_parse(JvArena *a, const char *txt, size_t len, int max_depth, bool tagged, const char **err);

/* Growable output buffer (arena memory). */
typedef struct JvBuf
{
	JvArena    *a;
	char	   *data;
	size_t		len;
	size_t		cap;
	bool		failed;
} JvBuf;

extern void jv_buf_init(JvBuf *b, JvArena *a);
extern void jv_buf_put(JvBuf *b, const char *s, size_t n);

/*
 * JSON.stringify.  `store` is the form written to storage: numbers keep their
 * source text, and NaN/±Infinity make it fail (returns false) instead of
 * becoming null.  Otherwise (the form used for JSON.stringify equality)
 * numbers are printed as JavaScript prints them.  In both forms undefined
 * members are dropped, undefined and holes inside arrays become null, -0 is
 * 0.  A top-level undefined writes nothing and returns false.
 */
extern bool jv_stringify(JvBuf *b, const Jv *v, bool store);

/* JSON.stringify(a) === JSON.stringify(b) (both undefined: equal). */
extern bool jv_json_equal(JvArena *a, const Jv *x, const Jv *y);

/* JavaScript operators and conversions. */
extern double jv_to_number(JvArena *a, const Jv *v);
extern Jv  *jv_to_string(JvArena *a, const Jv *v);	/* String(v) */
extern void jv_fmt_number(double d, char *buf, size_t cap);	/* Number#toString() */
extern bool jv_truthy(const Jv *v);
extern bool jv_strict_equal(const Jv *x, const Jv *y);	/* === on primitives */
extern Jv  *jv_add(JvArena *a, const Jv *x, const Jv *y);	/* x + y */

#define JV_IS_NULLISH(v) ((v) == NULL || (v)->t == JV_UNDEF || (v)->t == JV_NULL || (v)->t == JV_HOLE)

#endif							/* TG_LOGIC_JV_H */
