/*
 * test_query.c — unit tests of the PostgreSQL-free query engine
 * (src/query): JS comparison semantics, like, the regex subset, where,
 * sort and cursors.  Expected results were taken from node 20.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query/query.h"
#include "wire/msgpack.h"

static int	failures = 0;
static int	checks = 0;

#define CHECK(cond, ...) do { checks++; if (!(cond)) { failures++; printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); } } while (0)

/* Tiny JSON-ish → msgpack builder: we encode with MpBuf directly. */
static MpNode *
decode(MpArena *a, MpBuf *b)
{
	MpLimits	lim = {32, 10000, 1 << 20};
	char		err[128];
	/* strings of the tree point into the input: keep a copy in the arena */
	uint8_t    *copy = mp_arena_alloc(a, b->len);
	MpNode	   *n;

	memcpy(copy, b->data, b->len);
	n = mp_decode(a, copy, b->len, &lim, err, sizeof(err));

	if (n == NULL)
	{
		printf("decode failed: %s\n", err);
		exit(2);
	}
	return n;
}

/* {op, attribute, value(str|num)} */
static MpNode *
leaf(MpArena *a, const char *op, const char *attr, const char *sval, double nval, bool is_str)
{
	MpBuf		b;
	MpNode	   *n;

	mp_buf_init(&b, 1 << 16);
	mp_put_map_header(&b, 1);
	mp_put_str(&b, "predicate");
	mp_put_map_header(&b, 3);
	mp_put_str(&b, "op");
	mp_put_str(&b, op);
	mp_put_str(&b, "attribute");
	mp_put_str(&b, attr);
	mp_put_str(&b, "value");
	if (is_str)
		mp_put_str(&b, sval);
	else
		mp_put_number(&b, nval);
	n = decode(a, &b);
	mp_buf_free(&b);
	return n;
}

static MpNode *
obj_str(MpArena *a, const char *k, const char *v)
{
	MpBuf		b;
	MpNode	   *n;

	mp_buf_init(&b, 1 << 16);
	mp_put_map_header(&b, 1);
	mp_put_str(&b, k);
	mp_put_str(&b, v);
	n = decode(a, &b);
	mp_buf_free(&b);
	return n;
}

static MpNode *
obj_num(MpArena *a, const char *k, double v)
{
	MpBuf		b;
	MpNode	   *n;

	mp_buf_init(&b, 1 << 16);
	mp_put_map_header(&b, 1);
	mp_put_str(&b, k);
	mp_put_number(&b, v);
	n = decode(a, &b);
	mp_buf_free(&b);
	return n;
}

static bool
pred_str(const char *op, const char *pattern, const char *subject)
{
	MpArena		a;
	char		err[160];
	TgQuery    *q;
	bool		r;

	mp_arena_init(&a);
	q = tg_query_compile(leaf(&a, op, "f", pattern, 0, true), err, sizeof(err));
	if (q == NULL)
	{
		printf("compile %s %s: %s\n", op, pattern, err);
		mp_arena_free(&a);
		return false;
	}
	r = tg_query_match(q, obj_str(&a, "f", subject));
	tg_query_free(q);
	mp_arena_free(&a);
	return r;
}

static bool
regex_ok(const char *pattern)
{
	char		err[160];
	TgRegex    *re = tg_regex_compile(pattern, strlen(pattern), false, err, sizeof(err));

	tg_regex_free(re);
	return re != NULL;
}

static bool
rx(const char *pattern, const char *subject)
{
	char		err[160];
	TgRegex    *re = tg_regex_compile(pattern, strlen(pattern), false, err, sizeof(err));
	bool		r;

	if (re == NULL)
	{
		printf("regex %s: %s\n", pattern, err);
		return false;
	}
	r = tg_regex_test(re, subject, strlen(subject));
	tg_regex_free(re);
	return r;
}

int
main(void)
{
	MpArena		a;
	char		err[160];
	TgQuery    *q;

	/* regex subset, results as RegExp.prototype.test in node 20 */
	CHECK(rx("abc", "xxabcxx"), "substring");
	CHECK(!rx("^abc$", "xabc"), "anchors");
	CHECK(rx("^a.c$", "abc"), "dot");
	CHECK(!rx("^a.c$", "a\nc"), "dot excludes newline");
	CHECK(rx("^[a-c]+\\d{2,3}$", "abca12"), "class and counted");
	CHECK(!rx("^[a-c]+\\d{2,3}$", "abca1234"), "counted max");
	CHECK(rx("^(foo|bar)baz$", "barbaz"), "alternation");
	CHECK(rx("\\bword\\b", "a word here"), "word boundary");
	CHECK(!rx("\\bword\\b", "swordfish"), "word boundary negative");
	CHECK(rx("^[^0-9]*$", "abc"), "negated class");
	CHECK(rx("^\\u00e9$", "\xc3\xa9"), "unicode escape");
	CHECK(rx("^..$", "\xf0\x9f\x98\x80"), "astral char is two UTF-16 units");
	CHECK(rx("^(a*)*b$", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab"), "nested star");
	CHECK(!rx("^(a*)*b$", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaac"), "no catastrophic backtracking");
	CHECK(rx("a{", "a{"), "lone brace literal");
	CHECK(rx("^(?:ab)+$", "ababab"), "non-capturing group");
	CHECK(rx("^(?<n>x)y$", "xy"), "named group");
	CHECK(rx("^[\\w.-]+@\\w+\\.com$", "a.b-c@ex.com"), "email-ish");
	CHECK(!regex_ok("(a)\\1"), "backreference rejected");
	CHECK(!regex_ok("(?=a)"), "lookahead rejected");
	CHECK(!regex_ok("(?<=a)b"), "lookbehind rejected");
	CHECK(!regex_ok("*a"), "nothing to repeat");
	CHECK(!regex_ok("(ab"), "unterminated group");
	CHECK(!regex_ok("ab)"), "unmatched paren");
	CHECK(!regex_ok("a{2,1}"), "out of order");
	CHECK(!regex_ok("[b-a]"), "range out of order");
	CHECK(!regex_ok("a{1001}"), "counted limit");

	/* like: case-insensitive, whole string, % and _, * and ? keep regex meaning */
	CHECK(pred_str("like", "%ell%", "HELLO"), "like contains, case-insensitive");
	CHECK(pred_str("like", "h_llo", "hello"), "like underscore");
	CHECK(!pred_str("like", "h_llo", "heello"), "like underscore is one char");
	CHECK(!pred_str("like", "ell", "hello"), "like is whole-string");
	CHECK(pred_str("like", "a.b", "a.b") && !pred_str("like", "a.b", "axb"), "like escapes dot");
	CHECK(pred_str("like", "ab*c", "abbbc"), "like star keeps regex meaning");
	CHECK(pred_str("regex", "^J", "John") && !pred_str("regex", "^j", "John"), "regex case-sensitive");

	/* JS relational and equality semantics */
	mp_arena_init(&a);
	q = tg_query_compile(leaf(&a, "gt", "n", "10", 0, true), err, sizeof(err));
	CHECK(q && tg_query_match(q, obj_num(&a, "n", 11)), "11 > '10' (number vs numeric string)");
	CHECK(q && tg_query_match(q, obj_str(&a, "n", "9")), "'9' > '10' (string comparison)");
	tg_query_free(q);
	q = tg_query_compile(leaf(&a, "lt", "n", "b", 0, true), err, sizeof(err));
	CHECK(q && tg_query_match(q, obj_str(&a, "n", "B")), "'B' < 'b'");
	CHECK(q && !tg_query_match(q, obj_num(&a, "n", 1)), "1 < 'b' is false (NaN)");
	tg_query_free(q);
	q = tg_query_compile(leaf(&a, "eq", "n", "1", 0, true), err, sizeof(err));
	CHECK(q && !tg_query_match(q, obj_num(&a, "n", 1)), "1 === '1' is false");
	CHECK(q && tg_query_match(q, obj_str(&a, "n", "1")), "'1' === '1'");
	tg_query_free(q);
	q = tg_query_compile(leaf(&a, "eq", "n", NULL, 2.0, false), err, sizeof(err));
	CHECK(q && tg_query_match(q, obj_num(&a, "n", 2)), "2 === 2.0");
	tg_query_free(q);
	q = tg_query_compile(leaf(&a, "neq", "missing", NULL, 2.0, false), err, sizeof(err));
	CHECK(q && tg_query_match(q, obj_num(&a, "n", 2)), "undefined !== 2");
	CHECK(q && !tg_query_match(q, NULL), "tombstone never matches");
	tg_query_free(q);
	q = tg_query_compile(leaf(&a, "contains", "n", "x", 0, true), err, sizeof(err));
	CHECK(q == NULL && strstr(err, "unsupported predicate op") != NULL, "contains rejected: %s", err);
	tg_query_free(q);
	mp_arena_free(&a);

	printf("%d checks, %d failures\n", checks, failures);
	return failures == 0 ? 0 : 1;
}
