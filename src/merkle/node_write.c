/*
 * node_write.c — the pre-commit flush's updates of existing Merkle node rows,
 * made directly through the table and index access methods.
 *
 * A commit that writes to many maps touches about one depth-2 node per op,
 * so the flush costs one row update per op; through INSERT ... ON CONFLICT
 * that update also pays a speculative-insertion probe, a tuple lock (and its
 * WAL record), the CHECK constraints and the executor per row.  Here a node
 * row is found by one probe of the primary key with a dirty snapshot (as
 * unique checks do), waiting for a transaction that is still writing it, and
 * replaced by table_tuple_update(); a row updated concurrently in the
 * meantime is looked up again, so the delta always lands on the newest
 * version (the deltas commute: the result does not depend on the order).
 * Rows that do not exist yet are left to the caller, which inserts them
 * with ON CONFLICT (concurrent creators of one node must not fail).
 *
 * The values written are the ones the SQL path would compute
 * (tg_merkle_leaves_sum, the hash mod 2^32), so the table's CHECK
 * constraints hold.  The table has no triggers and no other index; if that
 * ever changes, tg_merkle_nodes_update() declines and the SQL path is used.
 */
#include "topgun.h"
#include "merkle/merkle.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/skey.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "executor/tuptable.h"
#include "nodes/execnodes.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/snapmgr.h"

/* Column numbers of topgun.merkle_nodes (src/sql/20_merkle.sql). */
#define ATT_MAP		1
#define ATT_PREFIX	2
#define ATT_HASH	3
#define ATT_LEAVES	4
#define NATTS		4

/* Whether the direct path applies to this table: plain columns, one index (map, prefix), no triggers. */
static bool
usable(Relation rel, Relation idx)
{
	TupleDesc	d = RelationGetDescr(rel);

	if (d->natts != NATTS || rel->trigdesc != NULL ||
		list_length(RelationGetIndexList(rel)) != 1 ||
		idx->rd_index->indnatts != 2 ||
		idx->rd_index->indkey.values[0] != ATT_MAP || idx->rd_index->indkey.values[1] != ATT_PREFIX ||
		!heap_attisnull(idx->rd_indextuple, Anum_pg_index_indexprs, NULL) ||
		!heap_attisnull(idx->rd_indextuple, Anum_pg_index_indpred, NULL))
		return false;
	return TupleDescAttr(d, ATT_MAP - 1)->atttypid == TEXTOID &&
		TupleDescAttr(d, ATT_PREFIX - 1)->atttypid == INT2OID &&
		TupleDescAttr(d, ATT_HASH - 1)->atttypid == INT8OID &&
		TupleDescAttr(d, ATT_LEAVES - 1)->atttypid == INT8ARRAYOID;
}

/*
 * Add one node's deltas to its row.  Returns false when the row does not
 * exist (nothing written).
 */
static bool
update_one(Relation rel, Relation idx, IndexInfo *ii, TupleTableSlot *old, TupleTableSlot *new,
		   const TgNodeDelta *d)
{
	Datum		map = CStringGetTextDatum(d->map);

	for (;;)
	{
		SnapshotData dirty;
		ScanKeyData key[2];
		IndexScanDesc scan;
		TransactionId xwait;
		bool		found;
		bool		isnull;
		TM_FailureData tmfd;
		LockTupleMode lockmode;
		bool		update_indexes;
		TM_Result	res;
		uint32		hash;

		InitDirtySnapshot(dirty);
		ScanKeyEntryInitialize(&key[0], 0, 1, BTEqualStrategyNumber, InvalidOid,
							   idx->rd_indcollation[0], F_TEXTEQ, map);
		ScanKeyEntryInitialize(&key[1], 0, 2, BTEqualStrategyNumber, InvalidOid,
							   InvalidOid, F_INT2EQ, Int16GetDatum(d->prefix));
		scan = index_beginscan(rel, idx, &dirty, 2, 0);
		index_rescan(scan, key, 2, NULL, 0);
		found = index_getnext_slot(scan, ForwardScanDirection, old);
		xwait = TransactionIdIsValid(dirty.xmin) ? dirty.xmin : dirty.xmax;
		index_endscan(scan);
		if (!found)
			return false;
		if (TransactionIdIsValid(xwait))
		{
			/* another transaction is creating or changing the row: wait for it */
			XactLockTableWait(xwait, rel, &old->tts_tid, XLTW_None);
			continue;
		}

		hash = (uint32) DatumGetInt64(slot_getattr(old, ATT_HASH, &isnull));
		for (int k = 0; k < 16; k++)
			hash += d->leaf[k];
		ExecClearTuple(new);
		new->tts_values[ATT_MAP - 1] = slot_getattr(old, ATT_MAP, &isnull);
		new->tts_values[ATT_PREFIX - 1] = slot_getattr(old, ATT_PREFIX, &isnull);
		new->tts_values[ATT_HASH - 1] = Int64GetDatum((int64) hash);
		new->tts_values[ATT_LEAVES - 1] =
			PointerGetDatum(tg_merkle_leaves_sum(DatumGetArrayTypeP(slot_getattr(old, ATT_LEAVES, &isnull)),
												 d->leaf, d->touched));
		memset(new->tts_isnull, 0, NATTS * sizeof(bool));
		ExecStoreVirtualTuple(new);
		ExecMaterializeSlot(new);

		res = table_tuple_update(rel, &old->tts_tid, new, GetCurrentCommandId(true),
								 GetActiveSnapshot(), InvalidSnapshot, true,
								 &tmfd, &lockmode, &update_indexes);
		if (res == TM_Updated || res == TM_Deleted)
			continue;			/* committed by someone else meanwhile: look again */
		if (res != TM_Ok)
			elog(ERROR, "topgun: Merkle node update failed (%d)", (int) res);
		if (update_indexes)
		{
			Datum		values[INDEX_MAX_KEYS];
			bool		nulls[INDEX_MAX_KEYS];

			values[0] = new->tts_values[ATT_MAP - 1];
			values[1] = new->tts_values[ATT_PREFIX - 1];
			nulls[0] = nulls[1] = false;
			index_insert(idx, values, nulls, &new->tts_tid, rel, UNIQUE_CHECK_YES, true, ii);
		}
		return true;
	}
}

int
tg_merkle_nodes_update(const TgNodeDelta *nodes, int n, bool *done)
{
	Oid			relid = get_relname_relid("merkle_nodes", get_namespace_oid("topgun", false));
	Relation	rel;
	Relation	idx;
	Oid			idxid;
	IndexInfo  *ii;
	TupleTableSlot *old,
			   *new;
	int			ndone = 0;

	if (!OidIsValid(relid))
		return 0;
	rel = table_open(relid, RowExclusiveLock);
	idxid = RelationGetPrimaryKeyIndex(rel);
	if (!OidIsValid(idxid))
	{
		table_close(rel, NoLock);
		return 0;
	}
	idx = index_open(idxid, RowExclusiveLock);
	if (!usable(rel, idx))
	{
		index_close(idx, NoLock);
		table_close(rel, NoLock);
		return 0;
	}
	ii = BuildIndexInfo(idx);
	old = table_slot_create(rel, NULL);
	new = MakeSingleTupleTableSlot(RelationGetDescr(rel), &TTSOpsVirtual);
	for (int i = 0; i < n; i++)
	{
		done[i] = update_one(rel, idx, ii, old, new, &nodes[i]);
		if (done[i])
			ndone++;
	}
	ExecDropSingleTupleTableSlot(old);
	ExecDropSingleTupleTableSlot(new);
	/* locks are kept until the end of the transaction, as the executor does */
	index_close(idx, NoLock);
	table_close(rel, NoLock);
	return ndone;
}
