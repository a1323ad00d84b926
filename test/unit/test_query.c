/*
 * test_query.c — unit tests of the PostgreSQL-free query engine
 * (src/query): the regex subset, like, predicates, `where` with JS
 * semantics on mixed types (numbers vs strings, null, missing fields,
 * arrays, objects), sort, limit, the query hash, the equality constraint and
 * cursors.  Expected results are what node 20 gives for the same
 * expressions (`record[attr] === v`, `record[attr] > v`, Array#sort with the
 * reference server's comparator).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query/query.h"
#include "wire/msgpack.h"
#include "wire_json.h"

static int	failures = 0;
static int	checks = 0;
static MpArena arena;			/* values built by V() and Q() live here */

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

/* A msgpack tree from JSON text (in the global arena). */
static const MpNode *
V(const char *json)
{
	JNode	   *j = json_parse(json, strlen(json));
	MpBuf		b;
	MpNode	   *n;

	if (j == NULL)
	{
		printf("bad test JSON: %s\n", json);
		exit(2);
	}
	mp_buf_init(&b, 1 << 16);
	json_put_msgpack(&b, j);
	n = decode(&arena, &b);
	mp_buf_free(&b);
	json_free(j);
	return n;
}

/* A compiled query from JSON text; NULL (err printed) if refused. */
static TgQuery *
Q(const char *json, char *err, size_t errlen)
{
	return tg_query_compile(V(json), err, errlen);
}

/* Does `record` match `query`? (-1: the query did not compile) */
static int
matches(const char *query, const char *record)
{
	char		err[160];
	TgQuery    *q = Q(query, err, sizeof(err));
	int			r;

	if (q == NULL)
	{
		printf("compile %s: %s\n", query, err);
		return -1;
	}
	r = tg_query_match(q, V(record)) ? 1 : 0;
	tg_query_free(q);
	return r;
}

#define MATCH(query, record, expect) \
	do { int r_ = matches(query, record); \
		CHECK(r_ == (expect), "%s on %s: got %d, want %d", query, record, r_, expect); } while (0)

/* ------------------------------------------------------------ sorting */

typedef struct Rec
{
	const char *key;
	const MpNode *value;
} Rec;

static const TgQuery *sort_q;

static int
rec_cmp(const void *a, const void *b)
{
	const Rec  *x = a,
			   *y = b;

	return tg_query_compare(sort_q, x->key, strlen(x->key), x->value, y->key, strlen(y->key), y->value);
}

/* Sort n records {key: json} under `query`, return the keys joined by ','. */
static const char *
sorted(const char *query, int n, const char *const *keys, const char *const *values)
{
	static char out[512];
	char		err[160];
	TgQuery    *q = Q(query, err, sizeof(err));
	Rec			recs[16];

	out[0] = '\0';
	if (q == NULL)
	{
		snprintf(out, sizeof(out), "compile error: %s", err);
		return out;
	}
	for (int i = 0; i < n; i++)
	{
		recs[i].key = keys[i];
		recs[i].value = V(values[i]);
	}
	sort_q = q;
	qsort(recs, n, sizeof(Rec), rec_cmp);
	for (int i = 0; i < n; i++)
	{
		if (i)
			strcat(out, ",");
		strcat(out, recs[i].key);
	}
	tg_query_free(q);
	return out;
}

#define SORTED(query, n, keys, values, expect) \
	do { const char *got_ = sorted(query, n, keys, values); \
		CHECK(strcmp(got_, expect) == 0, "%s: got %s, want %s", query, got_, expect); } while (0)

/* sign of compare(a, b) under query */
static int
cmp_sign(const char *query, const char *ka, const char *va, const char *kb, const char *vb)
{
	char		err[160];
	TgQuery    *q = Q(query, err, sizeof(err));
	int			c;

	if (q == NULL)
		return 99;
	c = tg_query_compare(q, ka, strlen(ka), V(va), kb, strlen(kb), V(vb));
	tg_query_free(q);
	return c < 0 ? -1 : c > 0 ? 1 : 0;
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

/* ------------------------------------------------------------ index prefilters */

/* jsonb's order of a top-level value: [] < null < string < number < boolean < array < object */
static int
jb_rank(const MpNode *v)
{
	switch (v->type)
	{
		case MP_NIL:
			return 0;
		case MP_STR:
			return 1;
		case MP_INT:
		case MP_UINT:
		case MP_FLOAT:
			return 2;
		case MP_BOOL:
			return 3;
		case MP_ARRAY:
			return v->len == 0 ? -1 : 4;
		default:
			return 5;
	}
}

/* jsonb v <=> scalar c (strings only for equality: their order is the collation's) */
static int
jb_cmp(const MpNode *v, const MpNode *c)
{
	int			rv = jb_rank(v),
				rc = jb_rank(c);

	if (rv != rc)
		return rv < rc ? -1 : 1;
	switch (rv)
	{
		case 2:
			{
				double		a = mp_number_as_double(v),
							b = mp_number_as_double(c);

				return a < b ? -1 : a > b ? 1 : 0;
			}
		case 1:
			return v->len == c->len && memcmp(v->v.s, c->v.s, v->len) == 0 ? 0 : 2;
		case 3:
			return v->v.b == c->v.b ? 0 : v->v.b ? 1 : -1;
		default:
			return 0;
	}
}

/* The SQL the reader runs for a prefilter (query_sql.c), evaluated the way PostgreSQL would. */
static bool
pre_eval(const TgPre *p, const MpNode *data)
{
	const MpNode *v;
	int			c;

	if (p->kind == TG_PRE_AND || p->kind == TG_PRE_OR)
	{
		for (int i = 0; i < p->n; i++)
			if (pre_eval(p->kids[i], data) != (p->kind == TG_PRE_AND))
				return p->kind != TG_PRE_AND;
		return p->kind == TG_PRE_AND;
	}
	v = tg_query_attr(data, p->attr, p->attrlen);
	if (v == NULL)
		return false;			/* value #> path IS NULL: every comparison is NULL */
	if (p->op == TG_PRE_PREFIX)
		return v->type == MP_STR && v->len >= p->prefixlen && memcmp(v->v.s, p->value->v.s, p->prefixlen) == 0;
	c = jb_cmp(v, p->value);
	switch (p->op)
	{
		case TG_PRE_EQ:
			return c == 0;
		case TG_PRE_GT:
			return c == 1 || jb_rank(v) < 2;
		case TG_PRE_GTE:
			return c == 1 || c == 0 || jb_rank(v) < 2;
		case TG_PRE_LT:
			return c == -1 || jb_rank(v) >= 3;
		default:
			return c == -1 || c == 0 || jb_rank(v) >= 3;
	}
}

static int
pre_indexed(const char *attr, size_t len, void *arg)
{
	(void) arg;
	if (len == 1 && attr[0] == 'a')
		return TG_PRE_ORDERED;
	if (len == 1 && attr[0] == 'b')
		return TG_PRE_EQUALITY;
	return TG_PRE_NONE;
}

/*
 * Soundness: every record a query matches passes its prefilter, for random
 * queries over values of every type (the index may only add candidates).
 */
static uint32_t pre_seed = 12345;

static int
rnd(int n)
{
	pre_seed = pre_seed * 1103515245u + 12345u;
	return (int) ((pre_seed >> 8) % (uint32_t) n);
}

static void
test_prefilter(void)
{
	static const char *const vals[] = {"-3", "0", "-0.0", "1", "5", "5.5", "7", "10", "1000000", "\"5\"", "\"10\"",
		"\"abc\"", "\"\"", "\" 7 \"", "\"5x\"", "\"1\"", "\"100\"", "\"11\"", "null", "true", "false", "[]", "[5]", "[1,2]", "{}", "{\"x\":1}", NULL};
	static const char *const consts[] = {"5", "\"5\"", "null", "true", "false", "0", "10", "\"abc\"", "-3", "5.5", "[5]"};
	static const char *const ops[] = {"eq", "neq", "gt", "gte", "lt", "lte", "like"};
	static const char *const likes[] = {"\"5%\"", "\"1_%\"", "\"a%\"", "\"7\"", "\"1*%\"", "\" 7%\"", "\"%5\"", "\"10?\""};
	static const char *const attrs[] = {"a", "b", "c"};
	int			nv = (int) (sizeof(vals) / sizeof(vals[0]));
	const MpNode **recs = malloc(sizeof(MpNode *) * nv * nv);
	int			nrec = 0,
				unsound = 0,
				used = 0;
	char		buf[2048],
				leaf[4][256],
				err[256];

	for (int i = 0; i < nv; i++)
		for (int j = 0; j < nv; j++)
		{
			int			o = snprintf(buf, sizeof(buf), "{\"c\":1");

			if (vals[i])
				o += snprintf(buf + o, sizeof(buf) - o, ",\"a\":%s", vals[i]);
			if (vals[j])
				o += snprintf(buf + o, sizeof(buf) - o, ",\"b\":%s", vals[j]);
			snprintf(buf + o, sizeof(buf) - o, "}");
			recs[nrec++] = V(buf);
		}
	for (int t = 0; t < 3000; t++)
	{
		TgQuery    *q;
		MpArena		pa;
		const TgPre *pre;

		for (int l = 0; l < 4; l++)
		{
			const char *op = ops[rnd(7)];
			const char *at = attrs[rnd(3)];
			const char *cv = strcmp(op, "like") == 0 ? likes[rnd(8)] : consts[rnd(11)];

			snprintf(leaf[l], sizeof(leaf[l]), "{\"op\":\"%s\",\"attribute\":\"%s\",\"value\":%s}", op, at, cv);
		}
		switch (rnd(5))
		{
			case 0:
				snprintf(buf, sizeof(buf), "{\"predicate\":%s}", leaf[0]);
				break;
			case 1:
				snprintf(buf, sizeof(buf), "{\"predicate\":{\"op\":\"and\",\"children\":[%s,%s]}}", leaf[0], leaf[1]);
				break;
			case 2:
				snprintf(buf, sizeof(buf), "{\"predicate\":{\"op\":\"or\",\"children\":[%s,%s,%s]}}", leaf[0], leaf[1], leaf[2]);
				break;
			case 3:
				snprintf(buf, sizeof(buf), "{\"predicate\":{\"op\":\"and\",\"children\":[{\"op\":\"or\",\"children\":[%s,%s]},{\"op\":\"not\",\"children\":[%s]},%s]}}",
						 leaf[0], leaf[1], leaf[2], leaf[3]);
				break;
			default:
				{
					const char *x = consts[rnd(11)],
							   *y = consts[rnd(11)],
							   *z = consts[rnd(11)];

					snprintf(buf, sizeof(buf), "{\"where\":{\"a\":{\"$gt\":%s,\"$lte\":%s},\"b\":%s}}", x, y, z);
				}
				break;
		}
		q = Q(buf, err, sizeof(err));
		if (q == NULL)
			continue;
		mp_arena_init(&pa);
		pre = tg_query_prefilter(q, &pa, pre_indexed, NULL);
		if (pre)
		{
			used++;
			for (int r = 0; r < nrec; r++)
				if (tg_query_match(q, recs[r]) && !pre_eval(pre, recs[r]))
				{
					if (unsound++ < 5)
						printf("unsound prefilter for %s\n", buf);
				}
		}
		mp_arena_free(&pa);
		tg_query_free(q);
	}
	CHECK(used > 500, "prefilters were built for %d of the random queries", used);
	CHECK(unsound == 0, "every match passes its prefilter (%d misses)", unsound);
	/* what gets a prefilter */
	{
		MpArena		pa;
		TgQuery    *q;

		mp_arena_init(&pa);
		q = Q("{\"where\":{\"a\":5}}", err, sizeof(err));
		CHECK(q && tg_query_prefilter(q, &pa, pre_indexed, NULL) != NULL, "eq on an indexed field");
		tg_query_free(q);
		q = Q("{\"where\":{\"c\":5}}", err, sizeof(err));
		CHECK(q && tg_query_prefilter(q, &pa, pre_indexed, NULL) == NULL, "eq on a field without an index");
		tg_query_free(q);
		q = Q("{\"where\":{\"b\":{\"$gt\":5}}}", err, sizeof(err));
		CHECK(q && tg_query_prefilter(q, &pa, pre_indexed, NULL) == NULL, "a range needs an ordered index");
		tg_query_free(q);
		q = Q("{\"where\":{\"a\":{\"$gt\":\"abc\"}}}", err, sizeof(err));
		CHECK(q && tg_query_prefilter(q, &pa, pre_indexed, NULL) == NULL, "no range on strings (collation order)");
		tg_query_free(q);
		q = Q("{\"predicate\":{\"op\":\"or\",\"children\":[{\"op\":\"eq\",\"attribute\":\"a\",\"value\":1},{\"op\":\"eq\",\"attribute\":\"c\",\"value\":1}]}}", err, sizeof(err));
		CHECK(q && tg_query_prefilter(q, &pa, pre_indexed, NULL) == NULL, "or with an unindexed branch: none");
		tg_query_free(q);
		q = Q("{\"predicate\":{\"op\":\"like\",\"attribute\":\"a\",\"value\":\"2024-1_%\"}}", err, sizeof(err));
		{
			const TgPre *lp = q ? tg_query_prefilter(q, &pa, pre_indexed, NULL) : NULL;

			CHECK(lp && lp->op == TG_PRE_PREFIX && lp->prefixlen == 6, "like '2024-1_%%': prefix '2024-1'");
		}
		tg_query_free(q);
		q = Q("{\"predicate\":{\"op\":\"like\",\"attribute\":\"a\",\"value\":\"ab%\"}}", err, sizeof(err));
		CHECK(q && tg_query_prefilter(q, &pa, pre_indexed, NULL) == NULL, "like with a cased prefix: none (case-insensitive)");
		tg_query_free(q);
		q = Q("{\"predicate\":{\"op\":\"like\",\"attribute\":\"a\",\"value\":\"12*%\"}}", err, sizeof(err));
		{
			const TgPre *lp = q ? tg_query_prefilter(q, &pa, pre_indexed, NULL) : NULL;

			CHECK(lp && lp->prefixlen == 1, "like '12*%%': the 2 is optional, prefix '1'");
		}
		tg_query_free(q);
		q = Q("{\"where\":{\"a\":1e20}}", err, sizeof(err));
		CHECK(q && tg_query_prefilter(q, &pa, pre_indexed, NULL) == NULL, "numbers beyond 2^53: none");
		tg_query_free(q);
		mp_arena_free(&pa);
	}
	free(recs);
}

/* ------------------------------------------------------------ OR-map keys */

/* Same msgpack encoding. */
static bool
same_node(const MpNode *a, const MpNode *b)
{
	MpBuf		x,
				y;
	bool		eq;

	mp_buf_init(&x, 1 << 16);
	mp_buf_init(&y, 1 << 16);
	eq = mp_put_node(&x, a) && mp_put_node(&y, b) && x.len == y.len && memcmp(x.data, y.data, x.len) == 0;
	mp_buf_free(&x);
	mp_buf_free(&y);
	return eq;
}

/* Does an OR key with `values` pick `want` under `query` (want NULL: no match)? */
static bool
pick_is(const char *query, const char *values, const char *want)
{
	char		err[160];
	TgQuery    *q = Q(query, err, sizeof(err));
	const MpNode *got;
	bool		ok;

	if (q == NULL)
		return false;
	got = tg_query_or_pick(q, V(values));
	if (want == NULL)
		ok = got == NULL;
	else
	{
		const MpNode *w = V(want);
		ok = got != NULL && tg_query_compare(q, "", 0, got, "", 0, w) == 0 &&
			tg_query_match_value(q, got) && same_node(got, w);
	}
	tg_query_free(q);
	return ok;
}

static void
test_or_pick(void)
{
	CHECK(pick_is("{}", "[1, 2]", "1"), "no filter, no sort: the first value");
	CHECK(pick_is("{}", "[null]", "null"), "null is an OR value, not a tombstone");
	CHECK(pick_is("{}", "[]", NULL), "no values: no match");
	CHECK(pick_is("{}", "{\"a\": 1}", NULL), "not an array: no match");
	CHECK(pick_is("{\"where\": {\"a\": 5}}", "[{\"a\": 1}, {\"a\": 5, \"b\": 1}]", "{\"a\": 5, \"b\": 1}"),
		  "the one value that matches");
	CHECK(pick_is("{\"where\": {\"a\": 5}}", "[{\"a\": 1}, {\"a\": \"5\"}]", NULL), "none matches (strict ===)");
	CHECK(pick_is("{\"where\": {\"a\": 5, \"b\": 2}}", "[{\"a\": 5, \"b\": 1}, {\"a\": 4, \"b\": 2}]", NULL),
		  "the whole query holds for one value, not across values");
	CHECK(pick_is("{\"sort\": {\"n\": \"asc\"}}", "[{\"n\": 3}, {\"n\": 1}, {\"n\": 2}]", "{\"n\": 1}"),
		  "asc: the smallest");
	CHECK(pick_is("{\"sort\": {\"n\": \"desc\"}}", "[{\"n\": 3}, {\"n\": 1}, {\"n\": 7}]", "{\"n\": 7}"),
		  "desc: the largest");
	CHECK(pick_is("{\"where\": {\"c\": 1}, \"sort\": {\"n\": \"asc\"}}",
				  "[{\"n\": 0, \"c\": 2}, {\"n\": 4, \"c\": 1}, {\"n\": 9, \"c\": 1}]", "{\"n\": 4, \"c\": 1}"),
		  "the first of the matching values, not of all");
	CHECK(pick_is("{\"sort\": {\"n\": \"asc\"}}", "[{\"n\": \"a\"}, {\"m\": 1}, {\"n\": 10}]", "{\"n\": 10}"),
		  "types in the total order: a number before a string before missing");
	CHECK(pick_is("{\"sort\": {\"n\": \"asc\", \"m\": \"desc\"}}",
				  "[{\"n\": 1, \"m\": 1}, {\"n\": 1, \"m\": 3}, {\"n\": 2, \"m\": 9}]", "{\"n\": 1, \"m\": 3}"),
		  "several sort fields, in order");
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

	/* ---- where: JS === and relational operators on mixed types (node 20) */
	mp_arena_init(&arena);
	MATCH("{\"where\":{\"n\":1}}", "{\"n\":1}", 1);
	MATCH("{\"where\":{\"n\":1}}", "{\"n\":\"1\"}", 0);
	MATCH("{\"where\":{\"n\":1}}", "{\"n\":1.5}", 0);
	MATCH("{\"where\":{\"n\":1}}", "{}", 0);
	MATCH("{\"where\":{\"n\":1}}", "{\"n\":null}", 0);
	MATCH("{\"where\":{\"n\":1}}", "{\"n\":[1]}", 0);
	MATCH("{\"where\":{\"n\":1}}", "{\"n\":true}", 0);
	MATCH("{\"where\":{\"n\":\"1\"}}", "{\"n\":\"1\"}", 1);
	MATCH("{\"where\":{\"n\":\"1\"}}", "{\"n\":1}", 0);
	MATCH("{\"where\":{\"n\":null}}", "{\"n\":null}", 1);
	MATCH("{\"where\":{\"n\":null}}", "{}", 0);
	MATCH("{\"where\":{\"n\":null}}", "{\"n\":0}", 0);
	MATCH("{\"where\":{\"n\":false}}", "{\"n\":false}", 1);
	MATCH("{\"where\":{\"n\":false}}", "{\"n\":0}", 0);
	MATCH("{\"where\":{\"n\":false}}", "{\"n\":\"\"}", 0);
	MATCH("{\"where\":{\"n\":[1]}}", "{\"n\":[1]}", 0);
	MATCH("{\"where\":{\"n\":{}}}", "{\"n\":{}}", 1);
	MATCH("{\"where\":{\"n\":{\"$gt\":5}}}", "{\"n\":6}", 1);
	MATCH("{\"where\":{\"n\":{\"$gt\":5}}}", "{\"n\":5}", 0);
	MATCH("{\"where\":{\"n\":{\"$gt\":5}}}", "{\"n\":\"6\"}", 1);
	MATCH("{\"where\":{\"n\":{\"$gt\":5}}}", "{\"n\":\"abc\"}", 0);
	MATCH("{\"where\":{\"n\":{\"$gt\":5}}}", "{\"n\":null}", 0);
	MATCH("{\"where\":{\"n\":{\"$gt\":5}}}", "{}", 0);
	MATCH("{\"where\":{\"n\":{\"$gt\":5}}}", "{\"n\":true}", 0);
	MATCH("{\"where\":{\"n\":{\"$gt\":5}}}", "{\"n\":[7]}", 1);
	MATCH("{\"where\":{\"n\":{\"$gt\":5}}}", "{\"n\":[6,7]}", 0);
	MATCH("{\"where\":{\"n\":{\"$gt\":5}}}", "{\"n\":{\"a\":9}}", 0);
	MATCH("{\"where\":{\"n\":{\"$gte\":0}}}", "{\"n\":null}", 1);
	MATCH("{\"where\":{\"n\":{\"$lte\":0}}}", "{\"n\":null}", 1);
	MATCH("{\"where\":{\"n\":{\"$gte\":0}}}", "{}", 0);
	MATCH("{\"where\":{\"n\":{\"$gte\":1}}}", "{\"n\":true}", 1);
	MATCH("{\"where\":{\"n\":{\"$lt\":1}}}", "{\"n\":false}", 1);
	MATCH("{\"where\":{\"n\":{\"$lt\":10}}}", "{\"n\":\"9\"}", 1);
	MATCH("{\"where\":{\"n\":{\"$lt\":10}}}", "{\"n\":\"10\"}", 0);
	MATCH("{\"where\":{\"n\":{\"$lt\":10}}}", "{\"n\":\"\"}", 1);
	MATCH("{\"where\":{\"n\":{\"$lt\":10}}}", "{\"n\":\" 9 \"}", 1);
	MATCH("{\"where\":{\"n\":{\"$lt\":10}}}", "{\"n\":\"0x9\"}", 1);
	MATCH("{\"where\":{\"n\":{\"$lt\":10}}}", "{\"n\":\"1e0\"}", 1);
	MATCH("{\"where\":{\"n\":{\"$lt\":10}}}", "{\"n\":[]}", 1);
	MATCH("{\"where\":{\"n\":{\"$gt\":\"10\"}}}", "{\"n\":\"9\"}", 1);
	MATCH("{\"where\":{\"n\":{\"$gt\":\"10\"}}}", "{\"n\":9}", 0);
	MATCH("{\"where\":{\"n\":{\"$gt\":\"10\"}}}", "{\"n\":11}", 1);
	MATCH("{\"where\":{\"n\":{\"$lt\":\"b\"}}}", "{\"n\":\"a\"}", 1);
	MATCH("{\"where\":{\"n\":{\"$lt\":\"b\"}}}", "{\"n\":\"B\"}", 1);
	MATCH("{\"where\":{\"n\":{\"$lt\":\"b\"}}}", "{\"n\":\"ba\"}", 0);
	MATCH("{\"where\":{\"n\":{\"$lt\":\"b\"}}}", "{\"n\":1}", 0);
	MATCH("{\"where\":{\"n\":{\"$lt\":\"b\"}}}", "{\"n\":[\"a\"]}", 1);
	MATCH("{\"where\":{\"n\":{\"$gt\":null}}}", "{\"n\":1}", 1);
	MATCH("{\"where\":{\"n\":{\"$gt\":null}}}", "{\"n\":-1}", 0);
	MATCH("{\"where\":{\"n\":{\"$ne\":1}}}", "{}", 1);
	MATCH("{\"where\":{\"n\":{\"$ne\":1}}}", "{\"n\":1}", 0);
	MATCH("{\"where\":{\"n\":{\"$ne\":1}}}", "{\"n\":\"1\"}", 1);
	MATCH("{\"where\":{\"n\":{\"$ne\":null}}}", "{}", 1);
	MATCH("{\"where\":{\"n\":{\"$ne\":null}}}", "{\"n\":null}", 0);
	MATCH("{\"where\":{\"n\":{\"$gt\":1,\"$lt\":5}}}", "{\"n\":3}", 1);
	MATCH("{\"where\":{\"n\":{\"$gt\":1,\"$lt\":5}}}", "{\"n\":5}", 0);
	MATCH("{\"where\":{\"a\":1,\"b\":\"x\"}}", "{\"a\":1,\"b\":\"x\"}", 1);
	MATCH("{\"where\":{\"a\":1,\"b\":\"x\"}}", "{\"a\":1,\"b\":\"y\"}", 0);
	MATCH("{\"where\":{\"a\":1,\"b\":\"x\"}}", "{\"a\":1}", 0);
	MATCH("{\"where\":{}}", "{\"a\":1}", 1);
	MATCH("{}", "{\"a\":1}", 1);
	MATCH("{\"where\":{\"😀\":1}}", "{\"😀\":1}", 1);
	MATCH("{\"where\":{\"s\":{\"$lt\":\"～\"}}}", "{\"s\":\"😀\"}", 1);
	{
		/* 1 and 1.0 are the same JS number whatever their msgpack form */
		MpBuf		b;
		TgQuery    *w1 = Q("{\"where\":{\"n\":1}}", err, sizeof(err));

		mp_buf_init(&b, 64);
		mp_put_map_header(&b, 1);
		mp_put_str(&b, "n");
		mp_put_float64(&b, 1.0);
		CHECK(w1 && tg_query_match(w1, decode(&arena, &b)), "1 === 1.0 (float64)");
		mp_buf_free(&b);
		tg_query_free(w1);
	}
	/* unknown $-operators never match; tombstones never match */
	MATCH("{\"where\":{\"n\":{\"$in\":[1]}}}", "{\"n\":1}", 0);
	q = Q("{\"where\":{\"n\":{\"$ne\":1}}}", err, sizeof(err));
	CHECK(q && !tg_query_match(q, NULL) && !tg_query_match(q, V("null")), "tombstone (NULL / nil) never matches");
	tg_query_free(q);
	q = Q("{}", err, sizeof(err));
	CHECK(q && tg_query_match(q, V("[1]")) && tg_query_match(q, V("\"s\"")), "no filter: every live value");
	tg_query_free(q);
	/* refused shapes */
	CHECK(Q("{\"where\":5}", err, sizeof(err)) == NULL && strstr(err, "where") != NULL, "where must be a map: %s", err);
	CHECK(Q("[1]", err, sizeof(err)) == NULL && strstr(err, "expected a map") != NULL, "query must be a map: %s", err);

	/* ---- sort: JS relational order per field within a type, types in a fixed order
	 * (number < string < boolean < null < array < object < missing), ties by key (UTF-16 order) */
	{
		static const char *const k3[] = {"k1", "k2", "k3"};
		static const char *const nums[] = {"{\"n\":10}", "{\"n\":9}", "{\"n\":2}"};
		static const char *const strs[] = {"{\"n\":\"10\"}", "{\"n\":\"9\"}", "{\"n\":\"2\"}"};
		static const char *const tiek[] = {"c", "a", "b"};
		static const char *const ties[] = {"{\"n\":1}", "{\"n\":1}", "{\"n\":1}"};
		static const char *const multk[] = {"x", "y", "z"};
		static const char *const mult[] = {"{\"cat\":1,\"n\":1}", "{\"cat\":1,\"n\":5}", "{\"cat\":0,\"n\":0}"};
		static const char *const nullk[] = {"p", "q", "r"};
		static const char *const nulls[] = {"{\"n\":1}", "{\"n\":null}", "{\"n\":-1}"};
		static const char *const uk[] = {"\xef\xbd\x9e", "\xf0\x9f\x98\x80", "z"};
		static const char *const uv[] = {"{}", "{}", "{}"};
		static const char *const boolk[] = {"t", "f", "h"};
		static const char *const bools[] = {"{\"n\":true}", "{\"n\":false}", "{\"n\":0.5}"};
		static const char *const mixk[] = {"a", "b", "c", "d", "e", "f", "g", "h"};
		static const char *const mixv[] = {"{\"n\":\"9\"}", "{\"n\":10}", "{\"n\":true}", "{\"n\":null}",
		"{\"n\":[1]}", "{\"n\":{}}", "{}", "{\"n\":\"10\"}"};
		static const char *const mixk2[] = {"h", "g", "f", "e", "d", "c", "b", "a"};
		static const char *const mixv2[] = {"{\"n\":\"10\"}", "{}", "{\"n\":{}}", "{\"n\":[1]}", "{\"n\":null}",
		"{\"n\":true}", "{\"n\":10}", "{\"n\":\"9\"}"};

		SORTED("{\"sort\":{\"n\":\"asc\"}}", 3, k3, nums, "k3,k2,k1");
		SORTED("{\"sort\":{\"n\":\"desc\"}}", 3, k3, nums, "k1,k2,k3");
		SORTED("{\"sort\":{\"n\":\"asc\"}}", 3, k3, strs, "k1,k3,k2");	/* "10" < "2" < "9" */
		SORTED("{\"sort\":{\"n\":\"desc\"}}", 3, tiek, ties, "a,b,c");	/* ties: key ascending, also for desc */
		SORTED("{\"sort\":{\"_key\":\"desc\"}}", 3, tiek, ties, "c,b,a");
		SORTED("{\"sort\":{\"cat\":\"asc\",\"n\":\"desc\"}}", 3, multk, mult, "z,y,x");
		SORTED("{\"sort\":{\"n\":\"asc\"}}", 3, nullk, nulls, "r,p,q");	/* null after the numbers */
		SORTED("{\"sort\":{\"n\":\"asc\"}}", 3, boolk, bools, "h,f,t");	/* 0.5, then false < true */
		SORTED("{\"sort\":{\"n\":\"asc\"}}", 8, mixk, mixv, "b,h,a,c,d,e,f,g");
		SORTED("{\"sort\":{\"n\":\"asc\"}}", 8, mixk2, mixv2, "b,h,a,c,d,e,f,g");	/* the same from another input order */
		SORTED("{\"sort\":{\"n\":\"desc\"}}", 8, mixk, mixv, "g,f,e,d,c,a,h,b");
		SORTED("{\"sort\":{\"_key\":\"asc\"}}", 3, uk, uv, "z,\xf0\x9f\x98\x80,\xef\xbd\x9e");	/* 'z' < U+D83D.. < U+FF5E (UTF-8 bytes would put U+FF5E first) */
		SORTED("{}", 3, tiek, ties, "a,b,c");	/* no sort: by key */
	}
	CHECK(cmp_sign("{\"sort\":{\"n\":\"asc\"}}", "a", "{\"n\":10}", "b", "{\"n\":\"9\"}") == -1, "10 before '9' (numbers before strings)");
	CHECK(cmp_sign("{\"sort\":{\"n\":\"asc\"}}", "a", "{\"n\":\"11\"}", "b", "{\"n\":\"9\"}") == -1, "'11' < '9' (strings)");
	CHECK(cmp_sign("{\"sort\":{\"n\":\"asc\"}}", "a", "{}", "b", "{\"n\":1}") == 1 &&
		  cmp_sign("{\"sort\":{\"n\":\"asc\"}}", "b", "{}", "a", "{\"n\":1}") == 1, "missing field: last, whatever the key");
	CHECK(cmp_sign("{\"sort\":{\"n\":\"desc\"}}", "a", "{\"n\":\"abc\"}", "b", "{\"n\":1}") == -1, "desc: strings before numbers");
	CHECK(cmp_sign("{\"sort\":{\"n\":\"asc\"}}", "a", "{\"n\":[2]}", "b", "{\"n\":1}") == 1, "[2] after 1 (arrays after numbers)");
	CHECK(cmp_sign("{\"sort\":{\"n\":\"asc\"}}", "a", "{\"n\":[10]}", "b", "{\"n\":[9]}") == -1, "[10] < [9] (arrays by their string form)");
	CHECK(cmp_sign("{\"sort\":{\"n\":\"asc\"}}", "a", "{\"n\":1}", "a", "{\"n\":1}") == 0, "equal record");
	CHECK(Q("{\"sort\":{\"n\":\"up\"}}", err, sizeof(err)) == NULL && strstr(err, "sort") != NULL, "bad sort direction: %s", err);
	CHECK(Q("{\"sort\":[\"n\"]}", err, sizeof(err)) == NULL && strstr(err, "sort") != NULL, "sort must be a map: %s", err);
	CHECK(Q("{\"sort\":{\"a\":\"asc\",\"b\":\"asc\",\"c\":\"asc\",\"d\":\"asc\",\"e\":\"asc\",\"f\":\"asc\",\"g\":\"asc\",\"h\":\"asc\",\"i\":\"asc\"}}",
			err, sizeof(err)) == NULL && strstr(err, "at most 8") != NULL, "9 sort fields refused: %s", err);

	/* ---- limit (slice(0, limit) semantics) and has_sort */
	{
		static const struct { const char *q; int64_t limit; } lims[] = {
			{"{}", -1}, {"{\"limit\":null}", -1}, {"{\"limit\":0}", 0}, {"{\"limit\":10}", 10}, {"{\"limit\":2.5}", 3},
		};

		for (size_t i = 0; i < sizeof(lims) / sizeof(lims[0]); i++)
		{
			q = Q(lims[i].q, err, sizeof(err));
			CHECK(q && tg_query_limit(q) == lims[i].limit, "%s: limit %lld", lims[i].q, q ? (long long) tg_query_limit(q) : -99LL);
			tg_query_free(q);
		}
	}
	CHECK(Q("{\"limit\":-1}", err, sizeof(err)) == NULL && strstr(err, "non-negative") != NULL, "negative limit refused: %s", err);
	CHECK(Q("{\"limit\":\"5\"}", err, sizeof(err)) == NULL && strstr(err, "limit") != NULL, "string limit refused: %s", err);
	CHECK(Q("{\"limit\":1e16}", err, sizeof(err)) == NULL, "absurd limit refused");
	q = Q("{\"sort\":{\"n\":\"asc\"}}", err, sizeof(err));
	CHECK(q && tg_query_has_sort(q), "has_sort");
	tg_query_free(q);
	q = Q("{\"limit\":3}", err, sizeof(err));
	CHECK(q && !tg_query_has_sort(q), "no sort");
	tg_query_free(q);

	/* ---- query hash (filter + sort, not limit) and the equality constraint */
	{
		TgQuery    *h1 = Q("{\"where\":{\"n\":1},\"sort\":{\"n\":\"asc\"},\"limit\":1}", err, sizeof(err));
		TgQuery    *h2 = Q("{\"where\":{\"n\":1},\"sort\":{\"n\":\"asc\"},\"limit\":5}", err, sizeof(err));
		TgQuery    *h3 = Q("{\"where\":{\"n\":2},\"sort\":{\"n\":\"asc\"}}", err, sizeof(err));
		TgQuery    *h4 = Q("{\"where\":{\"n\":1},\"sort\":{\"n\":\"desc\"}}", err, sizeof(err));
		const char *attr;
		size_t		alen;
		const MpNode *val;

		CHECK(h1 && h2 && h3 && h4, "hash queries compile");
		CHECK(tg_query_hash(h1) == tg_query_hash(h2), "limit does not change the hash");
		CHECK(tg_query_hash(h1) != tg_query_hash(h3), "where changes the hash");
		CHECK(tg_query_hash(h1) != tg_query_hash(h4), "sort direction changes the hash");
		tg_query_free(h1);
		tg_query_free(h2);
		tg_query_free(h3);
		tg_query_free(h4);

		q = Q("{\"where\":{\"n\":{\"$gt\":1},\"cat\":7}}", err, sizeof(err));
		CHECK(q && tg_query_eq_constraint(q, &attr, &alen, &val) && alen == 3 && memcmp(attr, "cat", 3) == 0 &&
			  val->type == MP_INT && val->v.i == 7, "eq constraint cat = 7");
		tg_query_free(q);
		q = Q("{\"where\":{\"n\":{\"$gt\":1}}}", err, sizeof(err));
		CHECK(q && !tg_query_eq_constraint(q, &attr, &alen, &val), "no eq constraint for $gt");
		tg_query_free(q);
		q = Q("{\"where\":{\"tags\":[1]}}", err, sizeof(err));
		CHECK(q && !tg_query_eq_constraint(q, &attr, &alen, &val), "no eq constraint for an array (never matches)");
		tg_query_free(q);
		q = Q("{\"predicate\":{\"op\":\"eq\",\"attribute\":\"s\",\"value\":\"x\"}}", err, sizeof(err));
		CHECK(q && tg_query_eq_constraint(q, &attr, &alen, &val) && mp_str_eq(val, "x"), "eq constraint from a predicate");
		tg_query_free(q);
		q = Q("{\"predicate\":{\"op\":\"or\",\"children\":[{\"op\":\"eq\",\"attribute\":\"s\",\"value\":\"x\"}]}}", err, sizeof(err));
		CHECK(q && !tg_query_eq_constraint(q, &attr, &alen, &val), "no eq constraint under or");
		tg_query_free(q);
	}

	/* ---- cursors */
	{
		const int64_t t0 = 1736000000000, ttl = 600000;
		char		c[512],
					bad[512];
		TgCursor	cur;
		TgQuery    *other;

		q = Q("{\"sort\":{\"score\":\"desc\"},\"limit\":3}", err, sizeof(err));
		CHECK(q && tg_query_cursor_make(q, "k5", 2, V("{\"score\":50}"), t0, c, sizeof(c)), "cursor made");
		CHECK(strspn(c, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == strlen(c), "cursor is base64url: %s", c);
		CHECK(strcmp(tg_query_cursor_check(q, c, strlen(c), t0 + 1000, ttl, &cur), "valid") == 0, "cursor valid");
		CHECK(tg_query_after(q, &cur, "k9", 2, V("{\"score\":40}")), "lower score comes after (desc)");
		CHECK(!tg_query_after(q, &cur, "k1", 2, V("{\"score\":60}")), "higher score comes before (desc)");
		CHECK(tg_query_after(q, &cur, "k6", 2, V("{\"score\":50}")), "same score, later key: after");
		CHECK(!tg_query_after(q, &cur, "k4", 2, V("{\"score\":50}")), "same score, earlier key: before");
		CHECK(!tg_query_after(q, &cur, "k5", 2, V("{\"score\":50}")), "the cursor's own row is not repeated");
		CHECK(!tg_query_after(q, &cur, "k0", 2, V("{\"score\":\"40\"}")), "desc: strings sort before the numbers");
		tg_query_cursor_free(&cur);
		CHECK(strcmp(tg_query_cursor_check(q, c, strlen(c), t0 + ttl + 1, ttl, &cur), "expired") == 0, "cursor expired");
		tg_query_cursor_free(&cur);
		CHECK(strcmp(tg_query_cursor_check(q, c, strlen(c), t0 - ttl - 1, ttl, &cur), "expired") == 0, "cursor from the future");
		tg_query_cursor_free(&cur);
		other = Q("{\"sort\":{\"score\":\"desc\"},\"limit\":10}", err, sizeof(err));
		CHECK(other && strcmp(tg_query_cursor_check(other, c, strlen(c), t0, ttl, &cur), "valid") == 0, "valid with another limit");
		tg_query_cursor_free(&cur);
		tg_query_free(other);
		other = Q("{\"sort\":{\"score\":\"asc\"}}", err, sizeof(err));
		CHECK(other && strcmp(tg_query_cursor_check(other, c, strlen(c), t0, ttl, &cur), "invalid") == 0, "invalid for another sort");
		CHECK(!cur.valid && tg_query_after(other, &cur, "a", 1, V("{}")), "an invalid cursor starts from the beginning");
		tg_query_cursor_free(&cur);
		tg_query_free(other);
		CHECK(strcmp(tg_query_cursor_check(q, "", 0, t0, ttl, &cur), "invalid") == 0, "empty cursor");
		tg_query_cursor_free(&cur);
		CHECK(strcmp(tg_query_cursor_check(q, "garbage!", 8, t0, ttl, &cur), "invalid") == 0, "not base64url");
		tg_query_cursor_free(&cur);
		CHECK(strcmp(tg_query_cursor_check(q, c, strlen(c) - 3, t0, ttl, &cur), "invalid") == 0, "truncated cursor");
		tg_query_cursor_free(&cur);
		strcpy(bad, c);
		bad[2] = bad[2] == 'A' ? 'B' : 'A';
		CHECK(strcmp(tg_query_cursor_check(q, bad, strlen(bad), t0, ttl, &cur), "valid") != 0, "tampered cursor not valid");
		tg_query_cursor_free(&cur);
		memset(bad, 'A', sizeof(bad));
		CHECK(strcmp(tg_query_cursor_check(q, bad, 9000, t0, ttl, &cur), "invalid") == 0, "oversized cursor");
		tg_query_cursor_free(&cur);
		CHECK(!tg_query_cursor_make(q, "k5", 2, V("{\"score\":50}"), t0, c, 8), "cursor does not fit: refused");
		/* the record has no sort value: ordered by key after it */
		CHECK(tg_query_cursor_make(q, "k5", 2, V("{}"), t0, c, sizeof(c)) &&
			  strcmp(tg_query_cursor_check(q, c, strlen(c), t0, ttl, &cur), "valid") == 0 && cur.sort_value == NULL,
			  "cursor without a sort value");
		CHECK(tg_query_after(q, &cur, "k6", 2, V("{\"score\":1}")) && tg_query_after(q, &cur, "k4", 2, V("{\"score\":1}")),
			  "desc: a missing sort value comes first, the numbers after it");
		CHECK(tg_query_after(q, &cur, "k6", 2, V("{}")) && !tg_query_after(q, &cur, "k4", 2, V("{}")),
			  "no sort value on either side: key decides");
		tg_query_cursor_free(&cur);
		tg_query_free(q);

		q = Q("{\"sort\":{\"_key\":\"desc\"}}", err, sizeof(err));
		CHECK(q && tg_query_cursor_make(q, "k5", 2, V("{}"), t0, c, sizeof(c)) &&
			  strcmp(tg_query_cursor_check(q, c, strlen(c), t0, ttl, &cur), "valid") == 0, "_key cursor");
		CHECK(tg_query_after(q, &cur, "k4", 2, V("{}")) && !tg_query_after(q, &cur, "k6", 2, V("{}")), "_key desc paging");
		tg_query_cursor_free(&cur);
		tg_query_free(q);
		q = Q("{\"limit\":2}", err, sizeof(err));
		CHECK(q && tg_query_cursor_make(q, "k5", 2, V("{\"n\":1}"), t0, c, sizeof(c)) &&
			  strcmp(tg_query_cursor_check(q, c, strlen(c), t0, ttl, &cur), "valid") == 0, "unsorted cursor");
		CHECK(tg_query_after(q, &cur, "k6", 2, V("{}")) && !tg_query_after(q, &cur, "k4", 2, V("{}")), "unsorted: key order");
		tg_query_cursor_free(&cur);
		tg_query_free(q);
	}
	test_prefilter();
	test_or_pick();
	mp_arena_free(&arena);

	printf("test_query: %d passed, %d failed\n", checks - failures, failures);
	return failures == 0 ? 0 : 1;
}
