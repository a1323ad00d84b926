/*
 * merkle.h — TopGun-compatible Merkle trees kept incrementally in SQL tables.
 *
 * Layout (docs/merkle.md): topgun.merkle_nodes holds, per map, one row per
 * depth-2 node (prefix 0..255 = first two hex digits of the key hash) with
 * its hash and its 16 depth-3 leaves in an array (NULL: never written).
 * Depth 1 and the root are sums of at most 256 rows, computed on read.  Writers add deltas to
 * a backend-local table during the transaction; the deltas are written at
 * pre-commit in one statement, in a fixed lock order.
 */
#ifndef TG_MERKLE_H
#define TG_MERKLE_H

#include "postgres.h"
#include "core/hlc.h"

/* A commit's deltas to one depth-2 node (pending.c builds them, sorted). */
typedef struct TgNodeDelta
{
	const char *map;
	int16		prefix;			/* depth-2 node: leaf >> 4 */
	uint16		touched;		/* bit i: leaf (prefix << 4 | i) has a delta */
	uint32		leaf[16];		/* the node's own delta is their (wrapping) sum */
} TgNodeDelta;

/* pending.c */
extern void tg_merkle_add_delta(const char *map, int maplen, int leaf, uint32 delta);
extern void tg_merkle_mark_or_key(const char *map, int maplen, const char *key, int keylen);
extern uint32 tg_merkle_pending_sum(const char *map, int maplen, int level, int prefix_lo, int prefix_hi,
									uint32 *per_child);

/* modes.c: which maps keep a stored tree (the others are computed from their rows on read) */
extern void tg_merkle_modes_init(void);
extern void tg_merkle_count_entry(const char *map, int maplen, int delta);
extern int	tg_merkle_modes_apply(TgNodeDelta *nodes, int n, bool preparing);
extern void tg_merkle_modes_check_prepare(void);
extern void tg_merkle_modes_end(bool committed);
struct varlena;
extern bool tg_merkle_map_stored(struct varlena *map);

/* from_rows.c: leaf hashes lo..hi of a map from its rows (inside the caller's SPI connection) */
extern void tg_merkle_leaves_from_rows(struct varlena *map, int lo, int hi, uint32 *sums, bool *exists);

/* flush_stats.c: cumulative cost of the pre-commit flush, in shared memory */
extern void tg_merkle_flush_stats_init(void);
extern uint64 tg_merkle_cpu_usec(void);
extern void tg_merkle_flush_account(uint64 started_usec, int nodes, int or_keys);

/* api.c: a node's 16 leaves plus a commit's deltas (mod 2^32); untouched leaves stay as they are */
struct ArrayType;
/* Leaves of one depth-2 node row (merkle_nodes.leaves). */
#define TG_NODE_LEAVES 16
extern void tg_merkle_get_leaves(struct ArrayType *a, uint32 *hashes, bool *exists);
extern struct ArrayType *tg_merkle_leaves_sum(struct ArrayType *old, const uint32 *delta, uint16 touched);

/*
 * node_write.c: add the deltas of nodes[0..n) whose rows exist; done[i] is
 * set for each one written.  Returns how many; 0 when the direct path does
 * not apply (the caller then writes every node with SQL).
 */
extern int	tg_merkle_nodes_update(const TgNodeDelta *nodes, int n, bool *done);

/*
 * pending_rows.c: a commit's node deltas kept as topgun.merkle_pending rows,
 * or folded with the map's pending rows (the returned nodes; see the file).
 */
extern void tg_merkle_rows_init(void);
extern void tg_merkle_rows_reset(void);
extern bool tg_merkle_rows_forced(void);
extern int	tg_merkle_rows_apply(TgNodeDelta **nodes, int n, int *cap, bool may_fold);
extern void tg_merkle_delta_corrupt(size_t len, size_t pos) pg_attribute_noreturn();
struct _SPI_plan;
extern struct _SPI_plan *tg_merkle_keep_plan(const char *sql, int nargs, Oid *types);

/* hashing (item.c) */
extern uint32 tg_lww_item_hash(const char *key, int keylen, const TgHlc *ts);

/* stringify.c: TopGun's ORMap value stringification of a jsonb value */
struct StringInfoData;
extern void tg_or_stringify_value(struct StringInfoData *out, Datum jsonb);
extern void tg_js_number(struct StringInfoData *out, double d);
extern int	tg_utf16_cmp(const char *a, int alen, const char *b, int blen);

/* entry.c: OR-map per-key entry hash from the stored rows */
extern bool tg_or_entry_hash(const char *map, int maplen, const char *key, int keylen, uint32 *hash);

#endif							/* TG_MERKLE_H */
