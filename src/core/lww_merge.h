/*
 * lww_merge.h — the LWW newer-wins merge (lww_merge.c), used by every LWW
 * write path: single writes, batches and replication apply.
 */
#ifndef TG_LWW_MERGE_H
#define TG_LWW_MERGE_H

#include "postgres.h"
#include "core/hlc.h"
#include "utils/jsonb.h"

/* One validated row of a batch merge; value NULL = tombstone. */
typedef struct TgLwwRow
{
	text	   *map;
	text	   *key;
	Jsonb	   *value;
	TgHlc	   *ts;
	bool		has_ttl;
	int64		ttl;
} TgLwwRow;

extern void tg_lww_merge_init(void);
/* OID of topgun.hlc, re-read after a type invalidation (extension re-created). */
extern Oid	tg_lww_hlc_type(void);
/* Merge one row; true when it won (was written). */
extern bool tg_lww_merge_one(text *map, text *key, Jsonb *value, Datum ts, bool has_ttl, int64 ttl);
/*
 * Merge n rows with distinct keys in one statement, in the given order (give
 * index order so concurrent batches lock rows alike); on_won is called for
 * every row written.
 */
extern void tg_lww_merge_many(int n, const TgLwwRow *rows,
							  void (*on_won) (text *map, text *key, void *arg), void *arg);

#endif							/* TG_LWW_MERGE_H */
