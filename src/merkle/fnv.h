/*
 * fnv.h — TopGun's string hash: FNV-1a 32 over the UTF-16 code units of a
 * string, which is what the browser client computes for Merkle paths and
 * item hashes.  PostgreSQL-free so the wire tests and fuzzers can use it.
 */
#ifndef TG_FNV_H
#define TG_FNV_H

#include <stddef.h>
#include <stdint.h>

#define TG_FNV_OFFSET	0x811c9dc5u
#define TG_FNV_PRIME	0x01000193u

/*
 * Continue an FNV-1a/UTF-16 hash over UTF-8 (or WTF-8) bytes.  Start with
 * TG_FNV_OFFSET.  Code points above U+FFFF contribute their two surrogate
 * code units; WTF-8 encoded lone surrogates contribute themselves.  Bytes
 * that do not form a valid sequence are hashed as U+FFFD, one per byte,
 * so the function is total.
 */
extern uint32_t tg_fnv_utf8(uint32_t h, const char *s, size_t len);

/* Hash of a whole UTF-8 string. */
static inline uint32_t
tg_hash_string(const char *s, size_t len)
{
	return tg_fnv_utf8(TG_FNV_OFFSET, s, len);
}

/* Merkle leaf index (first three hex digits of the key hash): 0..4095. */
static inline int
tg_leaf_of_hash(uint32_t h)
{
	return (int) (h >> 20);
}

#endif							/* TG_FNV_H */
