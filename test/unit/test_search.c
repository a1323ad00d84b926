/*
 * test_search.c — unit tests of the PostgreSQL-free search modules
 * (src/search): the tokenizer, the stemmer and the BM25 formulas against the
 * golden vectors (search_tokenizer.json, search_stemmer.json,
 * search_bm25.json), plus hostile inputs.
 *
 * Vectors: $TOPGUN_VECTORS, else ../../../shared/vectors (make unit runs
 * from test/unit).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "search/bm25.h"
#include "search/stem.h"
#include "search/tokenize.h"
#include "wire_json.h"

static int	failures = 0;
static int	checks = 0;

#define CHECK(cond, ...) do { checks++; if (!(cond)) { failures++; printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); } } while (0)

static JNode *
load(const char *name)
{
	const char *env = getenv("TOPGUN_VECTORS");
	char		path[1200];
	FILE	   *f;
	char	   *text;
	long		n;
	JNode	   *j;

	snprintf(path, sizeof(path), "%s/%s", env != NULL && env[0] ? env : "../../../shared/vectors", name);
	f = fopen(path, "rb");
	if (f == NULL)
	{
		fprintf(stderr, "cannot open %s (set TOPGUN_VECTORS)\n", path);
		exit(2);
	}
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	text = malloc((size_t) n);
	if (text == NULL || fread(text, 1, (size_t) n, f) != (size_t) n)
		exit(2);
	fclose(f);
	j = json_parse(text, (size_t) n);
	free(text);
	if (j == NULL)
	{
		fprintf(stderr, "cannot parse %s\n", path);
		exit(2);
	}
	return j;
}

/* Do the tokens equal the JSON array of strings? */
static bool
tokens_equal(const TgTokens *t, const JNode *want)
{
	if (want == NULL || want->type != J_ARR || want->len != t->n)
		return false;
	for (size_t i = 0; i < t->n; i++)
		if (want->items[i]->len != t->blen[i] ||
			memcmp(want->items[i]->s, t->buf + t->off[i], t->blen[i]) != 0)
			return false;
	return true;
}

static void
print_tokens(const TgTokens *t)
{
	for (size_t i = 0; i < t->n; i++)
		printf(" [%s]", t->buf + t->off[i]);
}

/* Tokenize one vector input and compare with its tokens. */
static void
check_case(const JNode *in, const TgTokenOpts *opts, const JNode *want, const char *what, int id)
{
	TgTokens	t = {0};

	CHECK(tg_tokenize(in->s, in->len, opts, 1 << 20, &t) == TG_TOK_OK, "tokenize");
	if (!tokens_equal(&t, want))
	{
		CHECK(false, "%s %d (%s): got", what, id, in->s);
		print_tokens(&t);
		printf("\n");
	}
	else
		checks++;
	tg_tokens_free(&t);
}

static void
test_tokenizer(void)
{
	JNode	   *v = load("search_tokenizer.json");
	JNode	   *cases = json_get(v, "cases");
	JNode	   *ocases = json_get(v, "option_cases");
	JNode	   *stop = json_get(v, "stopwords");
	int			tested = 0;

	CHECK(stop != NULL && stop->len == 172, "172 stop words");
	for (size_t i = 0; stop != NULL && i < stop->len; i++)
		CHECK(tg_is_stopword(stop->items[i]->s), "stop word %s", stop->items[i]->s);
	CHECK(!tg_is_stopword("apple") && !tg_is_stopword(""), "not stop words");

	for (size_t i = 0; i < cases->len; i++)
	{
		JNode	   *c = cases->items[i];
		JNode	   *in = json_get(c, "input");

		check_case(in, &tg_token_defaults, json_get(c, "tokens"), "case", (int) json_get(c, "id")->num);
		tested++;
	}
	for (size_t i = 0; i < ocases->len; i++)
	{
		JNode	   *c = ocases->items[i];
		JNode	   *o = json_get(c, "options");
		JNode	   *in = json_get(c, "input");
		JNode	   *sw = json_get(o, "stopwords");
		JNode	   *st = json_get(o, "stemmer");
		JNode	   *lc = json_get(o, "lowercase");
		JNode	   *mn = json_get(o, "minLength");
		JNode	   *mx = json_get(o, "maxLength");
		TgTokenOpts opts = tg_token_defaults;
		const char *words[64];

		/* an undefined stemmer or stop-word set makes the reference throw */
		if (json_is_undefined(sw) || json_is_undefined(st))
			continue;
		if (sw != NULL)
		{
			opts.stopwords = words;
			opts.nstopwords = sw->len;
			for (size_t k = 0; k < sw->len && k < 64; k++)
				words[k] = sw->items[k]->s;
		}
		if (st != NULL)
			opts.stem = strcmp(st->s, "porter") == 0;
		if (lc != NULL)
			opts.lowercase = lc->type == J_BOOL && lc->b;
		if (mn != NULL)
			opts.min_len = mn->type == J_NUM ? (int) mn->num : -1;
		if (mx != NULL)
			opts.max_len = mx->type == J_NUM ? (int) mx->num : -1;
		check_case(in, &opts, json_get(c, "tokens"), "option case", (int) json_get(c, "id")->num);
		tested++;
	}
	CHECK(tested >= 470, "tested %d tokenizer cases", tested);
	json_free(v);
}

/* Stem one word through the split + filter halves (the text search path). */
static void
check_stem_via_filter(const char *word, size_t len, const char *want, size_t wantlen)
{
	TgTokenOpts opts = {false, true, -1, -1, NULL, 0};
	const char *none[1] = {NULL};
	TgTokens	t = {0};

	opts.stopwords = none;		/* no stop words */
	CHECK(tg_filter_word(word, len, &opts, &t) == 1, "filter %s", word);
	CHECK(t.n == 1 && t.blen[0] == wantlen && memcmp(t.buf, want, wantlen) == 0,
		  "stem %s: got %s want %s", word, t.n ? t.buf : "(none)", want);
	tg_tokens_free(&t);
}

static void
test_stemmer(void)
{
	JNode	   *v = load("search_stemmer.json");
	const char *lists[] = {"cases", "extra_cases"};
	int			tested = 0;

	for (int l = 0; l < 2; l++)
	{
		JNode	   *cases = json_get(v, lists[l]);

		for (size_t i = 0; i < cases->len; i++)
		{
			JNode	   *w = json_get(cases->items[i], "word");
			JNode	   *s = json_get(cases->items[i], "stem");

			if (w->len == 0)
				continue;		/* the filter never sees an empty word */
			check_stem_via_filter(w->s, w->len, s->s, s->len);
			tested++;
		}
	}
	CHECK(tested >= 3250, "tested %d stems", tested);
	json_free(v);
}

static bool
close_rel(double a, double b)
{
	return fabs(a - b) <= 1e-9 * fmax(fabs(a), fabs(b)) || a == b;
}

static void
test_bm25(void)
{
	JNode	   *v = load("search_bm25.json");
	JNode	   *sc = json_get(v, "scenarios");
	int			tested = 0;

	/* every IDF the reference reported, from its N and df */
	for (size_t i = 0; i < sc->len; i++)
	{
		JNode	   *qs = json_get(sc->items[i], "queries");

		for (size_t q = 0; q < qs->len; q++)
		{
			JNode	   *st = json_get(qs->items[q], "index_stats");
			JNode	   *terms = json_get(st, "terms");

			for (size_t k = 0; terms != NULL && k < terms->len; k++)
			{
				double		df = json_get(terms->items[k], "df")->num;
				double		idf = json_get(terms->items[k], "idf")->num;

				if (df == 0)
					continue;
				CHECK(close_rel(tg_bm25_idf(json_get(st, "N")->num, df), idf), "idf");
				tested++;
			}
		}
	}
	CHECK(tested > 100, "tested %d idfs", tested);

	/* ADDENDUM §A1.9 example 1 (V8's log may differ from libm's by an ulp) */
	{
		double		idf = tg_bm25_idf(3, 2);
		double		d1 = tg_bm25_term(idf, 2, 6, 6, 1.2, 0.75) + tg_bm25_term(idf, 2, 6, 6, 1.2, 0.75);
		double		d2 = tg_bm25_term(idf, 1, 7, 6, 1.2, 0.75) + tg_bm25_term(idf, 2, 7, 6, 1.2, 0.75);

		CHECK(close_rel(idf, 0.4700036292457356), "idf %.17g", idf);
		CHECK(close_rel(d1, 1.292509980425773), "d1 %.17g", d1);
		CHECK(close_rel(d2, 1.0573215971980918), "d2 %.17g", d2);
	}
	json_free(v);
}

static void
test_hostile(void)
{
	static const char *const inputs[] = {
		"\xff\xfe\xfd", "\xc0\x80", "\xed\xa0\x80\xed\xb0\x80", "\xf4\x90\x80\x80", "abc\xe2\x82",
		"\xf0\x9f\x98", "a\0b c\0d"
	};
	TgTokens	t = {0};
	char	   *big;
	size_t		bigsz = 1 << 20;

	for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++)
	{
		CHECK(tg_tokenize(inputs[i], i == 6 ? 8 : strlen(inputs[i]), &tg_token_defaults, 100, &t) == TG_TOK_OK,
			  "hostile %zu", i);
		tg_tokens_free(&t);
	}
	/* NUL splits like any other separator */
	CHECK(tg_tokenize("ab\0cd", 5, &tg_token_defaults, 100, &t) == TG_TOK_OK && t.n == 2, "NUL splits");
	tg_tokens_free(&t);
	/* a cap on the number of tokens */
	big = malloc(bigsz);
	for (size_t i = 0; i < bigsz; i++)
		big[i] = (i % 3 == 2) ? ' ' : 'q';
	CHECK(tg_tokenize(big, bigsz, &tg_token_defaults, 1000, &t) == TG_TOK_FULL && t.n == 1000, "cap");
	tg_tokens_free(&t);
	/* one enormous word: dropped by maxLength, no overflow */
	memset(big, 'x', bigsz);
	CHECK(tg_tokenize(big, bigsz, &tg_token_defaults, 1000, &t) == TG_TOK_OK && t.n == 0, "long word");
	tg_tokens_free(&t);
	/* U+0130 grows under lowercasing */
	memset(big, 0, bigsz);
	for (size_t i = 0; i + 2 <= bigsz; i += 2)
		memcpy(big + i, "\xc4\xb0", 2);
	CHECK(tg_tokenize(big, bigsz, &tg_token_defaults, 1000, &t) == TG_TOK_OK, "U+0130 run");
	tg_tokens_free(&t);
	free(big);
	/* the stemmer on every 3-letter a/y/e/s/d/i/n/g word */
	{
		const char	alpha[] = "ayesdingl";

		for (int a = 0; a < 9; a++)
			for (int b = 0; b < 9; b++)
				for (int c = 0; c < 9; c++)
				{
					uint16_t	w[8] = {(uint16_t) alpha[a], (uint16_t) alpha[b], (uint16_t) alpha[c]};
					size_t		n = 3;

					tg_porter_stem(w, &n);
					CHECK(n >= 1 && n <= 4, "stem length");
				}
	}
}

int
main(void)
{
	test_tokenizer();
	test_stemmer();
	test_bm25();
	test_hostile();
	printf("test_search: %d passed, %d failed\n", checks - failures, failures);
	return failures ? 1 : 0;
}
