/*
 * pg_lock_shm.c — the shared-memory lock table (lock_shm.h) and the SQL
 * functions reading it (topgun.locks()) and posting to it
 * (topgun.lock_release()).
 */
#include "postgres.h"

#include "logic/lock_shm.h"

#include <signal.h>

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(tg_locks_srf);
PG_FUNCTION_INFO_V1(tg_lock_release);

static TgLockShm *shm = NULL;
static shmem_request_hook_type prev_request = NULL;
static shmem_startup_hook_type prev_startup = NULL;

#define SHM_NAME "topgun lock table"

static void
lock_shm_request(void)
{
	if (prev_request)
		prev_request();
	RequestAddinShmemSpace(MAXALIGN(sizeof(TgLockShm)));
	RequestNamedLWLockTranche(SHM_NAME, 1);
}

static void
lock_shm_startup(void)
{
	bool		found;

	if (prev_startup)
		prev_startup();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	shm = ShmemInitStruct(SHM_NAME, sizeof(TgLockShm), &found);
	if (!found)
	{
		memset(shm, 0, sizeof(TgLockShm));
		shm->lock = &(GetNamedLWLockTranche(SHM_NAME))->lock;
	}
	LWLockRelease(AddinShmemInitLock);
}

void
tg_lock_shm_init(void)
{
	prev_request = shmem_request_hook;
	shmem_request_hook = lock_shm_request;
	prev_startup = shmem_startup_hook;
	shmem_startup_hook = lock_shm_startup;
}

static void
detach(int code, Datum arg)
{
	if (shm == NULL)
		return;
	LWLockAcquire((LWLock *) shm->lock, LW_EXCLUSIVE);
	if (shm->server_pid == MyProcPid)
	{
		shm->server_pid = 0;
		shm->nrows = 0;
	}
	LWLockRelease((LWLock *) shm->lock);
}

void
tg_lock_shm_attach(void)
{
	if (shm == NULL)
		elog(ERROR, "topgun lock table is not initialised (shared_preload_libraries)");
	LWLockAcquire((LWLock *) shm->lock, LW_EXCLUSIVE);
	shm->server_pid = MyProcPid;
	shm->server_procno = MyProc->pgprocno;
	shm->nrows = 0;
	shm->rel_tail = shm->rel_head;	/* requests to a previous server are void */
	LWLockRelease((LWLock *) shm->lock);
	before_shmem_exit(detach, (Datum) 0);
}

int
tg_lock_shm_sync(TgLockMgr *m, int64_t now_ms)
{
	int			released;

	LWLockAcquire((LWLock *) shm->lock, LW_EXCLUSIVE);
	released = tg_lock_table_drain(shm, m, now_ms);
	tg_lock_table_fill(shm, m);
	LWLockRelease((LWLock *) shm->lock);
	return released;
}

static bool
server_alive(void)
{
	return shm->server_pid != 0 && (kill(shm->server_pid, 0) == 0 || errno == EPERM);
}

Datum
tg_locks_srf(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	if (shm == NULL)
		return (Datum) 0;
	LWLockAcquire((LWLock *) shm->lock, LW_SHARED);
	if (server_alive())
		for (int i = 0; i < shm->nrows && i < TG_LOCK_SHM_ROWS; i++)
		{
			TgLockShmRow *r = &shm->rows[i];
			Datum		v[5];
			bool		n[5] = {false, !r->held, false, !r->held, false};

			v[0] = PointerGetDatum(cstring_to_text_with_len(r->name, Min(r->name_len, TG_LOCK_NAME_MAX)));
			v[1] = Int64GetDatum((int64) r->holder);
			v[2] = Int64GetDatum((int64) r->token);
			/* Unix ms → timestamptz (microseconds since 2000-01-01) */
			v[3] = TimestampTzGetDatum((TimestampTz) (r->expiry_ms - INT64CONST(946684800000)) * 1000);
			v[4] = Int32GetDatum(r->waiters);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, n);
		}
	LWLockRelease((LWLock *) shm->lock);
	return (Datum) 0;
}

Datum
tg_lock_release(PG_FUNCTION_ARGS)
{
	text	   *name = PG_GETARG_TEXT_PP(0);
	size_t		len = VARSIZE_ANY_EXHDR(name);
	bool		posted = false;
	int			procno = -1;

	if (len == 0 || len > TG_LOCK_NAME_MAX)
		ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						errmsg("lock name must be 1..%d bytes", TG_LOCK_NAME_MAX)));
	if (shm == NULL)
		PG_RETURN_BOOL(false);
	LWLockAcquire((LWLock *) shm->lock, LW_EXCLUSIVE);
	if (server_alive() && tg_lock_table_post_release(shm, VARDATA_ANY(name), len))
	{
		posted = true;
		procno = shm->server_procno;
	}
	LWLockRelease((LWLock *) shm->lock);
	if (posted && procno >= 0 && procno < (int) ProcGlobal->allProcCount)
		SetLatch(&ProcGlobal->allProcs[procno].procLatch);
	PG_RETURN_BOOL(posted);
}
