/*
 * main.c — the socket process of the sync server (docs/worker.md,
 * "Processes"): its lifecycle, signals, listener and main loop.  It never
 * runs SQL: complete messages go to the session executor (exec_link.c),
 * whose answers it writes to the sockets (transport.c).
 *
 * Threading/wait model: libwebsockets owns the wait (Debian's lws has no
 * external-poll support).  Signal handlers only set flags and write one byte
 * to a self-pipe whose read end is adopted into lws as a raw file, so a
 * signal -- also the executor's "answers are waiting" SIGUSR2 -- makes
 * lws_service() return.  A periodic lws_sul (250 ms) drives housekeeping:
 * postmaster liveness, auth/heartbeat timeouts, readiness.
 */
#include "postgres.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netdb.h>
#include <signal.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/pmsignal.h"
#include "storage/procsignal.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "topgun.h"
#include "metrics/metrics.h"
#include "worker/worker.h"
#include "server/server.h"
#include "wire/message.h"
#include "wire/msgpack.h"


static volatile sig_atomic_t got_sigterm = false;
static volatile sig_atomic_t got_sighup = false;
static volatile sig_atomic_t got_wakeup = false;
static volatile sig_atomic_t tick_due = false;
static int	wake_pipe[2] = {-1, -1};

static struct lws_context *lws_ctx = NULL;
static lws_sorted_usec_list_t tick_sul;




/* ------------------------------------------------------------ signals */

static void
wake_self(void)
{
	int			save_errno = errno;

	if (wake_pipe[1] >= 0)
	{
		char		b = 1;
		ssize_t		rc pg_attribute_unused();

		rc = write(wake_pipe[1], &b, 1);	/* EAGAIN: a wake is pending */
	}
	errno = save_errno;
}

static void
tg_sigterm(SIGNAL_ARGS)
{
	got_sigterm = true;
	wake_self();
	SetLatch(MyLatch);
}

static void
tg_sighup(SIGNAL_ARGS)
{
	got_sighup = true;
	wake_self();
	SetLatch(MyLatch);
}

static void
tg_sigusr2(SIGNAL_ARGS)
{
	got_wakeup = true;
	wake_self();
	SetLatch(MyLatch);
}

/*
 * SIGUSR1 carries procsignals (barriers, sinval catch-up, ...).  Let the
 * standard handler record them and make sure the loop wakes up to process
 * them with CHECK_FOR_INTERRUPTS(); otherwise e.g. DROP DATABASE waits on a
 * sleeping worker.
 */
static void
tg_sigusr1(SIGNAL_ARGS)
{
	int			save_errno = errno;

	procsignal_sigusr1_handler(postgres_signal_arg);
	wake_self();
	errno = save_errno;
}

static void
tick_cb(lws_sorted_usec_list_t *sul)
{
	tick_due = true;
	lws_sul_schedule(lws_ctx, 0, &tick_sul, tick_cb, 250 * LWS_US_PER_MS);
}

static void
lws_log_emit(int level, const char *line)
{
	/* lws lines end with a newline; LOG level never longjmps */
	ereport(LOG, (errmsg("topgun: libwebsockets: %.*s",
						 (int) strcspn(line, "\n"), line)));
}

/* --------------------------------------------------------- lifecycle */

/*
 * Resolve topgun.listen_addresses into an interface address for lws.
 * Returns false (with a log line) if it cannot be resolved.
 */
static bool
resolve_listen(char *out, size_t outlen, bool *ipv4)
{
	struct addrinfo hints;
	struct addrinfo *res = NULL;
	int			rc;

	*ipv4 = false;
	out[0] = '\0';
	if (tg_listen_addresses == NULL || tg_listen_addresses[0] == '\0' ||
		strcmp(tg_listen_addresses, "*") == 0)
		return true;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	rc = getaddrinfo(tg_listen_addresses, NULL, &hints, &res);
	if (rc != 0 || res == NULL)
	{
		ereport(WARNING,
				(errmsg("topgun: could not resolve topgun.listen_addresses \"%s\": %s",
						tg_listen_addresses, gai_strerror(rc))));
		return false;
	}
	/* prefer IPv4 when a name resolves to both (localhost) */
	for (struct addrinfo *a = res; a; a = a->ai_next)
	{
		if (a->ai_family == AF_INET)
		{
			inet_ntop(AF_INET, &((struct sockaddr_in *) a->ai_addr)->sin_addr, out, outlen);
			*ipv4 = true;
			break;
		}
	}
	if (!*ipv4)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *) res->ai_addr)->sin6_addr, out, outlen);
	freeaddrinfo(res);
	return true;
}

/*
 * Every WebSocket is a file descriptor: raise the soft RLIMIT_NOFILE so that
 * topgun.max_connections sockets fit next to PostgreSQL's own files.
 */
static void
raise_fd_limit(void)
{
	struct rlimit rl;
	rlim_t		want = (rlim_t) tg_max_connections + 256;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
		return;
	rl.rlim_cur = (rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want) ? want : rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur < want)
		ereport(WARNING,
				(errmsg("topgun: open-file limit %lu is too low for topgun.max_connections = %d",
						(unsigned long) rl.rlim_cur, tg_max_connections),
				 errhint("Raise the hard limit (ulimit -Hn / LimitNOFILE) of the PostgreSQL service.")));
}

static bool
start_listener(void)
{
	struct lws_context_creation_info info;
	struct lws_vhost *vh;
	lws_sock_file_fd_type fd;
	char		iface[INET6_ADDRSTRLEN + 1];
	bool		ipv4;

	if (!resolve_listen(iface, sizeof(iface), &ipv4))
		return false;
	raise_fd_limit();

	memset(&info, 0, sizeof(info));
	info.port = tg_port;
	info.iface = iface[0] ? iface : NULL;
	info.protocols = tg_sock_protocols;
	info.vhost_name = "default";
	info.options = LWS_SERVER_OPTION_FAIL_UPON_UNABLE_TO_BIND;
	if (ipv4)
		info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
	info.gid = -1;
	info.uid = -1;
	info.max_http_header_pool = 256;	/* concurrent upgrades in flight */
	info.fd_limit_per_thread = (unsigned int) tg_max_connections + 64;
	if (tg_ssl_cert_file && tg_ssl_cert_file[0])
	{
		info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
		info.ssl_cert_filepath = tg_ssl_cert_file;
		info.ssl_private_key_filepath = tg_ssl_key_file;
		info.ssl_options_set = SSL_OP_NO_SSLv2 | SSL_OP_NO_SSLv3 |
			SSL_OP_NO_TLSv1 | SSL_OP_NO_TLSv1_1;
	}

	/* TOPGUN_LWS_LOG=<lws level bitmask> in the postmaster environment: debugging aid */
	lws_set_log_level(getenv("TOPGUN_LWS_LOG") ? atoi(getenv("TOPGUN_LWS_LOG")) : LLL_ERR,
					  lws_log_emit);
	lws_ctx = lws_create_context(&info);
	if (lws_ctx == NULL)
	{
		ereport(WARNING,
				(errmsg("topgun: could not start the sync server on %s port %d; retrying in 5 s",
						iface[0] ? iface : "*", tg_port)));
		return false;
	}
	vh = lws_get_vhost_by_name(lws_ctx, "default");
	memset(&fd, 0, sizeof(fd));
	fd.filefd = wake_pipe[0];
	if (vh == NULL ||
		lws_adopt_descriptor_vhost(vh, LWS_ADOPT_RAW_FILE_DESC, fd, "topgun-wake", NULL) == NULL)
	{
		ereport(WARNING, (errmsg("topgun: could not adopt the wake-up pipe into libwebsockets")));
		lws_context_destroy(lws_ctx);
		lws_ctx = NULL;
		return false;
	}
	lws_sul_schedule(lws_ctx, 0, &tick_sul, tick_cb, 250 * LWS_US_PER_MS);
	pg_atomic_write_u32(&tg_worker_shared->listening, 1);
	ereport(LOG,
			(errmsg("topgun sync server listening on %s port %d%s",
					iface[0] ? iface : "*", tg_port,
					info.ssl_cert_filepath ? " (TLS)" : "")));
	return true;
}

static void shutdown_clients(int code, const char *reason, bool with_notice);

static void
set_ready(bool ready)
{
	if (ready == tg_ready)
		return;
	tg_ready = ready;
	if (!ready)
	{
		/* nothing can be served any more: let the clients retry later */
		for (TgConn *c = tg_conns; c; c = c->next)
			tg_sock_close(c, 1013, "Server not ready");
	}
}

static void
housekeeping(void)
{
	int64		now = tg_mono_ms();

	if (!PostmasterIsAlive())
		proc_exit(1);

	/* readiness is decided by the session executor (it can run SQL) */
	set_ready(pg_atomic_read_u32(&tg_worker_shared->ready) != 0);

	/* gauges summed over the connections */
	{
		int64		outq = 0;
		int64		nsubs[TG_SUB_SEARCH + 1] = {0};

		for (TgConn *c = tg_conns; c; c = c->next)
		{
			if (c->closed)
				continue;
			outq += (int64) c->out_bytes;
			nsubs[TG_SUB_QUERY] += c->nqueries;
			nsubs[TG_SUB_TOPIC] += c->ntopics;
			nsubs[TG_SUB_COUNTER] += c->ncounters;
		}
		tg_metrics_set(TG_M_OUTBOUND_BYTES, 0, outq);
		for (int k = TG_SUB_QUERY; k <= TG_SUB_COUNTER; k++)
			tg_metrics_set(TG_M_SUBSCRIPTIONS, k, nsubs[k]);
	}

	for (TgConn *c = tg_conns; c; c = c->next)
	{
		if (c->closed || c->closing || c->slot < 0)
			continue;
		if (!c->authenticated && now - c->connected_ms > tg_auth_timeout_ms)
			tg_sock_close(c, 4001, "Auth timeout");
		/*
		 * Liveness counts from the last frame *received*, not the last PING
		 * processed: a PING that arrived on time may still sit in the inbound
		 * queue behind a backlog (a big Merkle pull), and its sender must not
		 * be evicted for the server's own delay.
		 */
		else if (c->authenticated &&
				 now - Max(c->last_ping_ms, c->last_rx_ms) > tg_heartbeat_timeout_ms)
			tg_sock_close(c, 4002, "Heartbeat timeout");
		/* the token expired on an open connection: the client reconnects with a fresh one */
		else if (c->authenticated && c->token_expires_ms > 0 &&
				 tg_now_ms() >= c->token_expires_ms)
			tg_sock_close(c, 4001, "Token expired");
		tg_sock_update_slot(c);
	}
}

static void
shutdown_clients(int code, const char *reason, bool with_notice)
{
	static const unsigned char shutdown_msg[] = {
		/* {type:'SHUTDOWN_PENDING', retryAfter:5000} as map16 */
		0xde, 0x00, 0x02,
		0xa4, 't', 'y', 'p', 'e',
		0xb0, 'S', 'H', 'U', 'T', 'D', 'O', 'W', 'N', '_', 'P', 'E', 'N', 'D', 'I', 'N', 'G',
		0xaa, 'r', 'e', 't', 'r', 'y', 'A', 'f', 't', 'e', 'r',
		0xcd, 0x13, 0x88
	};
	uint64		deadline;

	for (TgConn *c = tg_conns; c; c = c->next)
	{
		if (c->closed || c->wsi == NULL || c->close_sent)
			continue;
		c->closing = false;
		if (with_notice)
			tg_sock_send(c, shutdown_msg, sizeof(shutdown_msg));
		tg_sock_close(c, code, reason);
	}
	/* give the sockets up to one second to flush */
	deadline = tg_mono_ns() + 1000000000ULL;
	while (tg_mono_ns() < deadline)
	{
		bool		any = false;

		for (TgConn *c = tg_conns; c; c = c->next)
			if (!c->closed)
				any = true;
		if (!any)
			break;
		lws_service(lws_ctx, 0);
	}
}

/* Whatever the exit path: the shared state must not claim a live server. */
static void
worker_exit_cb(int code, Datum arg)
{
	tg_metrics_set_health(TG_HEALTH_NOT_READY, NULL);
	tg_metrics_set_server(0, 0);
	if (tg_worker_shared == NULL)
		return;
	pg_atomic_write_u32(&tg_worker_shared->listening, 0);
	pg_atomic_write_u32(&tg_worker_shared->ready, 0);
	pg_atomic_write_u32(&tg_worker_shared->worker_pid, 0);
	for (int i = 0; i < tg_worker_shared->nslots; i++)
	{
		TgConnSlot *sl = &tg_worker_shared->slots[i];

		if (sl->in_use)
		{
			TG_SLOT_BEGIN_WRITE(sl);
			sl->in_use = false;
			TG_SLOT_END_WRITE(sl);
		}
	}
}

/*
 * One complete inbound message.  A PING from a connection with nothing
 * pending at the executor is answered here at once (its PONG cannot
 * overtake anything); everything else goes to the session executor, which
 * answers in order per connection -- a PING behind other messages too, so a
 * PING/PONG round trip stays a barrier.
 */
static void
forward_message(TgConn *c, const unsigned char *data, size_t len)
{
	if (c->closed || c->closing || c->wsi == NULL)
		return;
	if (!tg_ready)
	{
		tg_sock_close(c, 1013, "Server not ready");
		return;
	}
	if (len <= 96 && c->frames_fwd == c->frames_done)
	{
		TgMessage	msg;
		MpLimits	lim = {8, 32, 96};
		char		err[64];

		if (tg_message_parse(data, len, &lim, &msg, err, sizeof(err)) == TG_PARSE_OK &&
			msg.type == TG_MSG_PING)
		{
			MpBuf		b;

			tg_message_free(&msg);
			tg_stat_add(TG_STAT_MSG_ACCEPTED, 1);
			tg_metrics_inc(TG_M_MSG_RECEIVED, TG_MSG_PING, 1);
			c->last_ping_ms = tg_mono_ms();
			/* no top-level numeric timestamp: it would corrupt the client HLC */
			mp_buf_init(&b, 256);
			mp_put_map_header(&b, 2);
			mp_put_str(&b, "type");
			mp_put_str(&b, "PONG");
			mp_put_str(&b, "serverTime");
			mp_put_float64(&b, (double) tg_now_ms());
			if (mp_buf_ok(&b))
				tg_sock_send(c, b.data, b.len);
			mp_buf_free(&b);
			return;
		}
		tg_message_free(&msg);
	}
	tg_sx_forward(c, data, len);
}

/* Stop reading the sockets while the executor's queue is full. */
static void
flow_control(bool pause)
{
	static bool paused = false;

	if (pause == paused)
		return;
	paused = pause;
	for (TgConn *c = tg_conns; c; c = c->next)
		if (!c->closed && c->wsi)
			lws_rx_flow_control(c->wsi, pause ? 0 : 1);
}

/* The session executor saw the extension re-created: start afresh. */
static void
restart_server(int code, const char *reason)
{
	ereport(LOG,
			(errmsg("topgun sync server restarting: extension \"topgun\" was re-created in database \"%s\"",
					tg_database)));
	shutdown_clients(code, reason, false);
	tg_sx_shutdown();
	proc_exit(1);
}

static void
reload_config(void)
{
	got_sighup = false;
	ProcessConfigFile(PGC_SIGHUP);
	tg_auth_configure(false);
	/* last: a test that sees the count move knows the new settings apply */
	tg_stat_add(TG_STAT_RELOADS, 1);
}

void
tg_worker_main(Datum arg)
{
	int64		next_listen_try = 0;
	bool		config_ok;
	int			restart_code;
	char		restart_reason[64];

	tg_role = TG_ROLE_SOCKET;
	if (pipe(wake_pipe) != 0 ||
		fcntl(wake_pipe[0], F_SETFL, O_NONBLOCK) != 0 ||
		fcntl(wake_pipe[1], F_SETFL, O_NONBLOCK) != 0 ||
		fcntl(wake_pipe[0], F_SETFD, FD_CLOEXEC) != 0 ||
		fcntl(wake_pipe[1], F_SETFD, FD_CLOEXEC) != 0)
		ereport(FATAL, (errmsg("topgun: could not create the wake-up pipe: %m")));
	tg_sock_init(wake_pipe[0], tg_sx_open);

	/*
	 * Every main-loop iteration allocates and frees the same large buffers
	 * (group-commit arrays, tuple stores, SPI results).  With glibc's
	 * defaults, blocks above 128 KiB are mmap'd and the heap top is trimmed
	 * back to the kernel, so each iteration page-faults them in again (~9 %
	 * of the worker's time under write load).  Keep them: the memory stays
	 * bounded by the largest iteration.
	 */
	mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
	mallopt(M_TRIM_THRESHOLD, 128 * 1024 * 1024);

	pqsignal(SIGTERM, tg_sigterm);
	pqsignal(SIGHUP, tg_sighup);
	pqsignal(SIGUSR2, tg_sigusr2);
	pqsignal(SIGUSR1, tg_sigusr1);
	BackgroundWorkerUnblockSignals();

	BackgroundWorkerInitializeConnection(tg_database, NULL, 0);
	pgstat_report_appname("topgun sync server");
	pgstat_report_activity(STATE_IDLE, NULL);

	/* acks are sent only for durable commits */
	SetConfigOption("synchronous_commit", "on", PGC_SUSET, PGC_S_OVERRIDE);

	pg_atomic_write_u32(&tg_worker_shared->worker_pid, (uint32) MyProcPid);
	on_shmem_exit(worker_exit_cb, (Datum) 0);
	tg_metrics_set_server((uint32) MyProcPid, (int64) time(NULL));
	tg_metrics_set_health(TG_HEALTH_NOT_READY, NULL);
	tg_metrics_set(TG_M_CONN_OPEN, 0, 0);	/* a previous worker may have exited with sockets open */


	/*
	 * Phase 1: wait until the configuration allows serving.  In production
	 * mode a missing/default/weak secret keeps the worker idle (alive, not
	 * listening) until a reload fixes it; no crash-restart loop.
	 */
	config_ok = tg_auth_configure(true);
	for (;;)
	{
		if (got_sigterm)
			proc_exit(1);
		if (config_ok)
		{
			int64		now = tg_mono_ms();

			if (now >= next_listen_try)
			{
				if (start_listener())
					break;
				next_listen_try = now + 5000;
			}
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 1000, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (got_sighup)
		{
			got_sighup = false;
			ProcessConfigFile(PGC_SIGHUP);
			config_ok = tg_auth_configure(true);
			tg_stat_add(TG_STAT_RELOADS, 1);
		}
	}

	housekeeping();

	/* Phase 2: serve. */
	while (!got_sigterm)
	{
		TgInMsg    *batch;

		lws_service(lws_ctx, 0);

		/*
		 * A query cancel (SIGINT) outside any transaction has nothing to
		 * cancel; do not let it raise an error at the top of the loop.
		 */
		QueryCancelPending = false;
		CHECK_FOR_INTERRUPTS();

		if (got_sighup)
			reload_config();
		if (got_wakeup)
		{
			uint64		sent;

			got_wakeup = false;
			/* measure signal -> main loop latency of test wakes (topgun.worker_wake) */
			sent = pg_atomic_exchange_u64(&tg_worker_shared->wake_sent_ns, 0);
			if (sent != 0)
			{
				uint64		lat = tg_mono_ns() - sent;

				pg_atomic_write_u64(&tg_worker_shared->wake_last_ns, lat);
				if (lat > pg_atomic_read_u64(&tg_worker_shared->wake_max_ns))
					pg_atomic_write_u64(&tg_worker_shared->wake_max_ns, lat);
				pg_atomic_fetch_add_u64(&tg_worker_shared->wake_count, 1);
				pg_atomic_fetch_add_u64(&tg_worker_shared->wake_total_ns, lat);
			}
		}
		if (tick_due)
		{
			tick_due = false;
			housekeeping();
		}

		/* what the session executor answered (sends, closes, session state) */
		tg_sx_poll();
		if (tg_sx_restart_wanted(&restart_code, restart_reason, sizeof(restart_reason)))
			restart_server(restart_code, restart_reason);
		if (tg_worker_shared && tg_ready != (pg_atomic_read_u32(&tg_worker_shared->ready) != 0))
			set_ready(!tg_ready);

		batch = tg_sock_take_inbound();
		while (batch)
		{
			TgInMsg    *next = batch->next;

			forward_message(batch->conn, batch->data, batch->len);
			free(batch->data);
			free(batch);
			batch = next;
		}
		tg_sock_reap(tg_sx_closed);
		tg_sx_poll();			/* hand over what this iteration gathered */
		flow_control(tg_sx_paused());
		for (TgConn *c = tg_conns; c; c = c->next)
			if (!c->closed && c->slot_dirty)
				tg_sock_update_slot(c);
	}

	ereport(LOG, (errmsg("topgun sync server shutting down")));
	tg_metrics_set_health(TG_HEALTH_SHUTTING_DOWN, NULL);
	shutdown_clients(1001, "Server Shutdown", true);
	tg_sx_shutdown();
	pg_atomic_write_u32(&tg_worker_shared->listening, 0);
	pg_atomic_write_u32(&tg_worker_shared->ready, 0);
	pg_atomic_write_u32(&tg_worker_shared->worker_pid, 0);
	lws_context_destroy(lws_ctx);
	lws_ctx = NULL;
	tg_auth_release();

	/*
	 * Exit code 1 keeps the worker registered: after pg_terminate_backend
	 * it is restarted; during a postmaster shutdown nothing is restarted.
	 */
	proc_exit(1);
}
