/*
 * pending.c — per-transaction Merkle deltas, flushed at pre-commit.
 *
 * Row triggers on the storage tables call in here with the change a row
 * makes to its leaf (LWW: item hash added/removed) or with the OR-map key it
 * touched.  Nothing is written until the transaction is about to commit;
 * then the deltas of every touched depth-2 node are merged per node and, per
 * map, either written as pending rows or folded (pending_rows.c): a folded
 * map's node rows (each holding its hash and its 16 leaf hashes) get one
 * update each, in (map, prefix) order.  A transaction of any size costs at
 * most 256 row updates per map.
 *
 * Subtransactions: deltas made inside a subtransaction are logged with its
 * nesting level so that a rollback to savepoint can subtract them again.
 * The log is kept only below the top level and is a stack whose levels never
 * decrease towards its tail, so savepoint release/rollback touch only the
 * entries of that subtransaction.  OR keys need no undo: a key marked dirty
 * in vain is merely recomputed from its (unchanged) rows at commit.
 */
#include "topgun.h"
#include "merkle/merkle.h"
#include "merkle/fnv.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

typedef struct LeafKey
{
	char		map[TG_MAX_MAP_BYTES + 1];
	int16		leaf;
} LeafKey;

typedef struct LeafEntry
{
	LeafKey		key;
	uint32		delta;
} LeafEntry;

typedef struct UndoItem
{
	LeafEntry  *entry;
	uint32		delta;
	int			nest;
} UndoItem;

typedef struct OrKey
{
	const char *map;
	const char *key;
	int			maplen;
	int			keylen;
} OrKey;

typedef struct OrEntry
{
	OrKey		key;
} OrEntry;

static HTAB *leaf_deltas = NULL;
static HTAB *or_dirty = NULL;
static UndoItem *undo = NULL;
static int	undo_len = 0;
static int	undo_cap = 0;
static bool flushing = false;

static uint32
or_key_hash(const void *k, Size keysize)
{
	const OrKey *o = k;

	return hash_combine(hash_bytes((const unsigned char *) o->map, o->maplen),
						hash_bytes((const unsigned char *) o->key, o->keylen));
}

static int
or_key_match(const void *a, const void *b, Size keysize)
{
	const OrKey *x = a;
	const OrKey *y = b;

	if (x->maplen != y->maplen || x->keylen != y->keylen)
		return 1;
	if (memcmp(x->map, y->map, x->maplen) != 0)
		return 1;
	return memcmp(x->key, y->key, x->keylen) != 0;
}

static void
ensure_tables(void)
{
	HASHCTL		ctl;

	if (leaf_deltas != NULL)
		return;
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(LeafKey);
	ctl.entrysize = sizeof(LeafEntry);
	ctl.hcxt = TopTransactionContext;
	leaf_deltas = hash_create("topgun merkle deltas", 256, &ctl,
							  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(OrKey);
	ctl.entrysize = sizeof(OrEntry);
	ctl.hash = or_key_hash;
	ctl.match = or_key_match;
	ctl.hcxt = TopTransactionContext;
	or_dirty = hash_create("topgun dirty or keys", 64, &ctl,
						   HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
}

static void
reset_pending(void)
{
	/* Everything lived in TopTransactionContext, which is being reset. */
	leaf_deltas = NULL;
	or_dirty = NULL;
	undo = NULL;
	undo_len = undo_cap = 0;
	flushing = false;
	tg_merkle_rows_reset();
}

void
tg_merkle_add_delta(const char *map, int maplen, int leaf, uint32 delta)
{
	LeafKey		k;
	LeafEntry  *e;
	bool		found;
	int			nest;

	if (flushing)
		elog(ERROR, "topgun: Merkle delta recorded while flushing");
	/* rows written by direct DML bypass the API's checks */
	if (maplen > TG_MAX_MAP_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("map name is too long (%d bytes)", maplen),
				 errdetail("The maximum is %d bytes.", TG_MAX_MAP_BYTES)));
	ensure_tables();
	memset(&k, 0, sizeof(k));
	memcpy(k.map, map, maplen);
	k.leaf = (int16) leaf;
	e = hash_search(leaf_deltas, &k, HASH_ENTER, &found);
	if (!found)
		e->delta = 0;
	e->delta += delta;			/* wrapping uint32 arithmetic, as TopGun's sums */

	nest = GetCurrentTransactionNestLevel();
	if (nest > 1)
	{
		if (undo_len == undo_cap)
		{
			int			ncap = undo_cap == 0 ? 64 : undo_cap * 2;

			if (undo == NULL)
				undo = MemoryContextAlloc(TopTransactionContext, ncap * sizeof(UndoItem));
			else
				undo = repalloc(undo, ncap * sizeof(UndoItem));
			undo_cap = ncap;
		}
		undo[undo_len].entry = e;
		undo[undo_len].delta = delta;
		undo[undo_len].nest = nest;
		undo_len++;
	}
}

void
tg_merkle_mark_or_key(const char *map, int maplen, const char *key, int keylen)
{
	OrKey		k;
	OrEntry    *e;
	bool		found;

	if (flushing)
		elog(ERROR, "topgun: OR-map key marked while flushing");
	ensure_tables();
	k.map = map;
	k.maplen = maplen;
	k.key = key;
	k.keylen = keylen;
	e = hash_search(or_dirty, &k, HASH_ENTER, &found);
	if (!found)
	{
		/* Own copies: the trigger's tuple memory goes away. */
		char	   *m = MemoryContextAlloc(TopTransactionContext, maplen + keylen + 2);

		memcpy(m, map, maplen);
		m[maplen] = '\0';
		memcpy(m + maplen + 1, key, keylen);
		m[maplen + 1 + keylen] = '\0';
		e->key.map = m;
		e->key.key = m + maplen + 1;
	}
}

/*
 * Sum of this transaction's not-yet-flushed deltas for one map, restricted
 * to leaves whose prefix at `level` lies in [lo, hi]; per_child (16 slots)
 * receives the sums split by the next hex digit.  Reads use it so that a
 * transaction sees its own writes in the tree.
 */
uint32
tg_merkle_pending_sum(const char *map, int maplen, int level, int lo, int hi, uint32 *per_child)
{
	HASH_SEQ_STATUS st;
	LeafEntry  *e;
	uint32		total = 0;

	if (leaf_deltas == NULL || maplen > TG_MAX_MAP_BYTES)
		return 0;
	hash_seq_init(&st, leaf_deltas);
	while ((e = hash_seq_search(&st)) != NULL)
	{
		int			p;

		if (strncmp(e->key.map, map, maplen) != 0 || e->key.map[maplen] != '\0')
			continue;
		/* prefix of the leaf at the requested level (1, 2 or 3 hex digits) */
		p = e->key.leaf >> (4 * (3 - level));
		if (level == 0)
			p = 0;
		if (p < lo || p > hi)
			continue;
		total += e->delta;
		if (per_child != NULL && level < 3)
			per_child[(e->key.leaf >> (4 * (2 - level))) & 15] += e->delta;
	}
	return total;
}

static void
subxact_callback(SubXactEvent event, SubTransactionId mySubid,
				 SubTransactionId parentSubid, void *arg)
{
	int			nest;

	if (undo_len == 0)
		return;
	nest = GetCurrentTransactionNestLevel();
	if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		while (undo_len > 0 && undo[undo_len - 1].nest >= nest)
		{
			undo_len--;
			undo[undo_len].entry->delta -= undo[undo_len].delta;
		}
	}
	else if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		int			i = undo_len;

		while (i > 0 && undo[i - 1].nest >= nest)
		{
			i--;
			undo[i].nest = nest - 1;
		}
		/* Deltas that reached the top level can no longer be undone alone. */
		if (nest - 1 <= 1)
			undo_len = i;
	}
}

/* --------------------------------------------------------------------------
 * Flush
 * --------------------------------------------------------------------------
 */
static int
node_delta_cmp(const void *a, const void *b)
{
	const TgNodeDelta *x = a;
	const TgNodeDelta *y = b;
	int			c = strcmp(x->map, y->map);

	if (c != 0)
		return c;
	return x->prefix - y->prefix;
}

/* Sort nodes[0..n) by (map, prefix) and merge the deltas of each node into one; returns the count. */
static int
merge_nodes(TgNodeDelta *nodes, int n)
{
	int			i,
				j;

	qsort(nodes, n, sizeof(TgNodeDelta), node_delta_cmp);
	for (i = 0, j = 0; i < n; i++)
	{
		if (j > 0 && node_delta_cmp(&nodes[j - 1], &nodes[i]) == 0)
		{
			TgNodeDelta *d = &nodes[j - 1];

			d->touched |= nodes[i].touched;
			for (int k = 0; k < 16; k++)
				d->leaf[k] += nodes[i].leaf[k];
		}
		else
			nodes[j++] = nodes[i];
	}
	return j;
}

static SPIPlanPtr upsert_nodes_plan = NULL;
static SPIPlanPtr or_old_plan = NULL;
static SPIPlanPtr or_lock_plan = NULL;
static SPIPlanPtr or_put_plan = NULL;
static SPIPlanPtr or_del_plan = NULL;

static void
prepare_flush_plans(void)
{
	Oid			tn[3 + 16] = {TEXTARRAYOID, INT2ARRAYOID, INT8ARRAYOID};
	Oid			t3[4] = {TEXTOID, INT2OID, TEXTOID, INT8OID};

	if (upsert_nodes_plan != NULL)
		return;
	for (int k = 0; k < 16; k++)
		tn[3 + k] = INT8ARRAYOID;
	/*
	 * Parallel arrays read by one multi-argument unnest, so the statement is
	 * linear in the nodes (subscripting a varlena or NULL-holding array
	 * walks it from its start: $1[i] over all i is quadratic).  $4..$19:
	 * leaf k's delta of every node, NULL for an untouched leaf; a new row
	 * starts from zero, so its leaves are exactly the deltas.
	 */
	{
		StringInfoData q;

		initStringInfo(&q);
		appendStringInfoString(&q, "INSERT INTO topgun.merkle_nodes AS m (map, prefix, hash, leaves) "
							   "SELECT u.m, u.p, u.h, ARRAY[u.l0");
		for (int k = 1; k < 16; k++)
			appendStringInfo(&q, ", u.l%d", k);
		appendStringInfoString(&q, "] FROM ROWS FROM (pg_catalog.unnest($1)");
		for (int k = 2; k <= 3 + 16; k++)
			appendStringInfo(&q, ", pg_catalog.unnest($%d)", k);
		appendStringInfoString(&q, ") AS u(m, p, h");
		for (int k = 0; k < 16; k++)
			appendStringInfo(&q, ", l%d", k);
		appendStringInfoString(&q, ") ON CONFLICT (map, prefix) DO UPDATE "
							   "SET hash = (m.hash + excluded.hash) % 4294967296, "
							   "leaves = topgun._merkle_leaves_add(m.leaves, excluded.leaves)");
		upsert_nodes_plan = tg_merkle_keep_plan(q.data, 3 + 16, tn);
		pfree(q.data);
	}
	or_old_plan = tg_merkle_keep_plan("SELECT entry_hash FROM topgun.or_keys WHERE map = $1 AND leaf = $2 AND key = $3",
					   3, t3);
	/* ON CONFLICT DO UPDATE ... WHERE false locks an existing row without writing it */
	or_lock_plan = tg_merkle_keep_plan("INSERT INTO topgun.or_keys AS k (map, leaf, key, entry_hash) VALUES ($1, $2, $3, 0) "
						"ON CONFLICT (map, leaf, key) DO UPDATE SET entry_hash = k.entry_hash WHERE false "
						"RETURNING 1", 3, t3);
	or_put_plan = tg_merkle_keep_plan("INSERT INTO topgun.or_keys AS k (map, leaf, key, entry_hash) VALUES ($1, $2, $3, $4) "
					   "ON CONFLICT (map, leaf, key) DO UPDATE SET entry_hash = excluded.entry_hash",
					   4, t3);
	or_del_plan = tg_merkle_keep_plan("DELETE FROM topgun.or_keys WHERE map = $1 AND leaf = $2 AND key = $3", 3, t3);
}

typedef struct DirtyKey
{
	const char *map;
	const char *key;
	int			maplen;
	int			keylen;
	int			leaf;
} DirtyKey;

static int
dirty_key_cmp(const void *a, const void *b)
{
	const DirtyKey *x = a;
	const DirtyKey *y = b;
	int			c = strcmp(x->map, y->map);

	if (c != 0)
		return c;
	if (x->leaf != y->leaf)
		return x->leaf - y->leaf;
	c = memcmp(x->key, y->key, Min(x->keylen, y->keylen));
	return c != 0 ? c : x->keylen - y->keylen;
}

/*
 * Recompute the entry hash of every dirty OR key and turn it into a leaf
 * delta.  Two transactions may change different tags of one key at the same
 * time, and neither sees the other's records; so each first takes the key's
 * row in topgun.or_keys (creating it if needed), in a fixed order, which makes
 * a concurrent flusher of the same key wait until the other has committed.
 * Only then is the entry hash recomputed, from a fresh snapshot that includes
 * the other transaction's records, and the old hash read from the locked row.
 */
static void
flush_or_keys(void)
{
	HASH_SEQ_STATUS st;
	OrEntry    *e;
	DirtyKey   *keys;
	int			n = 0,
				i;

	keys = palloc(sizeof(DirtyKey) * (hash_get_num_entries(or_dirty) + 1));
	hash_seq_init(&st, or_dirty);
	while ((e = hash_seq_search(&st)) != NULL)
	{
		keys[n].map = e->key.map;
		keys[n].maplen = e->key.maplen;
		keys[n].key = e->key.key;
		keys[n].keylen = e->key.keylen;
		keys[n].leaf = tg_leaf_of_hash(tg_hash_string(e->key.key, e->key.keylen));
		n++;
	}
	qsort(keys, n, sizeof(DirtyKey), dirty_key_cmp);

	for (i = 0; i < n; i++)
	{
		DirtyKey   *k = &keys[i];
		uint32		newh = 0;
		uint32		oldh = 0;
		bool		had_old;
		bool		live;
		Datum		args[4];
		bool		isnull;

		args[0] = CStringGetTextDatum(k->map);
		args[1] = Int16GetDatum((int16) k->leaf);
		args[2] = PointerGetDatum(cstring_to_text_with_len(k->key, k->keylen));
		/* take (or create) the key's row: returns a row only when created */
		if (SPI_execute_plan(or_lock_plan, args, NULL, false, 0) != SPI_OK_INSERT_RETURNING)
			elog(ERROR, "topgun: or_keys lock failed");
		had_old = SPI_processed == 0;

		/* a snapshot taken after the lock sees what a concurrent flusher committed */
		PopActiveSnapshot();
		CommandCounterIncrement();
		PushActiveSnapshot(GetTransactionSnapshot());
		if (had_old)
		{
			if (SPI_execute_plan(or_old_plan, args, NULL, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
				elog(ERROR, "topgun: or_keys lookup failed");
			oldh = (uint32) DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
														SPI_tuptable->tupdesc, 1, &isnull));
		}
		live = tg_or_entry_hash(k->map, k->maplen, k->key, k->keylen, &newh);
		if (live)
		{
			args[3] = Int64GetDatum((int64) newh);
			if (SPI_execute_plan(or_put_plan, args, NULL, false, 0) != SPI_OK_INSERT)
				elog(ERROR, "topgun: or_keys update failed");
		}
		else if (SPI_execute_plan(or_del_plan, args, NULL, false, 0) != SPI_OK_DELETE)
			elog(ERROR, "topgun: or_keys delete failed");
		if (!live && !had_old)
			continue;			/* never hashed and still empty */
		if (live != had_old)
			tg_merkle_count_entry(k->map, k->maplen, live ? 1 : -1);
		if (newh != oldh || !had_old)
		{
			/* bypass the "while flushing" guard: this is part of the flush */
			flushing = false;
			tg_merkle_add_delta(k->map, k->maplen, k->leaf, newh - oldh);
			flushing = true;
		}
	}
}

static void
flush_pending(bool may_fold)
{
	HASH_SEQ_STATUS st;
	LeafEntry  *e;
	TgNodeDelta  *nodes;
	int			n = 0;
	int			cap;
	int			i,
				j,
				k;
	Datum	   *maps,
			   *prefixes,
			   *hashes,
			   *leaves;
	bool	   *leafnulls;
	int			dims[1];
	int			lbs[1] = {1};
	Datum		args[3 + 16];
	uint64		started;
	int			nor;
	int			nwritten;
	bool	   *done;

	if (leaf_deltas == NULL && !tg_merkle_rows_forced())
		return;
	started = tg_merkle_cpu_usec();
	flushing = true;
	/*
	 * Pre-commit runs after the last statement: make its changes visible to
	 * us (the recompute of OR keys reads them) and take a snapshot.
	 */
	CommandCounterIncrement();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	prepare_flush_plans();
	nor = or_dirty != NULL ? (int) hash_get_num_entries(or_dirty) : 0;
	if (nor > 0)
		flush_or_keys();

	cap = (leaf_deltas != NULL ? hash_get_num_entries(leaf_deltas) : 0) + 16;
	nodes = palloc(cap * sizeof(TgNodeDelta));
	if (leaf_deltas != NULL)
	{
		hash_seq_init(&st, leaf_deltas);
		while ((e = hash_seq_search(&st)) != NULL)
		{
			nodes[n].map = e->key.map;
			nodes[n].prefix = e->key.leaf >> 4;
			nodes[n].touched = (uint16) (1 << (e->key.leaf & 15));
			memset(nodes[n].leaf, 0, sizeof(nodes[n].leaf));
			nodes[n].leaf[e->key.leaf & 15] = e->delta;
			n++;
		}
	}
	n = merge_nodes(nodes, n);
	/* maps without a stored tree drop their deltas (modes.c) */
	n = tg_merkle_modes_apply(nodes, n, !may_fold);
	/* pend the deltas of most maps; the maps that fold come back with their pending rows */
	n = merge_nodes(nodes, tg_merkle_rows_apply(&nodes, n, &cap, may_fold));
	if (n == 0)
	{
		SPI_finish();
		PopActiveSnapshot();
		flushing = false;
		tg_merkle_flush_account(started, 0, nor);
		return;
	}
	/* existing rows directly (node_write.c); the rest, new rows, with ON CONFLICT */
	done = palloc0(n * sizeof(bool));
	if (tg_merkle_nodes_update(nodes, n, done) > 0)
	{
		for (i = 0, j = 0; i < n; i++)
			if (!done[i])
				nodes[j++] = nodes[i];
		nwritten = n;
		n = j;
	}
	else
		nwritten = n;
	if (n == 0)
	{
		SPI_finish();
		PopActiveSnapshot();
		flushing = false;
		tg_merkle_flush_account(started, nwritten, nor);
		return;
	}
	maps = palloc(n * sizeof(Datum));
	prefixes = palloc(n * sizeof(Datum));
	hashes = palloc(n * sizeof(Datum));
	leaves = palloc(16 * n * sizeof(Datum));	/* leaf k of node i at k * n + i */
	leafnulls = palloc(16 * n * sizeof(bool));
	for (i = 0; i < n; i++)
	{
		uint32		node_delta = 0;

		for (k = 0; k < 16; k++)
		{
			node_delta += nodes[i].leaf[k];
			leaves[k * n + i] = Int64GetDatum((int64) nodes[i].leaf[k]);
			leafnulls[k * n + i] = (nodes[i].touched & (1 << k)) == 0;
		}
		maps[i] = CStringGetTextDatum(nodes[i].map);
		prefixes[i] = Int16GetDatum(nodes[i].prefix);
		hashes[i] = Int64GetDatum((int64) node_delta);
	}
	dims[0] = n;
	args[0] = PointerGetDatum(construct_array(maps, n, TEXTOID, -1, false, TYPALIGN_INT));
	args[1] = PointerGetDatum(construct_array(prefixes, n, INT2OID, 2, true, TYPALIGN_SHORT));
	args[2] = PointerGetDatum(construct_array(hashes, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	for (k = 0; k < 16; k++)
		args[3 + k] = PointerGetDatum(construct_md_array(leaves + k * n, leafnulls + k * n, 1, dims, lbs,
														 INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	if (SPI_execute_plan(upsert_nodes_plan, args, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "topgun: Merkle node update failed");
	SPI_finish();
	PopActiveSnapshot();
	flushing = false;
	tg_merkle_flush_account(started, nwritten, nor);
}

static void
xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			flush_pending(true);
			break;
		case XACT_EVENT_PRE_PREPARE:
			tg_merkle_modes_check_prepare();
			flush_pending(false);
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			tg_merkle_modes_end(true);
			reset_pending();
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
		case XACT_EVENT_PARALLEL_ABORT:
			tg_merkle_modes_end(false);
			reset_pending();
			break;
		default:
			break;
	}
}

void
tg_merkle_init(void)
{
	tg_merkle_flush_stats_init();
	tg_merkle_rows_init();
	tg_merkle_modes_init();
	RegisterXactCallback(xact_callback, NULL);
	RegisterSubXactCallback(subxact_callback, NULL);
}
