/*
 * pg_tsearch.c — the reference tokenizer as a PostgreSQL text search parser
 * and dictionary, so that to_tsvector('topgun.topgun', text) gives the
 * reference's stems:
 *   parser      lowercases the whole text (final sigma needs the context)
 *               and returns every \p{L}\p{N} run as a "word" token;
 *   dictionary  applies the length rule, the stop words and the stemmer.
 */
#include "search/pg_search.h"

#include "fmgr.h"
#include "nodes/pg_list.h"
#include "tsearch/ts_public.h"
#include "utils/builtins.h"

/* Words handed out by one parse (the text is bounded by the caller). */
#define PARSE_MAX_WORDS (1 << 20)

typedef struct ParseState
{
	char	   *buf;			/* palloc'd copy of the words, NUL-separated */
	uint32	   *off;
	uint32	   *blen;
	size_t		n;
	size_t		next;
} ParseState;

PG_FUNCTION_INFO_V1(tg_ts_start);
Datum
tg_ts_start(PG_FUNCTION_ARGS)
{
	char	   *text = (char *) PG_GETARG_POINTER(0);
	int			len = PG_GETARG_INT32(1);
	ParseState *st = palloc0(sizeof(ParseState));
	TgTokens	t = {0};

	if (tg_split_words(text, (size_t) len, PARSE_MAX_WORDS, &t) == TG_TOK_NOMEM)
	{
		tg_tokens_free(&t);
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory while tokenizing")));
	}
	st->n = t.n;
	st->buf = palloc(Max(t.len, 1));
	st->off = palloc(sizeof(uint32) * Max(t.n, 1));
	st->blen = palloc(sizeof(uint32) * Max(t.n, 1));
	if (t.n > 0)
	{
		memcpy(st->buf, t.buf, t.len);
		memcpy(st->off, t.off, sizeof(uint32) * t.n);
		memcpy(st->blen, t.blen, sizeof(uint32) * t.n);
	}
	tg_tokens_free(&t);
	PG_RETURN_POINTER(st);
}

PG_FUNCTION_INFO_V1(tg_ts_gettoken);
Datum
tg_ts_gettoken(PG_FUNCTION_ARGS)
{
	ParseState *st = (ParseState *) PG_GETARG_POINTER(0);
	char	  **t = (char **) PG_GETARG_POINTER(1);
	int		   *tlen = (int *) PG_GETARG_POINTER(2);

	if (st->next >= st->n)
		PG_RETURN_INT32(0);
	*t = st->buf + st->off[st->next];
	*tlen = (int) st->blen[st->next];
	st->next++;
	PG_RETURN_INT32(1);			/* "word" */
}

PG_FUNCTION_INFO_V1(tg_ts_end);
Datum
tg_ts_end(PG_FUNCTION_ARGS)
{
	ParseState *st = (ParseState *) PG_GETARG_POINTER(0);

	pfree(st->buf);
	pfree(st->off);
	pfree(st->blen);
	pfree(st);
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(tg_ts_lextype);
Datum
tg_ts_lextype(PG_FUNCTION_ARGS)
{
	LexDescr   *d = palloc0(sizeof(LexDescr) * 2);

	d[0].lexid = 1;
	d[0].alias = pstrdup("word");
	d[0].descr = pstrdup("Word: a run of letters and digits, lowercased");
	PG_RETURN_POINTER(d);
}

PG_FUNCTION_INFO_V1(tg_ts_dict_init);
Datum
tg_ts_dict_init(PG_FUNCTION_ARGS)
{
	List	   *options = (List *) PG_GETARG_POINTER(0);

	if (options != NIL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the topgun text search dictionary takes no options")));
	PG_RETURN_POINTER(NULL);
}

PG_FUNCTION_INFO_V1(tg_ts_dict_lexize);
Datum
tg_ts_dict_lexize(PG_FUNCTION_ARGS)
{
	char	   *word = (char *) PG_GETARG_POINTER(1);
	int			len = PG_GETARG_INT32(2);
	TSLexeme   *res = palloc0(sizeof(TSLexeme) * 2);
	TgTokens	t = {0};
	int			kept = tg_filter_word(word, (size_t) len, &tg_token_defaults, &t);

	if (kept < 0)
	{
		tg_tokens_free(&t);
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory while stemming")));
	}
	/* a dropped word is reported as a stop word: an empty lexeme list */
	if (kept > 0)
		res[0].lexeme = pnstrdup(t.buf, t.blen[0]);
	tg_tokens_free(&t);
	PG_RETURN_POINTER(res);
}
