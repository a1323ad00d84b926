/*
 * modes.c — which maps keep a stored Merkle tree.
 *
 * A map with at most topgun.merkle_small_map_entries entries keeps no tree
 * rows: its hashes are computed from its rows when read (a few hundred rows
 * through the (map, leaf, key) primary key), and a commit that writes it
 * drops its Merkle deltas.  Per-user maps are small and many; with them a
 * commit of N ops touched about N node rows (one probe, HOT update and WAL
 * record each), half of the server's CPU with 500 maps.  A map that grows
 * past the limit gets its tree built once, at the commit that takes it
 * there, and keeps it for good (topgun.merkle_maps.stored); only TRUNCATE
 * forgets it.
 *
 * The entry count of a map without a tree lives in topgun.merkle_maps and
 * changes only in commits that add or remove entries (not in overwrites).
 *
 * The switch must not lose a delta: a commit that saw the map without a
 * tree and dropped its deltas must be in the snapshot the builder reads the
 * rows with.  So the maps are spread over TG_MODE_SLOTS lock slots (a hash
 * of the name): every commit that writes a map without a tree holds its
 * slot's lock in share mode from the decision to the end of the
 * commit; a builder takes it exclusively (queueing behind the commits that
 * hold it, but never behind a prepared transaction: then a later commit
 * builds), reads the rows with a snapshot
 * taken after that, and bumps the slot's generation in shared memory when it
 * has committed, before it releases the lock.  Slots are taken in ascending
 * order before any row lock of the flush, so they cannot deadlock.
 *
 * Each backend caches what it learned: "stored" for good, "no tree" tagged
 * with the slot's generation, re-read when the generation moved.  Without
 * shared_preload_libraries there is no shared memory; nothing is cached.
 *
 * Not under REPEATABLE READ / SERIALIZABLE (the count's row update could
 * fail with a serialization error) and not in a transaction being prepared:
 * such commits neither count nor build; a later READ COMMITTED commit or
 * merkle_rebuild() does.
 */
#include "topgun.h"
#include "merkle/merkle.h"

#include "access/genam.h"
#include "access/relation.h"
#include "access/skey.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

PG_FUNCTION_INFO_V1(tg_merkle_mode_lock);
PG_FUNCTION_INFO_V1(tg_merkle_modes_forget);

#define TG_MODE_SLOTS 16
/* a backend forgets its cache beyond this many maps */
#define MAX_CACHED_MAPS 65536

typedef struct ModeShared
{
	pg_atomic_uint32 epoch;		/* bumped when every map may have lost its tree (TRUNCATE) */
	pg_atomic_uint32 gen[TG_MODE_SLOTS];	/* bumped when a map of the slot got its tree */
} ModeShared;

typedef struct ModeEntry
{
	char		map[TG_MAX_MAP_BYTES + 1];
	bool		stored;
	int64		entries;		/* without a tree: the count last seen */
	uint32		gen;			/* without a tree: the slot's generation when read */
} ModeEntry;

typedef struct CountEntry
{
	char		map[TG_MAX_MAP_BYTES + 1];
	int64		delta;			/* entries added minus removed */
} CountEntry;

/* One map of a commit's deltas. */
typedef struct MapDecision
{
	const char *map;
	int			first;			/* its nodes are nodes[first .. first + count) */
	int			count;
	int			slot;
	int64		delta;			/* entries added minus removed by this commit */
	ModeEntry  *mode;
	bool		build;
} MapDecision;

static int	small_map_entries = 500;
static ModeShared *shared = NULL;
static shmem_request_hook_type prev_request = NULL;
static shmem_startup_hook_type prev_startup = NULL;
static HTAB *cache = NULL;
static uint32 cache_epoch = 0;
static HTAB *entry_deltas = NULL;	/* this transaction's entry counts per map */
static uint32 built_slots = 0;	/* slots whose generation this commit bumps */
static bool forget_all = false; /* this commit bumps the epoch */
static SPIPlanPtr lookup_plan = NULL;
static SPIPlanPtr count_plan = NULL;
static SPIPlanPtr build_plans[2];

static void
modes_request(void)
{
	if (prev_request)
		prev_request();
	RequestAddinShmemSpace(MAXALIGN(sizeof(ModeShared)));
}

static void
modes_startup(void)
{
	bool		found;

	if (prev_startup)
		prev_startup();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	shared = ShmemInitStruct("topgun merkle modes", sizeof(ModeShared), &found);
	if (!found)
	{
		pg_atomic_init_u32(&shared->epoch, 0);
		for (int i = 0; i < TG_MODE_SLOTS; i++)
			pg_atomic_init_u32(&shared->gen[i], 0);
	}
	LWLockRelease(AddinShmemInitLock);
}

void
tg_merkle_modes_init(void)
{
	DefineCustomIntVariable("topgun.merkle_small_map_entries",
							"Maps with at most this many entries keep no stored Merkle tree; their hashes are computed from the rows when read.",
							"0: every map keeps its tree from its first entry.  A map that outgrows the limit keeps its tree for good.",
							&small_map_entries, 500, 0, 100000, PGC_SUSET, 0, NULL, NULL, NULL);
	if (!process_shared_preload_libraries_in_progress)
		return;
	prev_request = shmem_request_hook;
	shmem_request_hook = modes_request;
	prev_startup = shmem_startup_hook;
	shmem_startup_hook = modes_startup;
}

static int
slot_of(const char *map)
{
	return (int) (hash_bytes((const unsigned char *) map, (int) strlen(map)) % TG_MODE_SLOTS);
}

static uint32
slot_gen(int slot)
{
	return shared != NULL ? pg_atomic_read_u32(&shared->gen[slot]) : 0;
}

/* ---- entry counts, from the row triggers and the OR-key flush ---- */

void
tg_merkle_count_entry(const char *map, int maplen, int delta)
{
	char		k[TG_MAX_MAP_BYTES + 1];
	CountEntry *e;
	bool		found;

	if (maplen > TG_MAX_MAP_BYTES)
		return;					/* tg_merkle_add_delta refuses the row */
	if (entry_deltas == NULL)
	{
		HASHCTL		ctl;

		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = TG_MAX_MAP_BYTES + 1;
		ctl.entrysize = sizeof(CountEntry);
		ctl.hcxt = TopTransactionContext;
		entry_deltas = hash_create("topgun merkle entry counts", 64, &ctl,
								   HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	}
	memset(k, 0, sizeof(k));
	memcpy(k, map, maplen);
	e = hash_search(entry_deltas, k, HASH_ENTER, &found);
	if (!found)
		e->delta = 0;
	e->delta += delta;
}

static int64
entry_delta(const char *map)
{
	CountEntry *e;

	if (entry_deltas == NULL)
		return 0;
	e = hash_search(entry_deltas, map, HASH_FIND, NULL);
	return e != NULL ? e->delta : 0;
}

/* ---- the cache ---- */

static void
cache_reset(void)
{
	HASHCTL		ctl;

	if (cache != NULL)
		hash_destroy(cache);
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = TG_MAX_MAP_BYTES + 1;
	ctl.entrysize = sizeof(ModeEntry);
	ctl.hcxt = TopMemoryContext;
	cache = hash_create("topgun merkle modes", 256, &ctl, HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
}

/* A cached answer still true now, or NULL. */
static ModeEntry *
cached(const char *map, int slot)
{
	ModeEntry  *e;

	if (shared == NULL)
		return NULL;
	e = hash_search(cache, map, HASH_FIND, NULL);
	if (e == NULL || e->stored || e->gen == slot_gen(slot))
		return e;
	return NULL;
}

static void
prepare_plans(void)
{
	Oid			one[1] = {TEXTARRAYOID};
	Oid			two[2] = {TEXTARRAYOID, INT8ARRAYOID};
	Oid			map[1] = {TEXTOID};

	if (lookup_plan != NULL)
		return;
	lookup_plan = tg_merkle_keep_plan("SELECT map, stored, entries FROM topgun.merkle_maps WHERE map = ANY ($1)",
									  1, one);
	/* in the order given (sorted): concurrent counters of the same maps take the rows in one order */
	count_plan = tg_merkle_keep_plan("INSERT INTO topgun.merkle_maps AS m (map, entries, stored) "
									 "SELECT u.m, u.d, false "
									 "FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2)) AS u(m, d) "
									 "ON CONFLICT (map) DO UPDATE SET entries = greatest(m.entries + excluded.entries, 0) "
									 "WHERE NOT m.stored RETURNING map, entries",
									 2, two);
	build_plans[0] = tg_merkle_keep_plan("SELECT topgun._merkle_build_nodes($1)", 1, map);
	build_plans[1] = tg_merkle_keep_plan("UPDATE topgun.merkle_maps SET stored = true WHERE map = $1", 1, map);
}

static Datum
text_array(MapDecision *d, int n, bool (*want) (MapDecision *), int *count)
{
	Datum	   *v = palloc((n + 1) * sizeof(Datum));
	int			k = 0;

	for (int i = 0; i < n; i++)
		if (want(&d[i]))
			v[k++] = CStringGetTextDatum(d[i].map);
	*count = k;
	return PointerGetDatum(construct_array(v, k, TEXTOID, -1, false, TYPALIGN_INT));
}

static bool
want_lookup(MapDecision *d)
{
	return d->mode == NULL;
}

/* Read the modes of the maps without a (valid) cached one, with a snapshot taken now. */
static void
lookup(MapDecision *d, int n)
{
	int			k;
	uint32		gens[TG_MODE_SLOTS];
	Datum		args[1];

	for (int s = 0; s < TG_MODE_SLOTS; s++)
		gens[s] = slot_gen(s);	/* before the snapshot: a later build moves them */
	pg_memory_barrier();
	args[0] = text_array(d, n, want_lookup, &k);
	if (k == 0)
		return;
	if (SPI_execute_snapshot(lookup_plan, args, NULL, GetLatestSnapshot(), InvalidSnapshot,
							 true, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "topgun: merkle_maps lookup failed");
	for (int i = 0; i < n; i++)
	{
		bool		found;
		ModeEntry  *e;

		if (d[i].mode != NULL)
			continue;
		e = hash_search(cache, d[i].map, HASH_ENTER, &found);
		e->stored = false;
		e->entries = 0;			/* no row: no entries counted yet */
		e->gen = gens[d[i].slot];
		d[i].mode = e;
	}
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		bool		isnull;
		char	   *m = TextDatumGetCString(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &isnull));
		ModeEntry  *e = hash_search(cache, m, HASH_FIND, NULL);

		if (e == NULL)
			continue;
		e->stored = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 2, &isnull));
		e->entries = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 3, &isnull));
	}
}

/*
 * A slot's lock: an object lock whose class is topgun.merkle_maps' OID (no
 * catalog has that OID, and no SQL function takes object locks, so no
 * session can hold a slot except through this file).
 */
static void
slot_tag(LOCKTAG *tag, int slot)
{
	Oid			relid = get_relname_relid("merkle_maps", get_namespace_oid("topgun", false));

	SET_LOCKTAG_OBJECT(*tag, MyDatabaseId, relid, (uint32) slot, 0);
}

static void
slot_lock(int slot, LOCKMODE mode, bool wait, bool *got)
{
	LOCKTAG		tag;

	slot_tag(&tag, slot);
	*got = LockAcquire(&tag, mode, false, !wait) != LOCKACQUIRE_NOT_AVAIL;
}

/*
 * Whether a prepared transaction holds the slot: one that wrote a map
 * without a tree keeps the share lock until COMMIT PREPARED, however long
 * that takes, so a builder must not queue behind it.
 */
static bool
prepared_holder(int slot)
{
	LOCKTAG		tag;
	int			n;
	VirtualTransactionId *v;

	slot_tag(&tag, slot);
	v = GetLockConflicts(&tag, ExclusiveLock, &n);
	for (int i = 0; i < n; i++)
		if (VirtualTransactionIdIsRecoveredPreparedXact(v[i]))
			return true;
	return false;
}

static bool
want_count(MapDecision *d)
{
	return !d->mode->stored && (d->delta != 0 || d->build);
}

/* Add the commit's entry counts of the maps without a tree; a map over the limit may be built. */
static void
count_entries(MapDecision *d, int n)
{
	Datum	   *deltas = palloc((n + 1) * sizeof(Datum));
	Datum		args[2];
	int			k = 0;

	for (int i = 0; i < n; i++)
		if (want_count(&d[i]))
			deltas[k++] = Int64GetDatum(d[i].delta);
	args[0] = text_array(d, n, want_count, &k);
	if (k == 0)
		return;
	args[1] = PointerGetDatum(construct_array(deltas, k, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	for (int i = 0; i < n; i++)
		if (want_count(&d[i]))
			d[i].mode->entries = PG_INT64_MIN;	/* no row back: the map has a tree */
	if (SPI_execute_plan(count_plan, args, NULL, false, 0) != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "topgun: merkle_maps count failed");
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		bool		isnull;
		char	   *m = TextDatumGetCString(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &isnull));
		ModeEntry  *e = hash_search(cache, m, HASH_FIND, NULL);

		if (e != NULL)
			e->entries = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 2, &isnull));
	}
	for (int i = 0; i < n; i++)
		if (want_count(&d[i]) && d[i].mode->entries == PG_INT64_MIN)
		{
			/* impossible while we hold the slot; keep the deltas rather than lose them */
			d[i].mode->stored = true;
			d[i].build = false;
		}
}

/* Build one map's tree from its rows, read with a snapshot taken under the exclusive slot lock. */
static void
build(const char *map)
{
	Datum		args[1];

	args[0] = CStringGetTextDatum(map);
	for (int p = 0; p < lengthof(build_plans); p++)
		if (SPI_execute_plan(build_plans[p], args, NULL, false, 0) < 0)
			elog(ERROR, "topgun: Merkle tree build of map \"%s\" failed", map);
}

/*
 * At pre-commit, inside the flush's SPI connection: nodes[0..n) are the
 * commit's node deltas sorted by (map, prefix).  Drops the deltas of maps
 * without a tree (counting their entries, building the tree of a map that
 * outgrew the limit) and returns how many remain, compacted in place.
 */
int
tg_merkle_modes_apply(TgNodeDelta *nodes, int n, bool preparing)
{
	MapDecision *d;
	int			nd = 0;
	int			kept = 0;
	bool		rr = IsolationUsesXactSnapshot();
	bool		may_build = !rr && !preparing;
	bool		excl[TG_MODE_SLOTS] = {false};
	bool		need[TG_MODE_SLOTS] = {false};

	if (n == 0)
		return 0;
	/* a schema older than this library (the upgrade script runs on it): every map keeps its tree */
	if (!OidIsValid(get_relname_relid("merkle_maps", get_namespace_oid("topgun", false))))
		return n;
	if (cache == NULL || shared == NULL || pg_atomic_read_u32(&shared->epoch) != cache_epoch)
	{
		cache_reset();
		if (shared != NULL)
			cache_epoch = pg_atomic_read_u32(&shared->epoch);
	}
	prepare_plans();

	d = palloc(n * sizeof(MapDecision));
	for (int i = 0, j; i < n; i = j)
	{
		for (j = i + 1; j < n && strcmp(nodes[j].map, nodes[i].map) == 0; j++)
			;
		nd++;
	}
	if (hash_get_num_entries(cache) + nd > MAX_CACHED_MAPS)
		cache_reset();
	nd = 0;
	for (int i = 0, j; i < n; i = j)
	{
		for (j = i + 1; j < n && strcmp(nodes[j].map, nodes[i].map) == 0; j++)
			;
		d[nd].map = nodes[i].map;
		d[nd].first = i;
		d[nd].count = j - i;
		d[nd].slot = slot_of(nodes[i].map);
		d[nd].delta = entry_delta(nodes[i].map);
		d[nd].mode = cached(nodes[i].map, d[nd].slot);
		d[nd].build = false;
		nd++;
	}
	lookup(d, nd);

	/* the slots of the maps without a tree, in ascending order: share, or exclusive to build */
	for (int i = 0; i < nd; i++)
		if (!d[i].mode->stored)
		{
			need[d[i].slot] = true;
			if (may_build && d[i].mode->entries + d[i].delta > small_map_entries)
				excl[d[i].slot] = true;
		}
	for (int s = 0; s < TG_MODE_SLOTS; s++)
	{
		bool		got = false;

		if (!need[s])
			continue;
		/*
		 * Exclusive to build: at once if free, else queue behind the
		 * commits holding it (writers that never pause would starve a
		 * try); not behind a prepared transaction.
		 */
		if (excl[s])
		{
			slot_lock(s, ExclusiveLock, false, &got);
			if (!got && !prepared_holder(s))
				slot_lock(s, ExclusiveLock, true, &got);
		}
		excl[s] = got;
		if (!got)
			slot_lock(s, ShareLock, true, &got);
	}
	/* a map whose slot moved since we read it may have got its tree: read again */
	for (int i = 0; i < nd; i++)
		if (!d[i].mode->stored && d[i].mode->gen != slot_gen(d[i].slot))
			d[i].mode = NULL;
	lookup(d, nd);
	for (int i = 0; i < nd; i++)
		d[i].build = !d[i].mode->stored && excl[d[i].slot];

	if (!rr)
		count_entries(d, nd);
	for (int i = 0; i < nd; i++)
	{
		if (d[i].build && !d[i].mode->stored && d[i].mode->entries > small_map_entries)
		{
			/* the rows, ours included, hold this commit's changes: its deltas are not needed */
			build(d[i].map);
			built_slots |= 1u << d[i].slot;
			continue;
		}
		if (!d[i].mode->stored)
			continue;			/* no tree: the deltas are dropped */
		memmove(&nodes[kept], &nodes[d[i].first], d[i].count * sizeof(TgNodeDelta));
		kept += d[i].count;
	}
	return kept;
}

/*
 * At the end of the transaction.  After a commit that built trees (still
 * holding the slots' locks) move their generations, so the other backends
 * read the maps again before they drop a delta; the own cache forgets the
 * built maps either way (an aborted build left them without a tree).
 */
void
tg_merkle_modes_end(bool committed)
{
	if (committed && shared != NULL)
	{
		if (forget_all)
			pg_atomic_fetch_add_u32(&shared->epoch, 1);
		for (int s = 0; s < TG_MODE_SLOTS; s++)
			if (built_slots & (1u << s))
				pg_atomic_fetch_add_u32(&shared->gen[s], 1);
	}
	if ((built_slots != 0 || forget_all) && cache != NULL)
		cache_reset();
	built_slots = 0;
	forget_all = false;
	entry_deltas = NULL;		/* lived in TopTransactionContext */
}

/*
 * For the readers (api.c): whether the map keeps a stored tree, in the
 * active snapshot — one probe of topgun.merkle_maps' primary key, no
 * statement.  A schema older than this library: every map has its tree.
 */
bool
tg_merkle_map_stored(text *map)
{
	Oid			nsp = get_namespace_oid("topgun", false);
	Oid			relid = get_relname_relid("merkle_maps", nsp);
	Oid			idxid = get_relname_relid("merkle_maps_pkey", nsp);
	Relation	rel;
	Relation	idx;
	ScanKeyData key;
	IndexScanDesc scan;
	TupleTableSlot *slot;
	bool		stored = false;

	if (!OidIsValid(relid) || !OidIsValid(idxid))
		return true;
	rel = table_open(relid, AccessShareLock);
	idx = index_open(idxid, AccessShareLock);
	ScanKeyEntryInitialize(&key, 0, 1, BTEqualStrategyNumber, InvalidOid,
						   idx->rd_indcollation[0], F_TEXTEQ, PointerGetDatum(map));
	slot = table_slot_create(rel, NULL);
	scan = index_beginscan(rel, idx, GetActiveSnapshot(), 1, 0);
	index_rescan(scan, &key, 1, NULL, 0);
	if (index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		bool		isnull;
		Datum		d = slot_getattr(slot, 3, &isnull);

		stored = !isnull && DatumGetBool(d);
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(idx, AccessShareLock);
	table_close(rel, AccessShareLock);
	return stored;
}

/*
 * Before PREPARE TRANSACTION: the generations must move when the trees are
 * committed, and COMMIT PREPARED runs no callback of ours.
 */
void
tg_merkle_modes_check_prepare(void)
{
	if (built_slots != 0 || forget_all)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot PREPARE a transaction that ran topgun.merkle_rebuild() or truncated a topgun storage table")));
}

/*
 * topgun._merkle_mode_lock(map text) RETURNS int
 *
 * For merkle_rebuild(): takes the map's slot exclusively until the end of
 * the transaction (waiting), makes the other backends read the slot's maps
 * again after the commit, and returns topgun.merkle_small_map_entries.
 */
/* The helpers below act for every session: only a role that may write topgun.merkle_maps calls them. */
static void
check_writer(const char *fn)
{
	Oid			relid = get_relname_relid("merkle_maps", get_namespace_oid("topgun", false));

	if (!OidIsValid(relid) || pg_class_aclcheck(relid, GetUserId(), ACL_UPDATE | ACL_DELETE) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for function %s", fn),
				 errdetail("It needs UPDATE and DELETE on topgun.merkle_maps (topgun.grant_access).")));
}

Datum
tg_merkle_mode_lock(PG_FUNCTION_ARGS)
{
	char	   *map = text_to_cstring(PG_GETARG_TEXT_PP(0));
	int			slot = slot_of(map);
	bool		got;

	check_writer("topgun._merkle_mode_lock");
	slot_lock(slot, ExclusiveLock, true, &got);
	built_slots |= 1u << slot;
	PG_RETURN_INT32(small_map_entries);
}

/* topgun._merkle_modes_forget() RETURNS void: after this commit every backend reads every map's mode again (TRUNCATE). */
Datum
tg_merkle_modes_forget(PG_FUNCTION_ARGS)
{
	check_writer("topgun._merkle_modes_forget");
	forget_all = true;
	PG_RETURN_VOID();
}
