/*
 * flush_stats.c — cumulative cost of the Merkle pre-commit flush, summed
 * over every backend in shared memory, so a benchmark can tell which share
 * of the writers' CPU the flush takes: topgun.merkle_flush_stats().
 *
 * Without shared_preload_libraries there is no shared memory for it; the
 * flush then counts nothing and the function reports zeros.
 */
#include "topgun.h"

#include <time.h>

#include "merkle/merkle.h"

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "access/htup_details.h"
#include "utils/builtins.h"

typedef struct FlushStats
{
	pg_atomic_uint64 flushes;	/* commits that had Merkle deltas */
	pg_atomic_uint64 nodes;		/* depth-2 node rows written */
	pg_atomic_uint64 or_keys;	/* OR keys whose entry hash was recomputed */
	pg_atomic_uint64 usec;		/* CPU time spent in the flush */
} FlushStats;

static FlushStats *stats = NULL;
static shmem_request_hook_type prev_request = NULL;
static shmem_startup_hook_type prev_startup = NULL;

PG_FUNCTION_INFO_V1(tg_merkle_flush_stats);

static void
stats_request(void)
{
	if (prev_request)
		prev_request();
	RequestAddinShmemSpace(MAXALIGN(sizeof(FlushStats)));
}

static void
stats_startup(void)
{
	bool		found;

	if (prev_startup)
		prev_startup();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	stats = ShmemInitStruct("topgun merkle flush stats", sizeof(FlushStats), &found);
	if (!found)
	{
		pg_atomic_init_u64(&stats->flushes, 0);
		pg_atomic_init_u64(&stats->nodes, 0);
		pg_atomic_init_u64(&stats->or_keys, 0);
		pg_atomic_init_u64(&stats->usec, 0);
	}
	LWLockRelease(AddinShmemInitLock);
}

void
tg_merkle_flush_stats_init(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;
	prev_request = shmem_request_hook;
	shmem_request_hook = stats_request;
	prev_startup = shmem_startup_hook;
	shmem_startup_hook = stats_startup;
}

/* CPU time of this process in microseconds (backends are single-threaded). */
uint64
tg_merkle_cpu_usec(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0)
		return 0;
	return (uint64) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void
tg_merkle_flush_account(uint64 started_usec, int nodes, int or_keys)
{
	if (stats == NULL)
		return;
	pg_atomic_fetch_add_u64(&stats->flushes, 1);
	pg_atomic_fetch_add_u64(&stats->nodes, (uint64) nodes);
	pg_atomic_fetch_add_u64(&stats->or_keys, (uint64) or_keys);
	pg_atomic_fetch_add_u64(&stats->usec, tg_merkle_cpu_usec() - started_usec);
}

/* topgun.merkle_flush_stats() → (flushes, nodes, or_keys, flush_cpu_ms) */
Datum
tg_merkle_flush_stats(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	Datum		v[4];
	bool		nulls[4] = {false, false, false, false};

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "topgun.merkle_flush_stats: return type must be a row type");
	v[0] = Int64GetDatum(stats ? (int64) pg_atomic_read_u64(&stats->flushes) : 0);
	v[1] = Int64GetDatum(stats ? (int64) pg_atomic_read_u64(&stats->nodes) : 0);
	v[2] = Int64GetDatum(stats ? (int64) pg_atomic_read_u64(&stats->or_keys) : 0);
	v[3] = Float8GetDatum(stats ? pg_atomic_read_u64(&stats->usec) / 1000.0 : 0.0);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, v, nulls)));
}
