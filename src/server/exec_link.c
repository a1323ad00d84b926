/*
 * exec_link.c — the socket process's side of the session executor
 * (docs/worker.md, "Processes"): launch it, forward every complete inbound
 * message to it, apply what it answers (messages to send, closes, session
 * state), and start a fresh one when it dies.
 *
 * Nothing here waits: queue sends are non-blocking (a partly sent message is
 * kept and retried; while it waits no more sockets are read), replies are
 * drained whenever the loop runs (the executor wakes it with SIGUSR2).
 */
#include "postgres.h"

#include <signal.h>

#include <libwebsockets.h>

#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/shm_mq.h"
#include "utils/memutils.h"

#include "ipc/ipc.h"
#include "metrics/metrics.h"
#include "wire/message.h"
#include "worker/worker.h"
#include "server/server.h"

static dsm_segment *seg = NULL;
static TgIpcHeader *hdr = NULL;
static shm_mq_handle *q_in = NULL;	/* we send */
static shm_mq_handle *q_out = NULL; /* we receive */
static BackgroundWorkerHandle *session_handle = NULL;
static int64 next_launch_ms = 0;
static bool generation_open = false;

/* records gathered this iteration, and a message partly on the queue */
static TgIpcBuf outbuf;
static TgIpcBuf sending;
static bool sending_active = false;

static bool paused = false;		/* sockets not read while the queue is full */
static bool restart_wanted = false; /* the executor saw the extension re-created */
static TgRecClose restart;

#define TG_SX_PAUSE_BYTES	((size_t) 64 * 1024 * 1024)

static void
end_generation(const char *why)
{
	if (generation_open)
	{
		ereport(LOG, (errmsg("topgun: session executor gone (%s); every connection is asked to reconnect", why)));
		pg_atomic_fetch_add_u64(&tg_exec_slot(0)->restarts, 1);
	}
	pg_atomic_write_u32(&tg_worker_shared->ready, 0);
	/* until a new session executor has checked the extension */
	tg_metrics_set_health(TG_HEALTH_NOT_READY, NULL);
	generation_open = false;
	if (q_in)
		shm_mq_detach(q_in);
	if (q_out)
		shm_mq_detach(q_out);
	q_in = q_out = NULL;
	if (seg)
		dsm_detach(seg);
	seg = NULL;
	hdr = NULL;
	if (session_handle)
		pfree(session_handle);
	session_handle = NULL;
	tg_ipc_buf_reset(&outbuf);
	tg_ipc_buf_reset(&sending);
	sending_active = false;
	/* the session state of every connection was in that process */
	for (TgConn *c = tg_conns; c; c = c->next)
	{
		c->frames_fwd = c->frames_done = 0;
		c->sx_open = false;
		tg_sock_close(c, 1012, "Service Restart");
	}
	next_launch_ms = tg_mono_ms() + 1000;
}

static void
launch(void)
{
	BackgroundWorker w;
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

	seg = tg_ipc_create(tg_executors_total() - 1, &hdr);
	pg_atomic_write_u32(&hdr->sp_pid, (uint32) MyProcPid);

	memset(&w, 0, sizeof(w));
	w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	w.bgw_start_time = BgWorkerStart_ConsistentState;
	w.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(w.bgw_library_name, BGW_MAXLEN, "topgun");
	snprintf(w.bgw_function_name, BGW_MAXLEN, "tg_session_main");
	snprintf(w.bgw_name, BGW_MAXLEN, "topgun session executor");
	snprintf(w.bgw_type, BGW_MAXLEN, "topgun executor");
	w.bgw_main_arg = UInt32GetDatum(dsm_segment_handle(seg));
	w.bgw_notify_pid = MyProcPid;
	if (!RegisterDynamicBackgroundWorker(&w, &session_handle))
	{
		ereport(WARNING,
				(errmsg("topgun: could not start the session executor (max_worker_processes too low?); retrying"),
				 errhint("topgun needs topgun.executors + 1 background worker slots.")));
		dsm_detach(seg);
		seg = NULL;
		hdr = NULL;
		session_handle = NULL;
		next_launch_ms = tg_mono_ms() + 1000;
		MemoryContextSwitchTo(old);
		return;
	}
	q_in = shm_mq_attach(tg_ipc_queue(seg, TG_Q_IN), seg, session_handle);
	shm_mq_set_sender(tg_ipc_queue(seg, TG_Q_IN), MyProc);
	shm_mq_set_receiver(tg_ipc_queue(seg, TG_Q_OUT), MyProc);
	q_out = shm_mq_attach(tg_ipc_queue(seg, TG_Q_OUT), seg, session_handle);
	generation_open = true;
	MemoryContextSwitchTo(old);

	/* every live connection is new to this executor */
	for (TgConn *c = tg_conns; c; c = c->next)
		if (!c->closed && !c->closing && c->slot >= 0)
			tg_sx_open(c);
}

/* The executor asked for a fresh server (close code and reason). */
bool
tg_sx_restart_wanted(int *code, char *reason, size_t len)
{
	if (!restart_wanted)
		return false;
	*code = restart.code;
	strlcpy(reason, restart.reason, len);
	return true;
}

bool
tg_sx_paused(void)
{
	return paused;
}

/* A new socket (after its slot was taken). */
void
tg_sx_open(TgConn *c)
{
	c->sx_open = true;
	tg_ipc_put(&outbuf, TG_REC_OPEN, c->id, c->remote, strlen(c->remote));
}

void
tg_sx_closed(TgConn *c)
{
	if (c->sx_open)
		tg_ipc_put(&outbuf, TG_REC_CLOSED, c->id, NULL, 0);
	c->sx_open = false;
}

void
tg_sx_forward(TgConn *c, const unsigned char *data, size_t len)
{
	c->frames_fwd++;
	tg_ipc_put(&outbuf, TG_REC_FRAME, c->id, data, len);
}

static TgConn *
find_conn(uint64 id)
{
	/* most records are for recently active connections: a linear walk is
	 * fine for the connection counts a worker holds (lookups are hashed by
	 * the executor, which does the real work) */
	for (TgConn *c = tg_conns; c; c = c->next)
		if (c->id == id)
			return c;
	return NULL;
}

static void
apply_records(const void *data, Size len)
{
	TgRecIter	it;
	TgRec		r;
	const char *p;
	TgConn	   *last = NULL;

	tg_rec_iter_init(&it, data, len);
	while (tg_rec_next(&it, &r, &p))
	{
		TgConn	   *c;

		if (r.kind == TG_REC_RESTART)
		{
			memcpy(&restart, p, Min(sizeof(restart), r.len));
			restart.reason[sizeof(restart.reason) - 1] = '\0';
			restart_wanted = true;
			continue;
		}
		c = (last && last->id == r.conn) ? last : find_conn(r.conn);
		last = c;
		if (c == NULL || c->closed)
			continue;
		switch (r.kind)
		{
			case TG_REC_SEND:
				tg_sock_send(c, (const unsigned char *) p, r.len);
				break;
			case TG_REC_SEND_MORE:
				tg_sock_send_more(c, (const unsigned char *) p, r.len);
				break;
			case TG_REC_CLOSE:
			case TG_REC_KILL:
				{
					TgRecClose	rc;

					memcpy(&rc, p, Min(sizeof(rc), r.len));
					rc.reason[sizeof(rc.reason) - 1] = '\0';
					if (r.kind == TG_REC_CLOSE)
						tg_sock_close(c, rc.code, rc.reason);
					else
						tg_sock_kill(c, rc.code, rc.reason);
					break;
				}
			case TG_REC_SESSION:
				{
					TgRecSession s;

					memcpy(&s, p, Min(sizeof(s), r.len));
					s.user[sizeof(s.user) - 1] = '\0';
					c->authenticated = s.authenticated;
					c->token_expires_ms = s.expires_ms;
					strlcpy(c->user_id, s.user, sizeof(c->user_id));
					c->nwatches = s.watched_maps;
					c->nqueries = s.queries;
					c->ntopics = s.topics;
					c->ncounters = s.counters;
					c->limit_hits = s.limit_hits;
					c->denied = s.denied;
					c->rate_limited = s.rate_limited;
					c->slot_dirty = true;
					break;
				}
			case TG_REC_DONE:
				memcpy(&c->frames_done, p, sizeof(uint64));
				TG_ASSERT(c->frames_done <= c->frames_fwd);
				break;
			default:
				break;
		}
	}
}

/* Push what was gathered; never blocks. */
static void
flush_out(void)
{
	if (q_in == NULL)
		return;
	if (!sending_active && outbuf.len > 0)
	{
		TgIpcBuf	t = sending;

		sending = outbuf;
		outbuf = t;
		tg_ipc_buf_reset(&outbuf);
		sending_active = true;
	}
	if (sending_active)
	{
		shm_mq_result r;

		if (sending.failed)
			ereport(ERROR, (errmsg("topgun: out of memory queueing messages for the executor")));
		r = tg_ipc_send_nowait(q_in, sending.data, sending.len);
		if (r == SHM_MQ_SUCCESS)
		{
			sending_active = false;
			tg_ipc_buf_reset(&sending);
			pg_atomic_write_u32(&hdr->sp_blocked, 0);
		}
		else if (r == SHM_MQ_WOULD_BLOCK)
			pg_atomic_write_u32(&hdr->sp_blocked, 1);
		else
			end_generation("its queue was detached");
	}
	paused = sending_active && outbuf.len >= TG_SX_PAUSE_BYTES;
}

/*
 * Once per loop iteration: start the executor if needed, apply its replies,
 * send what was gathered.
 */
void
tg_sx_poll(void)
{
	if (!generation_open)
	{
		if (tg_mono_ms() >= next_launch_ms)
			launch();
		return;
	}
	if (hdr)
		pg_atomic_write_u32(&hdr->sp_wake_pending, 0);
	for (int i = 0; i < 1024 && q_out; i++)
	{
		Size		n;
		void	   *d;
		shm_mq_result r = shm_mq_receive(q_out, &n, &d, true);

		if (r == SHM_MQ_WOULD_BLOCK)
			break;
		if (r == SHM_MQ_DETACHED)
		{
			end_generation("it exited");
			return;
		}
		apply_records(d, n);
	}
	if (session_handle)
	{
		pid_t		pid;

		if (GetBackgroundWorkerPid(session_handle, &pid) == BGWH_STOPPED)
		{
			end_generation("it stopped");
			return;
		}
	}
	flush_out();
}

void
tg_sx_shutdown(void)
{
	if (session_handle)
		TerminateBackgroundWorker(session_handle);
}
