/*
 * pending_rows.c — Merkle deltas kept as rows of topgun.merkle_pending until
 * they are folded into topgun.merkle_nodes.
 *
 * A commit that writes to many maps touches about one depth-2 node per op;
 * updating each node row (a probe, a HOT update, its WAL) was a fifth of the
 * server's CPU with 50 connections on 50 maps.  Instead a commit inserts its
 * deltas of a map as one row (or a few, each under TOAST's threshold): one
 * heap and one index insert per map.  Readers (merkle_root, merkle_buckets,
 * merkle_verify) add the pending rows of the map to its node rows in the
 * same statement, so with MVCC they see every delta either pending or folded,
 * never both, never neither.
 *
 * A commit that touches fewer than topgun.merkle_pend_min_nodes nodes of a
 * map updates them in place, as before (one op per map per commit: a row to
 * insert and later delete costs more than the one update it saves).
 *
 * A backend that has written topgun.merkle_fold_rows rows of a map, or 64 kB
 * of them, folds them at its next commit of that map: it deletes every pending row of the
 * map it sees and adds them, with its own deltas, to the node rows (the
 * caller, pending.c, writes those).  One folder per map at a time
 * (pg_try_advisory_xact_lock; the others pend instead of waiting), none under
 * REPEATABLE READ / SERIALIZABLE (a row deleted by a fold after the snapshot
 * could not be deleted again) or in a transaction being prepared.
 * topgun.merkle_fold(map) folds a map at the end of the calling transaction.
 */
#include "topgun.h"
#include "merkle/merkle.h"
#include "merkle/delta_codec.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

PG_FUNCTION_INFO_V1(tg_merkle_pending_leaves);
PG_FUNCTION_INFO_V1(tg_merkle_fold);

/* advisory lock class of a map's fold (the second key is a hash of its name) */
#define FOLD_LOCK_CLASS 1952999779
/* a backend also folds a map once its pending rows of the map hold this many bytes (bounds reads) */
#define FOLD_BYTES 65536
/* a backend forgets its per-map counts beyond this many maps */
#define MAX_COUNTED_MAPS 65536

static int	fold_rows = 128;
static int	pend_min_nodes = 5;

typedef struct MapCount
{
	char		map[TG_MAX_MAP_BYTES + 1];
	int			rows;			/* pending rows this backend wrote since it last folded the map */
	int64		bytes;			/* and their bytes */
} MapCount;

static HTAB *counts = NULL;
static List *forced = NIL;		/* maps merkle_fold() asked for, in TopTransactionContext */
static SPIPlanPtr insert_plan = NULL;
static SPIPlanPtr delete_plan = NULL;

void
tg_merkle_rows_init(void)
{
	DefineCustomIntVariable("topgun.merkle_fold_rows",
							"Pending Merkle delta rows of a map a backend writes before it folds them into the node rows.",
							"Fewer: cheaper Merkle reads, dearer commits; 1 folds at every commit.",
							&fold_rows, 128, 1, 100000, PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("topgun.merkle_pend_min_nodes",
							"A commit's deltas of a map go to a pending row when they touch at least this many depth-2 nodes.",
							"Fewer nodes are updated in place (a row insert and its later delete cost more than a few updates).",
							&pend_min_nodes, 5, 1, 257, PGC_USERSET, 0, NULL, NULL, NULL);
}

void
tg_merkle_rows_reset(void)
{
	forced = NIL;				/* lived in TopTransactionContext */
}

bool
tg_merkle_rows_forced(void)
{
	return forced != NIL;
}

static MapCount *
count_of(const char *map)
{
	bool		found;
	MapCount   *c;

	if (counts == NULL || hash_get_num_entries(counts) >= MAX_COUNTED_MAPS)
	{
		HASHCTL		ctl;

		if (counts != NULL)
			hash_destroy(counts);
		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = TG_MAX_MAP_BYTES + 1;
		ctl.entrysize = sizeof(MapCount);
		ctl.hcxt = TopMemoryContext;
		counts = hash_create("topgun merkle pending counts", 256, &ctl, HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	}
	c = hash_search(counts, map, HASH_ENTER, &found);
	if (!found)
	{
		c->rows = 0;
		c->bytes = 0;
	}
	return c;
}

static int32
map_lock_key(const char *map)
{
	return (int32) hash_bytes((const unsigned char *) map, (int) strlen(map));
}

static bool
is_forced(const char *map)
{
	ListCell   *lc;

	foreach(lc, forced)
		if (strcmp((const char *) lfirst(lc), map) == 0)
		return true;
	return false;
}

/* A topgun.merkle_pending row that does not decode (direct DML): never summed. */
void
tg_merkle_delta_corrupt(size_t len, size_t pos)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("malformed Merkle delta row (%zu bytes, bad record at byte %zu)", len, pos),
			 errhint("Run topgun.merkle_rebuild() for the map.")));
}

/* A prepared statement kept for the backend's life (the flush's statements). */
SPIPlanPtr
tg_merkle_keep_plan(const char *sql, int nargs, Oid *types)
{
	SPIPlanPtr	p = SPI_prepare(sql, nargs, types);

	if (p == NULL || SPI_keepplan(p) != 0)
		elog(ERROR, "topgun: could not prepare \"%s\": %s", sql, SPI_result_code_string(SPI_result));
	return p;
}

static void
prepare_plans(void)
{
	Oid			ins[2] = {TEXTARRAYOID, BYTEAARRAYOID};
	Oid			del[1] = {TEXTOID};

	if (insert_plan != NULL)
		return;
	insert_plan = tg_merkle_keep_plan("INSERT INTO topgun.merkle_pending (map, deltas) "
					   "SELECT * FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2))", 2, ins);
	delete_plan = tg_merkle_keep_plan("DELETE FROM topgun.merkle_pending WHERE map = $1 RETURNING deltas", 1, del);
}

/* The rows of one map's nodes[0..n), appended to maps[] / rows[] from nrows on; returns the new count. */
static int
encode_map(const TgNodeDelta *nodes, int n, Datum *maps, Datum *rows, int nrows)
{
	uint8	   *buf = palloc(VARHDRSZ + TG_DELTA_ROW_BYTES + TG_DELTA_RECORD_MAX);
	size_t		len = 0;
	Datum		map = CStringGetTextDatum(nodes[0].map);

	for (int i = 0; i < n; i++)
	{
		len += tg_delta_encode(buf + VARHDRSZ + len, nodes[i].prefix, nodes[i].touched, nodes[i].leaf);
		if (len >= TG_DELTA_ROW_BYTES || i == n - 1)
		{
			bytea	   *b = palloc(VARHDRSZ + len);

			SET_VARSIZE(b, VARHDRSZ + len);
			memcpy(VARDATA(b), buf + VARHDRSZ, len);
			maps[nrows] = map;
			rows[nrows] = PointerGetDatum(b);
			nrows++;
			len = 0;
		}
	}
	pfree(buf);
	return nrows;
}

/*
 * Append the records of one stored row to *nodes (map: the fold's own copy
 * of the name).  A row that does not decode (direct DML) is dropped with a
 * WARNING: failing the fold would fail every commit that folds the map; the
 * tree then lacks the row's deltas until merkle_rebuild(), which
 * merkle_verify() reports.
 */
static void
decode_row(bytea *b, const char *map, TgNodeDelta **nodes, int *n, int *cap)
{
	const uint8 *p = (const uint8 *) VARDATA_ANY(b);
	size_t		len = VARSIZE_ANY_EXHDR(b);
	size_t		pos = 0;
	TgDeltaRecord rec;
	int			r;

	while ((r = tg_delta_next(p, len, &pos, &rec)) == 1)
		;
	if (r < 0)
	{
		ereport(WARNING,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("dropped a malformed Merkle delta row of map \"%s\" (%zu bytes, bad record at byte %zu)",
						map, len, pos),
				 errhint("Run topgun.merkle_rebuild() for the map.")));
		return;
	}
	pos = 0;
	while (tg_delta_next(p, len, &pos, &rec) == 1)
	{
		TgNodeDelta *d;

		if (*n == *cap)
		{
			*cap *= 2;
			*nodes = repalloc(*nodes, *cap * sizeof(TgNodeDelta));
		}
		d = &(*nodes)[(*n)++];
		d->map = map;
		d->prefix = (int16) rec.prefix;
		d->touched = rec.touched;
		memcpy(d->leaf, rec.leaf, sizeof(d->leaf));
	}
}

/*
 * At pre-commit, inside the flush's SPI connection: nodes[0..n) are this
 * commit's node deltas, sorted by (map, prefix), one per node.  Maps that
 * pend get their rows inserted and leave the array; for maps that fold, the
 * array keeps their deltas and gains every pending row of theirs (deleted),
 * unsorted and unmerged.  Returns the array's new length (*nodes may move).
 */
int
tg_merkle_rows_apply(TgNodeDelta **nodes, int n, int *cap, bool may_fold)
{
	TgNodeDelta *a = *nodes;
	Datum	   *maps;
	Datum	   *rows;
	int			nrows = 0;
	int			kept = 0;
	List	   *folds = NIL;
	ListCell   *lc;
	int			i,
				j;

	/* a schema older than 1.2 (the upgrade script runs on this library): nodes only */
	if (!OidIsValid(get_relname_relid("merkle_pending", get_namespace_oid("topgun", false))))
		return n;
	/* every row holds at least one node: at most n rows */
	maps = palloc((n + 1) * sizeof(Datum));
	rows = palloc((n + 1) * sizeof(Datum));
	may_fold = may_fold && !IsolationUsesXactSnapshot();
	prepare_plans();
	for (i = 0; i < n; i = j)
	{
		MapCount   *c;
		bool		fold;

		for (j = i + 1; j < n && strcmp(a[j].map, a[i].map) == 0; j++)
			;
		if (j - i < pend_min_nodes && !is_forced(a[i].map))
		{
			/* a few nodes: updating them costs less than a row to insert and delete */
			memmove(&a[kept], &a[i], (j - i) * sizeof(TgNodeDelta));
			kept += j - i;
			continue;
		}
		c = count_of(a[i].map);
		fold = is_forced(a[i].map) ||
			(may_fold && (c->rows + 1 >= fold_rows || c->bytes >= FOLD_BYTES) &&
			 DatumGetBool(DirectFunctionCall2(pg_try_advisory_xact_lock_int4,
											  Int32GetDatum(FOLD_LOCK_CLASS),
											  Int32GetDatum(map_lock_key(a[i].map)))));
		if (fold)
		{
			memmove(&a[kept], &a[i], (j - i) * sizeof(TgNodeDelta));
			folds = lappend(folds, (void *) a[kept].map);
			kept += j - i;
			c->rows = 0;
			c->bytes = 0;
		}
		else
		{
			int			before = nrows;

			nrows = encode_map(&a[i], j - i, maps, rows, nrows);
			c->rows += nrows - before;
			for (int r = before; r < nrows; r++)
				c->bytes += VARSIZE(DatumGetPointer(rows[r]));
		}
	}
	/* maps merkle_fold() asked for that this commit did not write */
	foreach(lc, forced)
	{
		const char *m = lfirst(lc);
		ListCell   *l2;
		bool		seen = false;

		foreach(l2, folds)
			if (strcmp((const char *) lfirst(l2), m) == 0)
			seen = true;
		if (!seen)
		{
			MapCount   *c = count_of(m);

			folds = lappend(folds, (void *) m);
			c->rows = 0;
			c->bytes = 0;
		}
	}
	if (nrows > 0)
	{
		Datum		args[2];

		args[0] = PointerGetDatum(construct_array(maps, nrows, TEXTOID, -1, false, TYPALIGN_INT));
		args[1] = PointerGetDatum(construct_array(rows, nrows, BYTEAOID, -1, false, TYPALIGN_INT));
		if (SPI_execute_plan(insert_plan, args, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "topgun: Merkle pending rows insert failed");
	}
	foreach(lc, folds)
	{
		const char *m = lfirst(lc);
		Datum		args[1];

		args[0] = CStringGetTextDatum(m);
		if (SPI_execute_plan(delete_plan, args, NULL, false, 0) != SPI_OK_DELETE_RETURNING)
			elog(ERROR, "topgun: Merkle pending rows fold failed");
		for (uint64 r = 0; r < SPI_processed; r++)
		{
			bool		isnull;
			Datum		d = SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &isnull);

			if (!isnull)
				decode_row(DatumGetByteaPP(d), m, &a, &kept, cap);
		}
	}
	*nodes = a;
	return kept;
}

/*
 * topgun._merkle_pending_leaves(deltas bytea) RETURNS TABLE (prefix int, slot int, delta bigint)
 *
 * The leaf deltas of one topgun.merkle_pending row: node, leaf within the
 * node (0..15), delta (unsigned 32-bit).
 */
Datum
tg_merkle_pending_leaves(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	bytea	   *b = PG_GETARG_BYTEA_PP(0);
	const uint8 *p = (const uint8 *) VARDATA_ANY(b);
	size_t		len = VARSIZE_ANY_EXHDR(b);
	size_t		pos = 0;
	TgDeltaRecord rec;
	int			r;

	InitMaterializedSRF(fcinfo, 0);
	while ((r = tg_delta_next(p, len, &pos, &rec)) == 1)
	{
		for (int i = 0; i < 16; i++)
		{
			Datum		values[3];
			bool		nulls[3] = {false, false, false};

			if ((rec.touched & (1u << i)) == 0)
				continue;
			values[0] = Int32GetDatum(rec.prefix);
			values[1] = Int32GetDatum(i);
			values[2] = Int64GetDatum((int64) rec.leaf[i]);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
	}
	if (r < 0)
		tg_merkle_delta_corrupt(len, pos);
	return (Datum) 0;
}

/*
 * topgun.merkle_fold(map text) RETURNS void
 *
 * Fold the map's pending delta rows into its node rows when the calling
 * transaction commits (waits for a fold of the map in progress).
 */
Datum
tg_merkle_fold(PG_FUNCTION_ARGS)
{
	text	   *map = PG_GETARG_TEXT_PP(0);
	char	   *m;
	MemoryContext old;

	if (VARSIZE_ANY_EXHDR(map) > TG_MAX_MAP_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("map name is too long (%d bytes)", (int) VARSIZE_ANY_EXHDR(map)),
				 errdetail("The maximum is %d bytes.", TG_MAX_MAP_BYTES)));
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("topgun.merkle_fold() must run under READ COMMITTED")));
	m = text_to_cstring(map);
	if (is_forced(m))
		PG_RETURN_VOID();
	DirectFunctionCall2(pg_advisory_xact_lock_int4, Int32GetDatum(FOLD_LOCK_CLASS), Int32GetDatum(map_lock_key(m)));
	old = MemoryContextSwitchTo(TopTransactionContext);
	forced = lappend(forced, pstrdup(m));
	MemoryContextSwitchTo(old);
	PG_RETURN_VOID();
}
