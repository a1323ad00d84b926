/*
 * logic_vec.h — shared by the logic unit tests: read a golden vector file
 * into the jv model (tagged), a strict deep equality, and a check counter.
 */
#ifndef TG_TEST_LOGIC_VEC_H
#define TG_TEST_LOGIC_VEC_H

#include "logic/jv.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int	lv_failures = 0;
static int	lv_checks = 0;

#define LV_CHECK(cond, ...) do { \
	lv_checks++; \
	if (!(cond)) { lv_failures++; fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
		fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)

static void *
lv_malloc(size_t n)
{
	return malloc(n);
}

static Jv *
lv_load(JvArena *a, const char *file)
{
	const char *env = getenv("TOPGUN_VECTORS");
	char		path[1024];
	FILE	   *f;
	long		n;
	char	   *buf;
	const char *err = NULL;
	Jv		   *doc;

	snprintf(path, sizeof(path), "%s/%s", env && env[0] ? env : "../../../shared/vectors", file);
	f = fopen(path, "rb");
	if (f == NULL)
	{
		fprintf(stderr, "cannot open %s (set TOPGUN_VECTORS)\n", path);
		exit(2);
	}
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = jv_alloc(a, (size_t) n + 1);
	if (fread(buf, 1, (size_t) n, f) != (size_t) n)
		exit(2);
	fclose(f);
	doc = jv_parse(a, buf, (size_t) n, 200, true, &err);
	if (doc == NULL)
	{
		fprintf(stderr, "%s: %s\n", path, err);
		exit(2);
	}
	return doc;
}

static Jv *
lv_get(Jv *o, const char *k)
{
	return jv_obj_get(o, k, strlen(k));
}

static bool
lv_is(Jv *v, const char *s)
{
	return v && v->t == JV_STR && v->len == strlen(s) && memcmp(v->s, s, v->len) == 0;
}

/* Same types, numbers identical (NaN = NaN, -0 ≠ 0), members in the same order. */
static inline bool
lv_same(const Jv *x, const Jv *y)
{
	JvType		tx = x ? x->t : JV_UNDEF,
				ty = y ? y->t : JV_UNDEF;

	if (tx != ty)
		return false;
	switch (tx)
	{
		case JV_NUM:
			if (isnan(x->num) || isnan(y->num))
				return isnan(x->num) && isnan(y->num);
			return x->num == y->num && signbit(x->num) == signbit(y->num);
		case JV_STR:
			return x->len == y->len && memcmp(x->s, y->s, x->len) == 0;
		case JV_ARR:
			if (x->len != y->len)
				return false;
			for (size_t i = 0; i < x->len; i++)
				if (!lv_same(x->items[i], y->items[i]))
					return false;
			return true;
		case JV_OBJ:
			if (x->len != y->len)
				return false;
			for (size_t i = 0; i < x->len; i++)
				if (x->members[i].klen != y->members[i].klen ||
					memcmp(x->members[i].key, y->members[i].key, x->members[i].klen) != 0 ||
					!lv_same(x->members[i].val, y->members[i].val))
					return false;
			return true;
		default:
			return true;
	}
}

static inline const char *
lv_show(JvArena *a, const Jv *v)
{
	JvBuf		b;

	if (v == NULL || v->t == JV_UNDEF)
		return "undefined";
	jv_buf_init(&b, a);
	if (!jv_stringify(&b, v, false))
		return "?";
	return b.data;
}

#endif							/* TG_TEST_LOGIC_VEC_H */
