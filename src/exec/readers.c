/*
 * readers.c — the session executor's pool of reader executors.
 *
 * Each reader is a dynamic background worker with a request queue and a
 * reply queue in the generation's DSM segment.  A reader answers its
 * requests in order, so the reply always belongs to the oldest request
 * still out at that reader.  A request goes to the reader with the fewest
 * requests out; sends never block (a request that does not fit yet waits in
 * the reader's list).  A reader that dies has its requests answered with an
 * error and is started again.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "storage/proc.h"
#include "utils/memutils.h"

#include "exec/readers.h"
#include "exec/session.h"
#include "exec/exec.h"
#include "metrics/metrics.h"

typedef struct Req
{
	struct Req *next;
	uint64		id;
	TgConn	   *conn;
	bool		holds;
	TgReadDone	done;
	void	   *arg;
	char	   *msg;			/* the request message until it is on the queue */
	size_t		len;
} Req;

typedef struct Reader
{
	shm_mq_handle *req;
	shm_mq_handle *rep;
	BackgroundWorkerHandle *handle;
	Req		   *head;			/* out at the reader, oldest first */
	Req		   *tail;
	Req		   *unsent;			/* first request not yet on the queue */
	int			nout;
	bool		up;
	int64		restart_at;
} Reader;

static dsm_segment *rseg = NULL;
static int	nreaders = 0;
static Reader readers[TG_MAX_READERS];
static int	metrics_slot[TG_MAX_READERS];	/* reader-N in the metrics */
static uint64 next_req_id = 1;
static int	in_flight = 0;

static void
start_reader(int i)
{
	BackgroundWorker w;
	Reader	   *r = &readers[i];
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

	memset(&w, 0, sizeof(w));
	w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	w.bgw_start_time = BgWorkerStart_ConsistentState;
	w.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(w.bgw_library_name, BGW_MAXLEN, "topgun");
	snprintf(w.bgw_function_name, BGW_MAXLEN, "tg_reader_main");
	snprintf(w.bgw_name, BGW_MAXLEN, "topgun reader executor %d", i + 1);
	snprintf(w.bgw_type, BGW_MAXLEN, "topgun executor");
	w.bgw_main_arg = UInt32GetDatum(dsm_segment_handle(rseg));
	memcpy(w.bgw_extra, &i, sizeof(int));
	w.bgw_notify_pid = MyProcPid;
	if (!RegisterDynamicBackgroundWorker(&w, &r->handle))
	{
		ereport(WARNING,
				(errmsg("topgun: could not start reader executor %d (max_worker_processes too low?); retrying", i + 1)));
		r->handle = NULL;
		r->up = false;
		r->restart_at = tg_mono_ms() + 1000;
		MemoryContextSwitchTo(old);
		return;
	}
	shm_mq_set_sender(tg_ipc_queue(rseg, TG_Q_RREQ_BASE + 2 * i), MyProc);
	shm_mq_set_receiver(tg_ipc_queue(rseg, TG_Q_RREP_BASE + 2 * i), MyProc);
	r->req = shm_mq_attach(tg_ipc_queue(rseg, TG_Q_RREQ_BASE + 2 * i), rseg, r->handle);
	r->rep = shm_mq_attach(tg_ipc_queue(rseg, TG_Q_RREP_BASE + 2 * i), rseg, r->handle);
	r->up = true;
	MemoryContextSwitchTo(old);
}

void
tg_readers_start(dsm_segment *seg, TgIpcHeader *hdr)
{
	rseg = seg;
	nreaders = hdr->nreaders;
	memset(readers, 0, sizeof(readers));
	for (int i = 0; i < nreaders; i++)
	{
		char		name[32];

		snprintf(name, sizeof(name), "reader-%d", i + 1);
		metrics_slot[i] = tg_metrics_executor_register(name);
		tg_metrics_executor_set(metrics_slot[i], 0);
		start_reader(i);
	}
}

void
tg_readers_stop(void)
{
	for (int i = 0; i < nreaders; i++)
		if (readers[i].handle)
			TerminateBackgroundWorker(readers[i].handle);
}

int
tg_readers_in_flight(void)
{
	return in_flight;
}

static void
finish(Req *q, const char *msg, Size len, const TgRecError *err)
{
	TgConn	   *c = q->conn;

	in_flight--;
	TG_ASSERT(in_flight >= 0);
	TG_ASSERT(!q->holds || c == NULL || c->busy);
	if (c && q->holds)
	{
		c->busy = false;
		tg_conn_handled(c, 1);
	}
	if (q->done)
		q->done(c, q->arg, msg, len, err);
	free(q->msg);
	free(q);
}

/* The reader is gone: answer everything it had, then start a new one. */
static void
reader_died(int i)
{
	Reader	   *r = &readers[i];
	TgRecError	err;
	Req		   *q = r->head;

	ereport(LOG, (errmsg("topgun: reader executor %d exited; its %d requests are answered with an error",
						 i + 1, r->nout)));
	memset(&err, 0, sizeof(err));
	err.code = 503;
	strlcpy(err.message, "Server executor restarted; retry", sizeof(err.message));
	r->head = r->tail = r->unsent = NULL;
	r->nout = 0;
	while (q)
	{
		Req		   *n = q->next;

		finish(q, NULL, 0, &err);
		q = n;
	}
	if (r->req)
		shm_mq_detach(r->req);
	if (r->rep)
		shm_mq_detach(r->rep);
	r->req = r->rep = NULL;
	r->up = false;
	r->restart_at = tg_mono_ms() + 100;
	pg_atomic_fetch_add_u64(&tg_exec_slot(1 + i)->restarts, 1);
	pg_atomic_write_u64(&tg_exec_slot(1 + i)->queued, 0);
	tg_metrics_executor_set(metrics_slot[i], 0);
}

static void
push_unsent(Reader *r)
{
	while (r->unsent && r->req)
	{
		Req		   *q = r->unsent;
		shm_mq_result res = tg_ipc_send_nowait(r->req, q->msg, q->len);

		if (res == SHM_MQ_WOULD_BLOCK)
			return;
		if (res == SHM_MQ_DETACHED)
			return;				/* noticed by the poll */
		free(q->msg);
		q->msg = NULL;
		r->unsent = q->next;
	}
}

static void
submit(TgConn *c, bool holds_conn, int pin, TgRecKind kind, const void *payload, size_t len,
	   TgReadDone done, void *arg)
{
	Req		   *q = calloc(1, sizeof(Req));
	TgIpcBuf	b = {0};
	int			best = -1;

	if (pin >= 0 && pin < nreaders && readers[pin].up)
		best = pin;
	else
		for (int i = 0; i < nreaders; i++)
			if (readers[i].up && (best < 0 || readers[i].nout < readers[best].nout))
				best = i;
	if (q)
		tg_ipc_put(&b, kind, next_req_id, payload, len);
	if (q == NULL || b.failed || best < 0)
	{
		TgRecError	err;

		free(q);
		tg_ipc_buf_free(&b);
		memset(&err, 0, sizeof(err));
		err.code = best < 0 ? 503 : 500;
		strlcpy(err.message, best < 0 ? "Server busy: no reader executor running; retry"
				: "Server out of memory", sizeof(err.message));
		if (holds_conn && c)
			tg_conn_handled(c, 1);
		done(c, arg, NULL, 0, &err);
		return;
	}
	q->id = next_req_id++;
	q->conn = c;
	q->holds = holds_conn;
	q->done = done;
	q->arg = arg;
	q->msg = b.data;
	q->len = b.len;
	if (holds_conn && c)
		c->busy = true;
	if (readers[best].tail)
		readers[best].tail->next = q;
	else
		readers[best].head = q;
	readers[best].tail = q;
	if (readers[best].unsent == NULL)
		readers[best].unsent = q;
	readers[best].nout++;
	pg_atomic_write_u64(&tg_exec_slot(1 + best)->queued, (uint64) readers[best].nout);
	tg_metrics_executor_set(metrics_slot[best], (uint64) readers[best].nout);
	in_flight++;
	push_unsent(&readers[best]);
}

void
tg_readers_submit(TgConn *c, bool holds_conn, TgRecKind kind, const void *payload, size_t len,
				  TgReadDone done, void *arg)
{
	submit(c, holds_conn, -1, kind, payload, len, done, arg);
}

void
tg_readers_submit_pinned(TgConn *c, bool holds_conn, uint32 pin, TgRecKind kind, const void *payload,
						 size_t len, TgReadDone done, void *arg)
{
	submit(c, holds_conn, nreaders > 0 ? (int) (pin % (uint32) nreaders) : -1, kind, payload, len,
		   done, arg);
}

void
tg_readers_poll(void)
{
	for (int i = 0; i < nreaders; i++)
	{
		Reader	   *r = &readers[i];

		if (!r->up)
		{
			if (r->handle)
			{
				pid_t		pid;

				if (GetBackgroundWorkerPid(r->handle, &pid) != BGWH_STOPPED)
					continue;	/* wait until it is really gone */
				pfree(r->handle);
				r->handle = NULL;
			}
			if (tg_mono_ms() >= r->restart_at)
			{
				tg_ipc_reset_queue(rseg, TG_Q_RREQ_BASE + 2 * i);
				tg_ipc_reset_queue(rseg, TG_Q_RREP_BASE + 2 * i);
				start_reader(i);
			}
			continue;
		}
		for (;;)
		{
			Size		n;
			void	   *d;
			shm_mq_result res = shm_mq_receive(r->rep, &n, &d, true);
			TgRecIter	it;
			TgRec		rec;
			const char *p;
			Req		   *q;

			if (res == SHM_MQ_WOULD_BLOCK)
				break;
			if (res == SHM_MQ_DETACHED)
			{
				reader_died(i);
				break;
			}
			q = r->head;
			tg_rec_iter_init(&it, d, n);
			if (q == NULL || !tg_rec_next(&it, &rec, &p) || rec.conn != q->id)
				elog(ERROR, "topgun: reader executor %d answered out of order", i + 1);
			r->head = q->next;
			if (r->head == NULL)
				r->tail = NULL;
			r->nout--;
			TG_ASSERT(r->nout >= 0);
			pg_atomic_write_u64(&tg_exec_slot(1 + i)->queued, (uint64) r->nout);
			tg_metrics_executor_set(metrics_slot[i], (uint64) r->nout);
			if (rec.kind == TG_REP_ERROR)
			{
				TgRecError	err;

				memset(&err, 0, sizeof(err));
				memcpy(&err, p, Min(sizeof(err), rec.len));
				err.message[sizeof(err.message) - 1] = '\0';
				finish(q, NULL, 0, &err);
			}
			else
				finish(q, d, n, NULL);
		}
		if (r->up)
		{
			pid_t		pid;

			if (r->handle && GetBackgroundWorkerPid(r->handle, &pid) == BGWH_STOPPED)
				reader_died(i);
			else
				push_unsent(r);
		}
	}
}

void
tg_readers_conn_gone(TgConn *c)
{
	for (int i = 0; i < nreaders; i++)
		for (Req *q = readers[i].head; q; q = q->next)
			if (q->conn == c)
				q->conn = NULL;
}

void
tg_readers_forget(void *arg)
{
	for (int i = 0; i < nreaders; i++)
		for (Req *q = readers[i].head; q; q = q->next)
			if (q->arg == arg)
			{
				q->arg = NULL;
				q->done = NULL;
			}
}

void
tg_readers_forward_frames(TgConn *c, void *arg, const char *msg, Size len, const TgRecError *err)
{
	TgRecIter	it;
	TgRec		rec;
	const char *p;
	bool		first = true;

	if (c == NULL)
		return;
	if (msg == NULL)
	{
		tg_send_error(c, err->code, err->message);
		return;
	}
	/* the frames of one reply (an ORMAP_DIFF_RESPONSE in parts) count as one message */
	tg_rec_iter_init(&it, msg, len);
	while (tg_rec_next(&it, &rec, &p))
		if (rec.kind == TG_REP_FRAME)
		{
			if (first)
				tg_conn_send(c, (const unsigned char *) p, rec.len);
			else
				tg_conn_send_more(c, (const unsigned char *) p, rec.len);
			first = false;
		}
}
