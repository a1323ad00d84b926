/*
 * session.c — the session executor's main loop and its view of the
 * connections (docs/worker.md, "Processes").
 *
 * Every connection of the socket process has a mirror here (TG_REC_OPEN /
 * TG_REC_CLOSED).  Complete client messages arrive as TG_REC_FRAME records
 * and go through tg_proto_process() exactly as they arrive; what a handler
 * sends becomes a TG_REC_SEND record for the socket process.  Reads go to
 * the reader executors (readers.c): while one is out, the connection's
 * later messages wait, so every connection is answered in order.
 */
#include "postgres.h"

#include <signal.h>
#include <time.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "exec/readers.h"
#include "exec/session.h"
#include "ipc/ipc.h"
#include "worker/worker.h"
#include "exec/exec.h"
#include "exec/search_live.h"
#include "exec/gc.h"
#include "exec/index_build.h"
#include "exec/journal_live.h"
#include "exec/ratelimit_session.h"
#include "metrics/metrics.h"

static volatile sig_atomic_t got_sigterm = false;
static volatile sig_atomic_t got_sighup = false;
static volatile sig_atomic_t got_feed_wake = false;

static TgIpcHeader *hdr = NULL;
static shm_mq_handle *q_in = NULL;
static shm_mq_handle *q_out = NULL;
static TgIpcBuf outbuf;
static int	metrics_slot = -1;	/* "session" in the metrics */
static int64 last_ready_check_ms = 0;
static Oid	served_ext_oid = InvalidOid;

#define TG_GATHER_MAX_MESSAGES	4096


/* ------------------------------------------------------ mirrors */

static void
conn_open(uint64 id, const char *remote, size_t len)
{
	TgConn	   *c = calloc(1, sizeof(TgConn));

	if (c == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	c->id = id;
	c->slot = -1;
	c->connected_ms = c->last_ping_ms = c->last_rx_ms = tg_mono_ms();
	c->last_active_ms = tg_now_ms();
	memcpy(c->remote, remote, Min(len, sizeof(c->remote) - 1));
	c->next = tg_conns;
	if (tg_conns)
		tg_conns->prev = c;
	tg_conns = c;
	tg_conn_register(c);
}

static void
conn_free(TgConn *c)
{
	TgInMsg    *m = c->deferred_head;

	tg_conn_unregister(c);
	if (c->prev)
		c->prev->next = c->next;
	else
		tg_conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	while (m)
	{
		TgInMsg    *n = m->next;

		free(m->data);
		free(m);
		m = n;
	}
	tg_readers_conn_gone(c);
	tg_locks_conn_gone(c);
	tg_search_conn_gone(c);
	tg_journal_conn_gone(c);
	tg_proto_conn_gone(c);
	tg_live_conn_gone(c);
	tg_rate_conn_gone(c);
	for (int i = 0; i < c->nroles; i++)
		free(c->roles[i]);
	tg_watches_free_conn(c);
	free(c);
}

/* ------------------------------------------------------ readiness */

/* pg_extension.extversion of an installed extension, in *version (NAMEDATALEN) */
static void
read_extension_version(Oid oid, char *version)
{
	Relation	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;

	version[0] = '\0';
	ScanKeyInit(&key, Anum_pg_extension_oid, BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(oid));
	scan = systable_beginscan(rel, ExtensionOidIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		bool		isnull;
		Datum		d = heap_getattr(tup, Anum_pg_extension_extversion, RelationGetDescr(rel), &isnull);

		if (!isnull)
			strlcpy(version, text_to_cstring(DatumGetTextPP(d)), NAMEDATALEN);
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
}

/*
 * OID of the extension in our database, or InvalidOid when it is missing,
 * being created or updated, or recovery is still in progress.  *version gets
 * its installed version ("" if unknown).  Own short transaction.
 */
static Oid
check_extension_oid(char *version)
{
	Oid			oid = InvalidOid;
	MemoryContext oldcxt = CurrentMemoryContext;

	version[0] = '\0';
	if (RecoveryInProgress())
		return InvalidOid;
	PG_TRY();
	{
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		oid = get_extension_oid("topgun", true);
		if (creating_extension)
			oid = InvalidOid;
		if (OidIsValid(oid))
			read_extension_version(oid, version);
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcxt);
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
		oid = InvalidOid;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(oldcxt);
	return oid;
}

static void
set_ready(bool ready)
{
	if (ready == tg_ready)
		return;
	tg_ready = ready;
	tg_live_ready(ready);
	if (!ready)
	{
		tg_plans_reset();
		tg_acl_invalidate();
	}
	pg_atomic_write_u32(&tg_worker_shared->ready, ready ? 1 : 0);
	ereport(LOG,
			(errmsg(ready ? "topgun sync server ready: extension found in database \"%s\""
					: "topgun sync server not ready: extension missing, or not at the library's version, in database \"%s\"",
					tg_database)));
}

static void flush_out(void);

static void
check_ready(void)
{
	Oid			oid;
	char		version[NAMEDATALEN];
	static char warned_version[NAMEDATALEN] = "";
	bool		version_ok;
	int64		now = tg_mono_ms();

	if (now - last_ready_check_ms < 1000 && !tg_ready_check_wanted)
		return;
	tg_ready_check_wanted = false;
	last_ready_check_ms = now;
	oid = check_extension_oid(version);
	if (OidIsValid(oid) && OidIsValid(served_ext_oid) && oid != served_ext_oid)
	{
		/*
		 * The extension was dropped and created again.  Cached plans (ours
		 * and the SQL core's) may hold OIDs of the old objects, e.g. the old
		 * hlc type as a parameter type: every process starts afresh.
		 */
		TgRecClose	rc;

		memset(&rc, 0, sizeof(rc));
		rc.code = 1012;
		strlcpy(rc.reason, "Service Restart", sizeof(rc.reason));
		tg_ipc_put(&outbuf, TG_REC_RESTART, 0, &rc, sizeof(rc));
		flush_out();
		tg_readers_stop();
		proc_exit(0);
	}
	if (OidIsValid(oid))
		served_ext_oid = oid;

	/*
	 * A database still at an older version of the extension has the older
	 * storage layout, which this library cannot write: serve nothing
	 * (clients get the retryable 1013) until ALTER EXTENSION topgun UPDATE
	 * has run.  Said once per change, not every second.
	 */
	version_ok = !OidIsValid(oid) || strcmp(version, TG_EXTVERSION) == 0;
	if (OidIsValid(oid) && !version_ok && strcmp(version, warned_version) != 0)
		ereport(WARNING,
				(errmsg("topgun sync server not serving: extension \"topgun\" is at version %s in database \"%s\", the library is version %s",
						version, tg_database, TG_EXTVERSION),
				 errhint("Run ALTER EXTENSION topgun UPDATE in that database.")));
	strlcpy(warned_version, version_ok ? "" : version, sizeof(warned_version));
	set_ready(OidIsValid(oid) && version_ok);
	if (OidIsValid(oid) && version_ok)
		tg_mesh_advertise();	/* once, and again when the URL changes */
	tg_metrics_set_health(!OidIsValid(oid) ?
						  (RecoveryInProgress() ? TG_HEALTH_NOT_READY : TG_HEALTH_EXTENSION_MISSING) :
						  version_ok ? TG_HEALTH_READY : TG_HEALTH_EXTENSION_OUTDATED,
						  version);
}

/* ------------------------------------------------------ queues */

/* Hand everything gathered to the socket process; waits only for room. */
static void
flush_out(void)
{
	if (outbuf.failed)
		ereport(FATAL, (errmsg("topgun: out of memory in the session executor's output")));
	if (outbuf.len == 0)
		return;
	for (;;)
	{
		shm_mq_result r = tg_ipc_send_nowait(q_out, outbuf.data, outbuf.len);

		if (r == SHM_MQ_SUCCESS)
			break;
		if (r == SHM_MQ_DETACHED)
			proc_exit(0);		/* the socket process is gone */
		tg_ipc_wake_socket(hdr);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 10,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		if (got_sigterm)
			proc_exit(0);
	}
	tg_ipc_buf_reset(&outbuf);
	tg_ipc_wake_socket(hdr);
}

/* Read what the socket process sent: returns the client messages, in order. */
static TgInMsg *
drain_in(bool *any)
{
	TgInMsg    *head = NULL,
			   *tail = NULL;

	for (int i = 0; i < 64; i++)
	{
		Size		n;
		void	   *d;
		shm_mq_result r = shm_mq_receive(q_in, &n, &d, true);
		TgRecIter	it;
		TgRec		rec;
		const char *p;

		if (r == SHM_MQ_WOULD_BLOCK)
			break;
		if (r == SHM_MQ_DETACHED)
		{
			tg_readers_stop();
			proc_exit(0);		/* the socket process is gone */
		}
		*any = true;
		tg_rec_iter_init(&it, d, n);
		while (tg_rec_next(&it, &rec, &p))
		{
			TgConn	   *c;
			TgInMsg    *m;

			switch (rec.kind)
			{
				case TG_REC_OPEN:
					conn_open(rec.conn, p, rec.len);
					break;
				case TG_REC_CLOSED:
					c = tg_conn_find(rec.conn);
					if (c)
						c->closed = true;
					break;
				case TG_REC_FRAME:
					c = tg_conn_find(rec.conn);
					if (c == NULL || c->closed)
						break;
					m = malloc(sizeof(TgInMsg));
					if (m == NULL || (m->data = malloc(Max(rec.len, 1))) == NULL)
						ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
					memcpy(m->data, p, rec.len);
					m->len = rec.len;
					m->rx_us = tg_metrics_now_us();
					m->conn = c;
					m->next = NULL;
					c->msgs_in++;
					if (tail)
						tail->next = m;
					else
						head = m;
					tail = m;
					break;
				default:
					break;
			}
		}
	}
	if (pg_atomic_exchange_u32(&hdr->sp_blocked, 0) != 0)
		tg_ipc_wake_socket(hdr);	/* room again on "in" */
	return head;
}

static uint64
mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64) ts.tv_sec * 1000000 + (uint64) ts.tv_nsec / 1000;
}

/*
 * Group-commit gathering.  While a group commits (a WAL flush), the socket
 * process keeps queueing, so under load the next drain already holds many
 * senders' messages.  The clients acked at the end of a group answer a
 * moment later, though: while this drain has fewer senders than the last
 * group had, wait for them -- at most a quarter of the last group's
 * processing time and topgun.group_commit_delay, and only while input keeps
 * coming (bounded in messages too).  A lone client waits (almost) nothing.
 */
static uint64 last_process_us = 0;
static int	last_senders = 0;
static uint64 gather_epoch = 1;

static TgInMsg *
gather_more(TgInMsg *list)
{
	uint64		window = Min(last_process_us / 4, (uint64) tg_group_commit_delay_us);
	uint64		deadline = mono_us() + window;
	int			senders = 0;
	int			nmsgs = 0;
	TgInMsg    *tail = NULL;

	gather_epoch++;
	for (TgInMsg *m = list; m; m = m->next)
	{
		if (m->conn->gather_epoch != gather_epoch)
		{
			m->conn->gather_epoch = gather_epoch;
			senders++;
		}
		nmsgs++;
		tail = m;
	}
	while (senders < last_senders && nmsgs < TG_GATHER_MAX_MESSAGES && mono_us() < deadline &&
		   !got_sigterm)
	{
		bool		any = false;
		TgInMsg    *more;

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Max(1, (long) ((deadline - Min(deadline, mono_us())) / 1000)),
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		more = drain_in(&any);
		if (more == NULL)
			continue;
		tail->next = more;
		for (TgInMsg *m = more; m; m = m->next)
		{
			if (m->conn->gather_epoch != gather_epoch)
			{
				m->conn->gather_epoch = gather_epoch;
				senders++;
			}
			nmsgs++;
			tail = m;
		}
	}
	last_senders = senders;
	return list;
}

/* Messages that waited behind a read whose answer has come. */
static TgInMsg *
take_deferred(void)
{
	TgInMsg    *head = NULL,
			   *tail = NULL;
	uint64		held = 0;

	for (TgConn *c = tg_conns; c; c = c->next)
	{
		if (c->busy)
			for (TgInMsg *m = c->deferred_head; m; m = m->next)
				held++;
		if (c->busy || c->deferred_head == NULL)
			continue;
		if (tail)
			tail->next = c->deferred_head;
		else
			head = c->deferred_head;
		tail = c->deferred_tail;
		c->deferred_head = c->deferred_tail = NULL;
	}
	pg_atomic_write_u64(&tg_exec_slot(0)->queued, held + (uint64) tg_readers_in_flight());
	tg_metrics_executor_set(metrics_slot, held + (uint64) tg_readers_in_flight());
	return head;
}

static void
report_and_reap(void)
{
	TgConn	   *c = tg_conns;

	while (c)
	{
		TgConn	   *n = c->next;

		if (c->closed)
			conn_free(c);
		else
		{
			if (c->slot_dirty)
				tg_conn_update_slot(c);
			if (c->done_dirty)
			{
				tg_ipc_put(&outbuf, TG_REC_DONE, c->id, &c->frames_handled, sizeof(uint64));
				c->done_dirty = false;
			}
		}
		c = n;
	}
}

/* ------------------------------------------------------ main */

static void
session_exit_cb(int code, Datum arg)
{
	TgExecSlot *x = tg_exec_slot(0);

	/* "ready" is cleared by the socket process when it sees us gone (1012) */
	if (x)
		pg_atomic_write_u32(&x->pid, 0);
}

static void
session_sigterm(SIGNAL_ARGS)
{
	int			save_errno = errno;

	got_sigterm = true;
	SetLatch(MyLatch);
	errno = save_errno;
}

static void
session_sighup(SIGNAL_ARGS)
{
	int			save_errno = errno;

	got_sighup = true;
	SetLatch(MyLatch);
	errno = save_errno;
}

static void
session_sigusr2(SIGNAL_ARGS)
{
	int			save_errno = errno;

	got_feed_wake = true;
	SetLatch(MyLatch);
	errno = save_errno;
}

/* One iteration of the session executor's loop; true if it did anything. */
static bool
iterate(MemoryContext loop_cxt)
{
	bool		any = false;
	bool		woken;
	TgInMsg    *list;
	MemoryContext old;

	if (got_sighup)
	{
		got_sighup = false;
		ProcessConfigFile(PGC_SIGHUP);
		tg_auth_configure(false);
		tg_mesh_advertise();	/* topgun.advertise_url may have changed */
		pg_atomic_fetch_add_u64(&tg_exec_slot(0)->reloads, 1);
	}
	old = MemoryContextSwitchTo(loop_cxt);
	check_ready();

	list = drain_in(&any);
	if (list)
		list = gather_more(list);
	pg_atomic_write_u32(&tg_exec_slot(0)->busy, 1);
	if (list)
	{
		uint64		t0 = mono_us();

		pgstat_report_activity(STATE_RUNNING, "topgun: processing messages");
		tg_proto_process(list);
		last_process_us = mono_us() - t0;
	}
	for (int round = 0; round < 8; round++)
	{
		int			before = tg_readers_in_flight();

		tg_readers_poll();
		list = take_deferred();
		if (list)
		{
			any = true;
			tg_proto_process(list);
		}
		else if (before == tg_readers_in_flight())
			break;
		else
			any = true;
	}
	woken = got_feed_wake;
	got_feed_wake = false;
	tg_live_poll(woken || any);
	tg_query_run_pending();
	tg_search_run_pending();
	tg_journal_tick();
	tg_gc_tick();
	tg_locks_tick();
	report_and_reap();
	flush_out();
	pgstat_report_activity(STATE_IDLE, NULL);
	pg_atomic_write_u32(&tg_exec_slot(0)->busy, 0);
	MemoryContextSwitchTo(old);
	MemoryContextReset(loop_cxt);
	return any;
}

void
tg_session_main(Datum arg)
{
	dsm_segment *seg;
	MemoryContext loop_cxt;
	TimestampTz last_resume;

	tg_role = TG_ROLE_SESSION;
	tg_exec_out = &outbuf;
	tg_exec_send_kind = TG_REC_SEND;
	pqsignal(SIGTERM, session_sigterm);
	pqsignal(SIGHUP, session_sighup);
	pqsignal(SIGUSR2, session_sigusr2);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(tg_database, NULL, 0);
	pgstat_report_appname("topgun session executor");
	/* acks are sent only for durable commits */
	SetConfigOption("synchronous_commit", "on", PGC_SUSET, PGC_S_OVERRIDE);
	/* resolvers of client writes run in the group commit, not again in a trigger */
	SetConfigOption("topgun.sql_write_resolvers", "off", PGC_SUSET, PGC_S_OVERRIDE);

	seg = dsm_attach(DatumGetUInt32(arg));
	if (seg == NULL)
		proc_exit(0);			/* the socket process already gave up on it */
	dsm_pin_mapping(seg);
	hdr = tg_ipc_attach(seg);
	pg_atomic_write_u32(&hdr->session_pid, (uint32) MyProcPid);
	shm_mq_set_receiver(tg_ipc_queue(seg, TG_Q_IN), MyProc);
	shm_mq_set_sender(tg_ipc_queue(seg, TG_Q_OUT), MyProc);
	q_in = shm_mq_attach(tg_ipc_queue(seg, TG_Q_IN), seg, NULL);
	q_out = shm_mq_attach(tg_ipc_queue(seg, TG_Q_OUT), seg, NULL);


	/* reloads count on from the socket process's: "reloads" is the lower of the two */
	pg_atomic_write_u64(&tg_exec_slot(0)->reloads,
						pg_atomic_read_u64(&tg_worker_shared->stats[TG_STAT_RELOADS]));
	pg_atomic_write_u32(&tg_exec_slot(0)->pid, (uint32) MyProcPid);
	/* a new generation starts without subscriptions */
	pg_atomic_write_u64(&tg_worker_shared->stats[TG_STAT_QUERY_SUBS], 0);
	pg_atomic_write_u64(&tg_worker_shared->stats[TG_STAT_QUERY_SUB_BYTES], 0);
	on_shmem_exit(session_exit_cb, (Datum) 0);
	metrics_slot = tg_metrics_executor_register("session");
	tg_metrics_executor_set(metrics_slot, 0);
	tg_auth_configure(true);
	tg_readers_start(seg, hdr);
	tg_index_resume();			/* field index builds a restart interrupted */
	last_resume = GetCurrentTimestamp();
	loop_cxt = AllocSetContextCreate(TopMemoryContext, "topgun session loop",
									 ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		bool		any = false;

		ResetLatch(MyLatch);
		QueryCancelPending = false;
		CHECK_FOR_INTERRUPTS();
		if (got_sigterm)
			break;

		/*
		 * An ERROR escaping one iteration (out of memory in a fan-out, a
		 * bug) must not end every session: clean up, log, carry on.  Per
		 * message errors are caught closer to the message.
		 */
		PG_TRY();
		{
			any = iterate(loop_cxt);
		}
		PG_CATCH();
		{
			MemoryContextSwitchTo(loop_cxt);
			EmitErrorReport();
			FlushErrorState();
			if (IsTransactionOrTransactionBlock())
				AbortCurrentTransaction();
			SPI_finish();
			MemoryContextSwitchTo(TopMemoryContext);
			MemoryContextReset(loop_cxt);
			tg_ipc_buf_reset(&outbuf);
			pg_atomic_write_u32(&tg_exec_slot(0)->busy, 0);
			any = true;
		}
		PG_END_TRY();
		if (!any && !IsTransactionOrTransactionBlock() &&
			TimestampDifferenceExceeds(last_resume, GetCurrentTimestamp(), 60 * 1000))
		{
			/* a builder that could not be started at its commit (no free worker slot) */
			tg_index_resume();
			last_resume = GetCurrentTimestamp();
		}
		if (!any)
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 250,
							 PG_WAIT_EXTENSION);
	}
	tg_readers_stop();
	proc_exit(0);
}
