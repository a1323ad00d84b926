/*
 * fuzz_tokenizer.c — libFuzzer target for the search tokenizer (document
 * text and client queries).  Checks that every token is non-empty, within
 * the length rule, and that the split + filter halves used by the text
 * search parser and dictionary give the same tokens as tg_tokenize.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "search/tokenize.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	   *copy = malloc(size ? size : 1);
	TgTokens	whole = {0};
	TgTokens	words = {0};
	TgTokens	two = {0};

	/* no terminator: the tokenizer must respect the length */
	memcpy(copy, data, size);
	if (tg_tokenize(copy, size, &tg_token_defaults, 4096, &whole) == TG_TOK_NOMEM)
		abort();
	for (size_t i = 0; i < whole.n; i++)
		if (whole.blen[i] == 0 || whole.blen[i] > 40 * 3 || strlen(whole.buf + whole.off[i]) > whole.blen[i])
			abort();
	if (tg_split_words(copy, size, 1 << 16, &words) == TG_TOK_NOMEM)
		abort();
	for (size_t i = 0; i < words.n && two.n < 4096; i++)
		if (tg_filter_word(words.buf + words.off[i], words.blen[i], &tg_token_defaults, &two) < 0)
			abort();
	if (two.n != whole.n)
		abort();
	for (size_t i = 0; i < whole.n; i++)
		if (two.blen[i] != whole.blen[i] || memcmp(two.buf + two.off[i], whole.buf + whole.off[i], whole.blen[i]) != 0)
			abort();
	tg_tokens_free(&whole);
	tg_tokens_free(&words);
	tg_tokens_free(&two);
	free(copy);
	return 0;
}
