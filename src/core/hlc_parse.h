/*
 * hlc_parse.h — parsing of the hlc text form "<millis>:<counter>:<nodeId>",
 * PostgreSQL-free so it can be fuzzed standalone (fuzz/fuzz_hlc.c).
 */
#ifndef TG_HLC_PARSE_H
#define TG_HLC_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* JavaScript numbers are exact up to 2^53 - 1; the TopGun client uses them. */
#define TG_HLC_MAX_VALUE	INT64_C(9007199254740991)
#define TG_HLC_MAX_NODE		128

/*
 * Split and check the text form.  millis and counter: decimal digits only,
 * no sign, no leading zeros, at most TG_HLC_MAX_VALUE.  nodeId: everything
 * after the second ':' (may contain ':'), at most TG_HLC_MAX_NODE bytes, no
 * NUL.  Returns false for anything else; never reads past len.
 */
extern bool tg_hlc_parse_text(const char *str, size_t len, int64_t *millis, int64_t *counter,
							  const char **node, size_t *nodelen);

#endif							/* TG_HLC_PARSE_H */
