/*
 * lww_batch.h — many LWW writes of client ops in one statement
 * (lww_batch.c): what topgun.lww_put_many() does, callable from C with ops
 * the caller already decoded (no arrays, no SQL call, no text casts).
 */
#ifndef TG_LWW_BATCH_H
#define TG_LWW_BATCH_H

#include "postgres.h"
#include "core/hlc.h"
#include "utils/jsonb.h"

typedef struct TgLwwOp
{
	/* in */
	text	   *map;
	text	   *key;
	Jsonb	   *value;			/* NULL or JSON null: a tombstone */
	TgHlc	   *ts;
	bool		has_ttl;
	int64		ttl;
	/* in: set before the call to reject the op; out: why it was rejected */
	char	   *error;
	/* out: written (accepted and strictly newer than the stored record) */
	bool		won;
	/* scratch of tg_lww_put_batch */
	int			leaf;
	bool		winner;
} TgLwwOp;

/*
 * Check every op (per-op errors, never raised: NULLs, sizes, TTL, clock
 * drift, map kind), let the node clock observe the accepted timestamps,
 * collapse duplicate keys to the newest, and merge the survivors in one
 * statement in index order (lww_merge.c).  Runs in the caller's transaction;
 * anything else (a deadlock, out of memory) is raised.
 */
extern void tg_lww_put_batch(TgLwwOp *ops, int n);

#endif							/* TG_LWW_BATCH_H */
