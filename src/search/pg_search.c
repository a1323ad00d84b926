/*
 * pg_search.c — SQL-callable pieces of full-text search (docs/search.md):
 *
 *   topgun.search_tokens(text)             the query's stems (duplicates kept)
 *   topgun._search_doc(jsonb[], text[])    a document's rows for topgun.search_doc
 *   topgun._search_score(...)              BM25 of one document row
 *   topgun._search_matched(tsvector[], text[])  matchedTerms
 *
 * A document row holds a tsvector whose lexemes are the document's distinct
 * stems, each with ONE position whose value is the term frequency (clamped to
 * 16383): scoring needs tf, not positions.  The rules themselves live in the
 * PostgreSQL-free tokenize.c / stem.c / bm25.c.
 */
#include "search/pg_search.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "tsearch/ts_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"

#include "search/bm25.h"

/* Bounds on hostile input (docs/search.md). */
#define QUERY_MAX_BYTES		65536
#define QUERY_MAX_TERMS		256
#define DOC_MAX_TOKENS		100000
#define MAX_FIELDS			32

static int	search_max_results = 1000;

void
tg_search_init(void)
{
	DefineCustomIntVariable("topgun.search_max_results",
							"Results of topgun.search() when no positive limit is given (0: no cap).",
							NULL, &search_max_results, 1000, 0, INT_MAX,
							PGC_USERSET, 0, NULL, NULL, NULL);
}

TgTokenizeResult
tg_search_tokenize_or_error(const char *s, size_t len, size_t max_tokens, TgTokens *out)
{
	TgTokenizeResult r = tg_tokenize(s, len, &tg_token_defaults, max_tokens, out);

	if (r == TG_TOK_NOMEM)
	{
		tg_tokens_free(out);
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory while tokenizing")));
	}
	return r;
}

/* tsvector order: memcmp of the common prefix, then the shorter first */
static int
cmp_lexeme(const char *a, int alen, const char *b, int blen)
{
	int			c = memcmp(a, b, Min(alen, blen));

	return c != 0 ? c : (alen > blen) - (alen < blen);
}

typedef struct Tok
{
	const char *s;
	int			len;
} Tok;

static int
cmp_tok(const void *a, const void *b)
{
	const Tok  *x = a,
			   *y = b;

	return cmp_lexeme(x->s, x->len, y->s, y->len);
}

/*
 * Build the tf-tsvector of the tokens of t.  Distinct lexemes beyond
 * the tsvector's 1 MB string area are dropped (never reached by real text).
 */
static TSVector
build_tsvector(const TgTokens *t)
{
	size_t		n = t->n;
	Tok		   *toks = palloc(sizeof(Tok) * Max(n, 1));
	int			nlex = 0;
	size_t		strlen_total = 0;
	TSVector	tsv;
	char	   *str;
	int			pos = 0;

	for (size_t i = 0; i < n; i++)
	{
		toks[i].s = t->buf + t->off[i];
		toks[i].len = (int) t->blen[i];
	}
	qsort(toks, n, sizeof(Tok), cmp_tok);
	/* count distinct lexemes that fit */
	for (size_t i = 0; i < n; i++)
	{
		size_t		need;

		if (i > 0 && cmp_tok(&toks[i - 1], &toks[i]) == 0)
			continue;
		need = SHORTALIGN(strlen_total + toks[i].len) + sizeof(uint16) + sizeof(WordEntryPos);
		if (need > MAXSTRPOS)
			break;
		strlen_total = need;
		nlex++;
	}
	tsv = palloc0(CALCDATASIZE(nlex, strlen_total));
	SET_VARSIZE(tsv, CALCDATASIZE(nlex, strlen_total));
	tsv->size = nlex;
	str = STRPTR(tsv);
	for (size_t i = 0, k = 0; i < n && k < (size_t) nlex;)
	{
		size_t		j = i + 1;
		WordEntry  *e = ARRPTR(tsv) + k;
		WordEntryPos *wp;

		while (j < n && cmp_tok(&toks[i], &toks[j]) == 0)
			j++;
		e->haspos = 1;
		e->len = toks[i].len;
		e->pos = pos;
		memcpy(str + pos, toks[i].s, toks[i].len);
		pos = SHORTALIGN(pos + toks[i].len);
		*(uint16 *) (str + pos) = 1;
		wp = (WordEntryPos *) (str + pos + sizeof(uint16));
		WEP_SETWEIGHT(*wp, 0);
		WEP_SETPOS(*wp, LIMITPOS(j - i));
		pos += sizeof(uint16) + sizeof(WordEntryPos);
		k++;
		i = j;
	}
	pfree(toks);
	return tsv;
}

/* tf of a lexeme in a tf-tsvector, 0 when absent */
static int
tsv_tf(TSVector tsv, const char *lex, int len)
{
	WordEntry  *arr = ARRPTR(tsv);
	int			lo = 0,
				hi = tsv->size;

	while (lo < hi)
	{
		int			mid = (lo + hi) / 2;
		int			c = cmp_lexeme(STRPTR(tsv) + arr[mid].pos, arr[mid].len, lex, len);

		if (c == 0)
			return arr[mid].haspos && POSDATALEN(tsv, &arr[mid]) > 0
				? WEP_GETPOS(POSDATAPTR(tsv, &arr[mid])[0]) : 1;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

PG_FUNCTION_INFO_V1(tg_search_tokens);
Datum
tg_search_tokens(PG_FUNCTION_ARGS)
{
	text	   *q = PG_GETARG_TEXT_PP(0);
	size_t		len = VARSIZE_ANY_EXHDR(q);
	TgTokens	t = {0};
	Datum	   *elems;
	ArrayType  *res;

	if (len > QUERY_MAX_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("search query is too long (%zu bytes)", len),
				 errdetail("The maximum is %d bytes.", QUERY_MAX_BYTES)));
	if (tg_search_tokenize_or_error(VARDATA_ANY(q), len, QUERY_MAX_TERMS, &t) == TG_TOK_FULL)
	{
		tg_tokens_free(&t);
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("search query has too many terms"),
				 errdetail("The maximum is %d terms.", QUERY_MAX_TERMS)));
	}
	elems = palloc(sizeof(Datum) * Max(t.n, 1));
	for (size_t i = 0; i < t.n; i++)
		elems[i] = PointerGetDatum(cstring_to_text_with_len(t.buf + t.off[i], t.blen[i]));
	res = construct_array(elems, (int) t.n, TEXTOID, -1, false, TYPALIGN_INT);
	tg_tokens_free(&t);
	PG_RETURN_ARRAYTYPE_P(res);
}

/* The field names of a text[] (non-NULL, 1..MAX_FIELDS), as C strings. */
static int
get_fields(ArrayType *a, char ***names)
{
	Datum	   *d;
	bool	   *nulls;
	int			n;

	deconstruct_array(a, TEXTOID, -1, false, TYPALIGN_INT, &d, &nulls, &n);
	if (n < 1 || n > MAX_FIELDS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a search index needs 1 to %d fields", MAX_FIELDS)));
	*names = palloc(sizeof(char *) * n);
	for (int i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("a field name must not be NULL")));
		(*names)[i] = TextDatumGetCString(d[i]);
	}
	return n;
}

/*
 * Tokenize the configured string fields of every object in vals into *t;
 * range[v * nfields + f] = [start, end) of value v's field f.
 */
static void
tokenize_fields(Datum *vd, bool *vnull, int nvals, char **fields, int nfields, TgTokens *t,
				size_t (*range)[2])
{
	for (int v = 0; v < nvals; v++)
	{
		Jsonb	   *jb;

		if (vnull[v])
			continue;
		jb = DatumGetJsonbP(vd[v]);
		if (!JB_ROOT_IS_OBJECT(jb))
			continue;
		for (int f = 0; f < nfields; f++)
		{
			JsonbValue	k;
			JsonbValue *fv;
			size_t	   *r = range[(size_t) v * nfields + f];

			k.type = jbvString;
			k.val.string.val = fields[f];
			k.val.string.len = strlen(fields[f]);
			r[0] = r[1] = t->n;
			fv = findJsonbValueFromContainer(&jb->root, JB_FOBJECT, &k);
			if (fv == NULL || fv->type != jbvString || t->n >= DOC_MAX_TOKENS)
				continue;
			tg_search_tokenize_or_error(fv->val.string.val, fv->val.string.len, DOC_MAX_TOKENS, t);
			r[1] = t->n;
		}
	}
}

static void
put_doc_row(ReturnSetInfo *rsinfo, int field, const TgTokens *t)
{
	Datum		values[3];
	bool		nulls[3] = {false, false, false};

	values[0] = Int16GetDatum(field);
	values[1] = Int32GetDatum((int32) t->n);
	values[2] = PointerGetDatum(build_tsvector(t));
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/*
 * _search_doc(vals jsonb[], fields text[]) RETURNS TABLE(field int2, len int4, tsv tsvector)
 *
 * The document of a key: the string values of the top-level fields of every
 * object in vals (one for LWW, every live record for OR), in field order
 * within each value.  Row field 0 is the combined bag; with more than one
 * field, row i (1-based) is field i alone.  No row for an empty bag.
 */
PG_FUNCTION_INFO_V1(tg_search_doc);
Datum
tg_search_doc(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	  **fields;
	int			nfields = get_fields(PG_GETARG_ARRAYTYPE_P(1), &fields);
	Datum	   *vd;
	bool	   *vnull;
	int			nvals;
	/* palloc'd, so that PG_FINALLY sees what the tokenizer stored */
	TgTokens   *t = palloc0(sizeof(TgTokens));
	size_t		(*range)[2];

	InitMaterializedSRF(fcinfo, 0);
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(0), JSONBOID, -1, false, TYPALIGN_INT, &vd, &vnull, &nvals);
	range = palloc0(sizeof(size_t[2]) * ((size_t) nvals * nfields + 1));
	PG_TRY();
	{
		tokenize_fields(vd, vnull, nvals, fields, nfields, t, range);
		if (t->n > 0)
			put_doc_row(rsinfo, 0, t);
		for (int f = 0; nfields > 1 && f < nfields; f++)
		{
			/* field f's ranges of every value, as one token list */
			TgTokens	ft = *t;

			ft.off = palloc(sizeof(uint32) * Max(t->n, 1));
			ft.blen = palloc(sizeof(uint32) * Max(t->n, 1));
			ft.n = 0;
			for (int v = 0; v < nvals; v++)
				for (size_t i = range[(size_t) v * nfields + f][0]; i < range[(size_t) v * nfields + f][1]; i++)
				{
					ft.off[ft.n] = t->off[i];
					ft.blen[ft.n++] = t->blen[i];
				}
			if (ft.n > 0)
				put_doc_row(rsinfo, f + 1, &ft);
			pfree(ft.off);
			pfree(ft.blen);
		}
	}
	PG_FINALLY();
	{
		tg_tokens_free(t);
	}
	PG_END_TRY();
	return (Datum) 0;
}

/* text[] → C strings (NULL elements are not allowed) */
static int
text_array(ArrayType *a, char ***s, int **lens)
{
	Datum	   *d;
	bool	   *nulls;
	int			n;

	deconstruct_array(a, TEXTOID, -1, false, TYPALIGN_INT, &d, &nulls, &n);
	*s = palloc(sizeof(char *) * Max(n, 1));
	*lens = palloc(sizeof(int) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		text	   *x = nulls[i] ? NULL : DatumGetTextPP(d[i]);

		(*s)[i] = x ? VARDATA_ANY(x) : "";
		(*lens)[i] = x ? VARSIZE_ANY_EXHDR(x) : 0;
	}
	return n;
}

/* float8[] argument with exactly n elements and no NULL */
static float8 *
float_array(ArrayType *a, int n)
{
	if (ARR_NDIM(a) > 1 || ARR_HASNULL(a) || ArrayGetNItems(ARR_NDIM(a), ARR_DIMS(a)) != n)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("per-term arrays differ in length")));
	return (float8 *) ARR_DATA_PTR(a);
}

/*
 * _search_score(tsv, dl, terms text[], dfs float8[], n float8, avgdl float8, k1, b)
 *
 * BM25 of one document row: the sum, in query-term order with duplicates,
 * of each present term's contribution (dfs[i] is terms[i]'s document
 * frequency; a term with df 0 is skipped, as the reference skips a term
 * missing from its index).
 */
PG_FUNCTION_INFO_V1(tg_search_score);
Datum
tg_search_score(PG_FUNCTION_ARGS)
{
	TSVector	tsv = PG_GETARG_TSVECTOR(0);
	double		dl = PG_GETARG_INT32(1);
	double		ndocs = PG_GETARG_FLOAT8(4);
	double		avgdl = PG_GETARG_FLOAT8(5);
	double		k1 = PG_GETARG_FLOAT8(6);
	double		b = PG_GETARG_FLOAT8(7);
	char	  **terms;
	int		   *lens;
	int			n = text_array(PG_GETARG_ARRAYTYPE_P(2), &terms, &lens);
	float8	   *dfs = float_array(PG_GETARG_ARRAYTYPE_P(3), n);
	double		score = 0;

	for (int i = 0; i < n; i++)
	{
		int			tf;

		if (dfs[i] <= 0)
			continue;
		tf = tsv_tf(tsv, terms[i], lens[i]);
		if (tf > 0)
			score += tg_bm25_term(tg_bm25_idf(ndocs, dfs[i]), tf, dl, avgdl, k1, b);
	}
	PG_RETURN_FLOAT8(score);
}

/*
 * _search_matched(tsvs tsvector[], terms text[]) RETURNS text[]
 *
 * The distinct terms found, in the order of the tsvectors (fields), then of
 * the query.
 */
PG_FUNCTION_INFO_V1(tg_search_matched);
Datum
tg_search_matched(PG_FUNCTION_ARGS)
{
	Datum	   *tv;
	bool	   *tnull;
	int			ntsv;
	char	  **terms;
	int		   *lens;
	int			n = text_array(PG_GETARG_ARRAYTYPE_P(1), &terms, &lens);
	bool	   *taken = palloc0(sizeof(bool) * Max(n, 1));
	Datum	   *out = palloc(sizeof(Datum) * Max(n, 1));
	int			nout = 0;

	deconstruct_array(PG_GETARG_ARRAYTYPE_P(0), TSVECTOROID, -1, false, TYPALIGN_INT, &tv, &tnull, &ntsv);
	for (int v = 0; v < ntsv; v++)
	{
		TSVector	tsv;

		if (tnull[v])
			continue;
		tsv = DatumGetTSVector(tv[v]);
		for (int i = 0; i < n; i++)
		{
			bool		dup = false;

			if (taken[i])
				continue;
			for (int j = 0; j < i && !dup; j++)
				dup = taken[j] && lens[j] == lens[i] && memcmp(terms[j], terms[i], lens[i]) == 0;
			if (dup || tsv_tf(tsv, terms[i], lens[i]) == 0)
				continue;
			taken[i] = true;
			out[nout++] = PointerGetDatum(cstring_to_text_with_len(terms[i], lens[i]));
		}
	}
	PG_RETURN_ARRAYTYPE_P(construct_array(out, nout, TEXTOID, -1, false, TYPALIGN_INT));
}

/* _search_cap(lim): lim when positive, else topgun.search_max_results (NULL: no cap) */
PG_FUNCTION_INFO_V1(tg_search_cap);
Datum
tg_search_cap(PG_FUNCTION_ARGS)
{
	if (!PG_ARGISNULL(0) && PG_GETARG_INT32(0) > 0)
		PG_RETURN_INT32(PG_GETARG_INT32(0));
	if (search_max_results == 0)
		PG_RETURN_NULL();
	PG_RETURN_INT32(search_max_results);
}

/*
 * _search_bound(terms, dfs, n, avgdl, k1, b, max_tfs, min_dls) RETURNS float8
 *
 * An upper bound of the score of any document that lacks at least one of the
 * query's indexed terms (df > 0): the largest "leave one term out" sum of the
 * per-term maxima, a term's contribution at the largest tf and the shortest
 * document it was ever indexed with (both kept monotonically, so never below
 * the truth), with a relative margin of 1e-12 for floating-point rounding.
 * NULL when fewer than two distinct terms are indexed.  It lets topgun.search
 * keep only the documents holding every term when their k-th best score beats
 * it.
 */
PG_FUNCTION_INFO_V1(tg_search_bound);
Datum
tg_search_bound(PG_FUNCTION_ARGS)
{
	char	  **terms;
	int		   *lens;
	int			n = text_array(PG_GETARG_ARRAYTYPE_P(0), &terms, &lens);
	float8	   *dfs = float_array(PG_GETARG_ARRAYTYPE_P(1), n);
	double		ndocs = PG_GETARG_FLOAT8(2);
	double		avgdl = PG_GETARG_FLOAT8(3);
	double		k1 = PG_GETARG_FLOAT8(4);
	double		b = PG_GETARG_FLOAT8(5);
	float8	   *max_tfs = float_array(PG_GETARG_ARRAYTYPE_P(6), n);
	float8	   *min_dls = float_array(PG_GETARG_ARRAYTYPE_P(7), n);
	double		best = -1;
	int			distinct = 0;

	for (int j = 0; j < n; j++)
	{
		double		sum = 0;
		bool		first = true;

		if (dfs[j] <= 0)
			continue;
		/* term j left out: skip it if an earlier occurrence was already tried */
		for (int i = 0; i < j && first; i++)
			first = !(lens[i] == lens[j] && memcmp(terms[i], terms[j], lens[j]) == 0);
		if (!first)
			continue;
		distinct++;
		for (int i = 0; i < n; i++)
			if (dfs[i] > 0 && !(lens[i] == lens[j] && memcmp(terms[i], terms[j], lens[j]) == 0))
				sum += tg_bm25_term(tg_bm25_idf(ndocs, dfs[i]), max_tfs[i], min_dls[i], avgdl, k1, b);
		best = Max(best, sum);
	}
	if (distinct < 2)
		PG_RETURN_NULL();
	PG_RETURN_FLOAT8(best * (1 + 1e-12));
}
