/*
 * pg_search.h — the PostgreSQL side of full-text search (docs/search.md):
 * the GUCs, the document and query functions (pg_search.c) and the text
 * search parser and dictionary (pg_tsearch.c).
 */
#ifndef TG_SEARCH_PG_SEARCH_H
#define TG_SEARCH_PG_SEARCH_H

#include "postgres.h"

#include "search/tokenize.h"

/* Register topgun.search_max_results; called from _PG_init. */
extern void tg_search_init(void);

/*
 * Tokenize with the default options into *out (malloc'd: the caller frees it
 * with tg_tokens_free); raises ERROR out of memory.
 */
extern TgTokenizeResult tg_search_tokenize_or_error(const char *s, size_t len, size_t max_tokens,
													TgTokens *out);

#endif							/* TG_SEARCH_PG_SEARCH_H */
