/*
 * tokenize.h — the reference's full-text tokenizer (ADDENDUM §A1.2):
 * full-Unicode lowercase (ICU root locale, as JS toLowerCase), split on runs
 * of code points outside \p{L} and \p{N}, drop pieces shorter than
 * min_len UTF-16 units, drop stop words, stem, drop stems outside
 * [min_len, max_len].  PostgreSQL-free (links ICU).
 */
#ifndef TG_SEARCH_TOKENIZE_H
#define TG_SEARCH_TOKENIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct TgTokenOpts
{
	bool		lowercase;
	bool		stem;
	int			min_len;		/* UTF-16 units; < 0: no minimum */
	int			max_len;		/* UTF-16 units; < 0: no maximum */
	const char *const *stopwords;	/* NULL: the 172 English stop words */
	size_t		nstopwords;
} TgTokenOpts;

/* The defaults: lowercase, Porter, 2..40, English stop words. */
extern const TgTokenOpts tg_token_defaults;

/* Tokens: UTF-8 (WTF-8 for lone surrogates), each NUL-terminated in buf. */
typedef struct TgTokens
{
	char	   *buf;
	size_t		len;
	size_t		cap;
	uint32_t   *off;			/* token i starts at buf + off[i] */
	uint32_t   *blen;			/* its length in bytes */
	size_t		n;
	size_t		ncap;
} TgTokens;

typedef enum TgTokenizeResult
{
	TG_TOK_OK = 0,
	TG_TOK_FULL = 1,			/* stopped at max_tokens (or 2^31 bytes) */
	TG_TOK_NOMEM = -1
} TgTokenizeResult;

/*
 * Tokenize s[0..len) (UTF-8; WTF-8 surrogates are kept as lone surrogates,
 * any other invalid byte reads as U+FFFD, a separator) and APPEND the tokens
 * to *out (zero-initialise it first).  At most max_tokens tokens are held in
 * *out in total.  Memory comes from malloc; free with tg_tokens_free.
 */
TgTokenizeResult tg_tokenize(const char *s, size_t len, const TgTokenOpts *opts,
							 size_t max_tokens, TgTokens *out);
void		tg_tokens_free(TgTokens *t);

/*
 * The two halves of tg_tokenize with the default lowercase, for the text
 * search parser and dictionary: tg_split_words appends the lowercase words
 * (no length, stop-word or stem rule); tg_filter_word applies those rules to
 * one word and appends its stem: 1 kept, 0 dropped, -1 out of memory.
 */
TgTokenizeResult tg_split_words(const char *s, size_t len, size_t max_tokens, TgTokens *out);
int			tg_filter_word(const char *w, size_t len, const TgTokenOpts *opts, TgTokens *out);

/* Is the NUL-terminated lowercase word one of the 172 stop words? */
bool		tg_is_stopword(const char *word);

#endif							/* TG_SEARCH_TOKENIZE_H */
