/*
 * horizon.c — the journal's safe horizon.
 *
 * Sequence numbers are taken from topgun.journal_seq when a transaction
 * writes its events (at pre-commit, or earlier when its buffer fills).  Two
 * transactions may commit in the other order than they took their numbers,
 * so a reader that just read "everything committed above my cursor" could
 * skip a smaller number that commits a moment later.  The horizon prevents
 * that: every backend that holds numbers of an unfinished transaction
 * publishes the first of them in its slot here, and
 *
 *     horizon = min(active slots) - 1, or, with none active,
 *               the largest number any finished transaction took
 *
 * Every number at or below the horizon belongs to a transaction that has
 * committed (its rows are visible to any snapshot taken afterwards) or
 * aborted (its rows never appear).  Taking the first number and publishing
 * the slot happen under one exclusive lock, and readers take it shared, so
 * no reader can see a number that has been taken but not yet published.
 * Slots are cleared in the commit callback, which runs after the commit is
 * visible (ProcArrayEndTransaction).
 *
 * Shared memory is lost at a restart, which also ends every transaction:
 * the largest finished number is then read back from the sequence.
 */
#include "topgun.h"
#include "journal/journal.h"

#include "access/twophase.h"
#include "access/xact.h"
#include "commands/sequence.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/fmgrprotos.h"

#define NO_SLOT		(-1)

typedef struct JournalShared
{
	LWLock	   *lock;
	bool		loaded;			/* done_max includes the sequence's value at start */
	int64		done_max;		/* largest number taken by a finished transaction */
	int			nslots;
	int64		slot[FLEXIBLE_ARRAY_MEMBER];	/* by pgprocno; NO_SLOT = none */
} JournalShared;

static JournalShared *js = NULL;
static shmem_request_hook_type prev_request = NULL;
static shmem_startup_hook_type prev_startup = NULL;

/* This backend's claim (the numbers of its current transaction). */
static int64 my_first = NO_SLOT;
static int64 my_last = NO_SLOT;

PG_FUNCTION_INFO_V1(tg_journal_horizon_sql);

static int
total_slots(void)
{
	return MaxBackends + NUM_AUXILIARY_PROCS + max_prepared_xacts;
}

static Size
shared_size(void)
{
	return MAXALIGN(offsetof(JournalShared, slot) + sizeof(int64) * total_slots());
}

static void
horizon_request(void)
{
	if (prev_request)
		prev_request();
	RequestAddinShmemSpace(shared_size());
	RequestNamedLWLockTranche("topgun journal", 1);
}

static void
horizon_startup(void)
{
	bool		found;

	if (prev_startup)
		prev_startup();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	js = ShmemInitStruct("topgun journal", shared_size(), &found);
	if (!found)
	{
		int			i;

		js->lock = &(GetNamedLWLockTranche("topgun journal"))->lock;
		js->loaded = false;
		js->done_max = NO_SLOT;
		js->nslots = total_slots();
		for (i = 0; i < js->nslots; i++)
			js->slot[i] = NO_SLOT;
	}
	LWLockRelease(AddinShmemInitLock);
}

void
tg_journal_horizon_shmem(void)
{
	prev_request = shmem_request_hook;
	shmem_request_hook = horizon_request;
	prev_startup = shmem_startup_hook;
	shmem_startup_hook = horizon_startup;
}

static void
read_last_value(void *arg)
{
	Oid			seq = *(Oid *) ((void **) arg)[0];
	int64	   *out = ((void **) arg)[1];
	LOCAL_FCINFO(fcinfo, 1);
	Datum		d;

	InitFunctionCallInfoData(*fcinfo, NULL, 1, InvalidOid, NULL, NULL);
	fcinfo->args[0].value = ObjectIdGetDatum(seq);
	fcinfo->args[0].isnull = false;
	d = pg_sequence_last_value(fcinfo);
	*out = fcinfo->isnull ? NO_SLOT : DatumGetInt64(d);
}

/*
 * After a restart: every number the sequence handed out before belongs to a
 * finished transaction.  Read outside the lock; a number taken meanwhile is
 * either published in a slot or already counted in done_max.
 */
static void
ensure_loaded(void)
{
	Oid			seq;
	int64		last = NO_SLOT;
	void	   *args[2];

	if (js->loaded)
		return;
	seq = tg_journal_relid("journal_seq", true);
	if (OidIsValid(seq))
	{
		args[0] = &seq;
		args[1] = &last;
		tg_journal_as_owner(seq, read_last_value, args);
	}
	LWLockAcquire(js->lock, LW_EXCLUSIVE);
	if (!js->loaded)
	{
		js->done_max = Max(js->done_max, last);
		js->loaded = true;
	}
	LWLockRelease(js->lock);
}

static int
my_index(void)
{
	if (MyProc == NULL || MyProc->pgprocno < 0 || MyProc->pgprocno >= js->nslots)
		elog(ERROR, "topgun: this process cannot write journal events");
	return MyProc->pgprocno;
}

/*
 * Take n numbers from the sequence `seq` for this transaction's events into
 * seqs[].  The transaction's first number is taken and published under the
 * lock; later ones are larger, so they need no publishing.
 */
void
tg_journal_take_numbers(Oid seq, int64 *seqs, int n)
{
	int			i = 0;

	if (n <= 0)
		return;
	ensure_loaded();
	if (my_first == NO_SLOT)
	{
		int			me = my_index();

		LWLockAcquire(js->lock, LW_EXCLUSIVE);
		/* on an error, the abort releases the lock */
		seqs[0] = nextval_internal(seq, false);
		js->slot[me] = seqs[0];
		my_first = my_last = seqs[0];
		LWLockRelease(js->lock);
		i = 1;
	}
	for (; i < n; i++)
		seqs[i] = nextval_internal(seq, false);
	my_last = seqs[n - 1];
}

/* End of the transaction (commit: after it became visible; or abort). */
void
tg_journal_release(void)
{
	if (my_first == NO_SLOT)
		return;
	LWLockAcquire(js->lock, LW_EXCLUSIVE);
	js->done_max = Max(js->done_max, my_last);
	js->slot[my_index()] = NO_SLOT;
	LWLockRelease(js->lock);
	my_first = my_last = NO_SLOT;
}

int64
tg_journal_horizon(void)
{
	int64		h;
	int			i;

	ensure_loaded();
	LWLockAcquire(js->lock, LW_SHARED);
	h = js->done_max;
	for (i = 0; i < js->nslots; i++)
		if (js->slot[i] != NO_SLOT && js->slot[i] - 1 < h)
			h = js->slot[i] - 1;
	LWLockRelease(js->lock);
	return h;
}

/*
 * topgun.journal_horizon(): the largest sequence number a reader may rely
 * on; -1 before the first event.  The read must take its snapshot after
 * this call, so it refuses to run under a transaction snapshot.
 */
Datum
tg_journal_horizon_sql(PG_FUNCTION_ARGS)
{
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("the journal horizon needs READ COMMITTED isolation"),
				 errdetail("A snapshot taken before the horizon could miss events that commit later with smaller sequence numbers.")));
	PG_RETURN_INT64(tg_journal_horizon());
}
