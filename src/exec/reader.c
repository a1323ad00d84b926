/*
 * reader.c — a reader executor: answers the session executor's read
 * requests (Merkle roots and buckets, OR-map diffs, query pages), each in a
 * short read-only transaction of its own, so big reads run next to the
 * writes and next to each other.  The reply is a list of records: the
 * messages for the client (TG_REP_FRAME), rows (TG_REP_ROWS), or one
 * TG_REP_ERROR when the request failed (the transaction is aborted and the
 * reader carries on).
 */
#include "postgres.h"

#include <signal.h>
#include <sys/resource.h>

#include "access/xact.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "exec/session.h"
#include "exec/reads.h"
#include "ipc/ipc.h"
#include "worker/worker.h"
#include "exec/exec.h"


#define TG_READER_NICE 10

static volatile sig_atomic_t got_sigterm = false;
static volatile sig_atomic_t got_sighup = false;

static void
reader_sighup(SIGNAL_ARGS)
{
	int			save_errno = errno;

	got_sighup = true;
	SetLatch(MyLatch);
	errno = save_errno;
}
static int	reader_index = 0;

static void
reader_exit_cb(int code, Datum arg)
{
	TgExecSlot *x = tg_exec_slot(1 + reader_index);

	if (x)
		pg_atomic_write_u32(&x->pid, 0);
}

static void
reader_sigterm(SIGNAL_ARGS)
{
	int			save_errno = errno;

	got_sigterm = true;
	SetLatch(MyLatch);
	errno = save_errno;
}

static void check_reply(const TgRec *rec, TgIpcBuf *out);

/* Run one request; its reply goes to *out. */
static void
serve(const TgRec *rec, const char *payload, TgIpcBuf *out, MemoryContext cxt)
{
	TgConn		dummy;
	TgIpcBuf   *saved = tg_exec_out;

	memset(&dummy, 0, sizeof(dummy));
	dummy.id = rec->conn;		/* the request id: every reply record carries it */
	dummy.slot = -1;
	tg_exec_out = out;			/* replies go to *out */
	PG_TRY();
	{
		tg_txn_begin();
		tg_reads_serve(&dummy, (TgRecKind) rec->kind, payload, rec->len);
		tg_txn_end();
	}
	PG_CATCH();
	{
		ErrorData  *e = tg_txn_recover();
		TgRecError	err;
		bool		client_fault;

		/* bad data from the client (values, limits, map kind) is a 400 */
		client_fault = ERRCODE_TO_CATEGORY(e->sqlerrcode) == ERRCODE_DATA_EXCEPTION ||
			e->sqlerrcode == ERRCODE_WRONG_OBJECT_TYPE ||
			e->sqlerrcode == ERRCODE_PROGRAM_LIMIT_EXCEEDED;
		if (!client_fault)
			ereport(LOG, (errmsg("topgun: read request failed: %s", e->message)));
		memset(&err, 0, sizeof(err));
		err.code = client_fault ? 400 : 500;
		strlcpy(err.message, e->message, sizeof(err.message));
		tg_ipc_buf_reset(out);
		tg_ipc_put(out, TG_REP_ERROR, rec->conn, &err, sizeof(err));
		pg_atomic_fetch_add_u64(&tg_exec_slot(1 + reader_index)->errors, 1);
		if (e->sqlerrcode == ERRCODE_UNDEFINED_FUNCTION ||
			e->sqlerrcode == ERRCODE_UNDEFINED_TABLE ||
			e->sqlerrcode == ERRCODE_INVALID_SCHEMA_NAME ||
			e->sqlerrcode == ERRCODE_UNDEFINED_OBJECT)
			tg_plans_reset();
	}
	PG_END_TRY();
	tg_exec_out = saved;
	MemoryContextSwitchTo(cxt);
	check_reply(rec, out);
}

/* A request must get a reply: an empty or failed one becomes an error. */
static void
check_reply(const TgRec *rec, TgIpcBuf *out)
{
	if (out->len == 0 || out->failed)
	{
		TgRecError	err;

		memset(&err, 0, sizeof(err));
		err.code = 500;
		strlcpy(err.message, out->failed ? "Server out of memory" : "Empty reply", sizeof(err.message));
		tg_ipc_buf_reset(out);
		tg_ipc_put(out, TG_REP_ERROR, rec->conn, &err, sizeof(err));
	}
}

/*
 * Single-key entry processors: gather the ones already queued (up to
 * BATCH_MAX) and run them in one transaction (reader_batch.c); the first
 * other request met is kept in *held for the next round.  The replies go
 * out after the commit, one queue message each.  False: the queue is gone.
 */
#define BATCH_MAX 128

static const char *
copy_bytes(const char *p, size_t len)
{
	char	   *c = palloc(Max(len, 1));

	memcpy(c, p, len);
	return c;
}

static bool
serve_processors(shm_mq_handle *req, shm_mq_handle *rep, const TgRec *first, const char *first_p,
				 char **held, Size *held_len, MemoryContext cxt)
{
	TgRec		recs[BATCH_MAX];
	const char *payloads[BATCH_MAX];
	TgIpcBuf	outs[BATCH_MAX];
	char	   *next_held = NULL;
	Size		next_len = 0;
	int			n = 0;
	bool		alive = true;

	recs[0] = *first;
	payloads[0] = copy_bytes(first_p, first->len);
	n = 1;
	free(*held);				/* first came from it: copied above */
	*held = NULL;
	while (n < BATCH_MAX)
	{
		Size		len;
		void	   *d;
		TgRecIter	it;
		shm_mq_result r = shm_mq_receive(req, &len, &d, true);

		if (r == SHM_MQ_DETACHED)
			alive = false;
		if (r != SHM_MQ_SUCCESS)
			break;
		tg_rec_iter_init(&it, d, len);
		if (tg_rec_next(&it, &recs[n], &payloads[n]) && recs[n].kind == TG_REQ_PROCESS)
		{
			payloads[n] = copy_bytes(payloads[n], recs[n].len);
			n++;
			continue;
		}
		next_held = malloc(len);	/* another kind: served next, in order */
		if (next_held == NULL)
			ereport(FATAL, (errmsg("topgun: out of memory in a reader executor")));
		memcpy(next_held, d, len);
		next_len = len;
		break;
	}
	*held = next_held;
	*held_len = next_len;
	pgstat_report_activity(STATE_RUNNING, "topgun: entry processors");
	memset(outs, 0, sizeof(TgIpcBuf) * n);
	if (n == 1 || !tg_reader_serve_batch(recs, payloads, outs, n))
		for (int i = 0; i < n; i++)
			serve(&recs[i], payloads[i], &outs[i], cxt);
	else
	{
		for (int i = 0; i < n; i++)
			check_reply(&recs[i], &outs[i]);
		tg_stat_add(TG_STAT_PROCESSOR_BATCHES, 1);
		tg_stat_add(TG_STAT_PROCESSORS_BATCHED, (uint64) n);
	}
	pg_atomic_fetch_add_u64(&tg_exec_slot(1 + reader_index)->requests, (uint64) n);
	for (int i = 0; i < n; i++)
	{
		if (alive && shm_mq_send(rep, outs[i].len, outs[i].data, false, true) != SHM_MQ_SUCCESS)
			alive = false;
		tg_ipc_buf_free(&outs[i]);
	}
	return alive;
}

void
tg_reader_main(Datum arg)
{
	dsm_segment *seg;
	TgIpcHeader *hdr;
	int			index;
	shm_mq_handle *req;
	shm_mq_handle *rep;
	TgIpcBuf	out = {0};
	MemoryContext cxt;
	char	   *held = NULL;	/* malloc'd queue message received while gathering a batch */
	Size		held_len = 0;

	tg_role = TG_ROLE_READER;
	memcpy(&index, MyBgworkerEntry->bgw_extra, sizeof(int));

	/*
	 * Reads are throughput work; acks and PINGs are latency work.  On a
	 * small machine a long scan must not take the CPU the session executor
	 * and the socket process need: readers run at a lower priority (a
	 * process may always raise its own niceness).
	 */
	if (setpriority(PRIO_PROCESS, 0, TG_READER_NICE) != 0)
		ereport(LOG, (errmsg("topgun: could not lower the reader executor's priority: %m")));
	pqsignal(SIGTERM, reader_sigterm);
	pqsignal(SIGHUP, reader_sighup);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(tg_database, NULL, 0);
	pgstat_report_appname("topgun reader executor");

	seg = dsm_attach(DatumGetUInt32(arg));
	if (seg == NULL)
		proc_exit(0);
	dsm_pin_mapping(seg);
	hdr = tg_ipc_attach(seg);
	if (index < 0 || index >= hdr->nreaders || index + 1 >= TG_MAX_EXECUTORS)
		proc_exit(0);
	reader_index = index;
	pg_atomic_write_u64(&tg_exec_slot(1 + index)->reloads,
						pg_atomic_read_u64(&tg_worker_shared->stats[TG_STAT_RELOADS]));
	pg_atomic_write_u32(&tg_exec_slot(1 + index)->pid, (uint32) MyProcPid);
	on_shmem_exit(reader_exit_cb, (Datum) 0);
	shm_mq_set_receiver(tg_ipc_queue(seg, TG_Q_RREQ_BASE + 2 * index), MyProc);
	shm_mq_set_sender(tg_ipc_queue(seg, TG_Q_RREP_BASE + 2 * index), MyProc);
	req = shm_mq_attach(tg_ipc_queue(seg, TG_Q_RREQ_BASE + 2 * index), seg, NULL);
	rep = shm_mq_attach(tg_ipc_queue(seg, TG_Q_RREP_BASE + 2 * index), seg, NULL);

	tg_exec_out = &out;
	tg_exec_send_kind = TG_REP_FRAME;
	cxt = AllocSetContextCreate(TopMemoryContext, "topgun reader", ALLOCSET_DEFAULT_SIZES);
	while (!got_sigterm)
	{
		Size		n;
		void	   *d;
		shm_mq_result r;
		TgRecIter	it;
		TgRec		rec;
		const char *p;
		MemoryContext old;

		ResetLatch(MyLatch);
		QueryCancelPending = false;
		CHECK_FOR_INTERRUPTS();
		if (got_sighup)
		{
			/* the settings the SQL it runs reads (gc_horizon, search caps ...) */
			got_sighup = false;
			ProcessConfigFile(PGC_SIGHUP);
			pg_atomic_fetch_add_u64(&tg_exec_slot(1 + index)->reloads, 1);
		}
		if (held)
		{
			/* the request that ended the last batch */
			d = held;
			n = held_len;
			r = SHM_MQ_SUCCESS;
		}
		else
			r = shm_mq_receive(req, &n, &d, true);
		if (r == SHM_MQ_DETACHED)
			break;				/* the session executor is gone */
		if (r == SHM_MQ_WOULD_BLOCK)
		{
			/* idle: flush this process's table and index statistics (rate-limited) */
			pgstat_report_stat(false);
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 1000,
							 PG_WAIT_EXTENSION);
			continue;
		}
		tg_rec_iter_init(&it, d, n);
		if (!tg_rec_next(&it, &rec, &p))
		{
			free(held);
			held = NULL;
			continue;
		}
		old = MemoryContextSwitchTo(cxt);
		tg_proto_enter(cxt);
		pg_atomic_write_u32(&tg_exec_slot(1 + index)->busy, 1);
		if (rec.kind == TG_REQ_PROCESS)
		{
			if (!serve_processors(req, rep, &rec, p, &held, &held_len, cxt))
				break;
		}
		else
		{
			pgstat_report_activity(STATE_RUNNING, "topgun: read request");
			tg_ipc_buf_reset(&out);
			serve(&rec, p, &out, cxt);
			free(held);
			held = NULL;
			pg_atomic_fetch_add_u64(&tg_exec_slot(1 + index)->requests, 1);
			if (shm_mq_send(rep, out.len, out.data, false, true) != SHM_MQ_SUCCESS)
				break;
		}
		pg_atomic_write_u32(&tg_exec_slot(1 + index)->busy, 0);
		pgstat_report_activity(STATE_IDLE, NULL);
		MemoryContextSwitchTo(old);
		MemoryContextReset(cxt);
	}
	proc_exit(0);
}
