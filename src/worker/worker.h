/*
 * worker.h — internal declarations of the sync-server background worker.
 *
 * The worker is one process: libwebsockets owns the wait (lws_service), and
 * every callback only moves bytes between sockets and plain malloc'd queues.
 * All PostgreSQL work (SPI, transactions, anything that may ereport) runs in
 * the main loop between two lws_service() calls, so no longjmp can ever cross
 * a libwebsockets stack frame.
 */
#ifndef TG_WORKER_H
#define TG_WORKER_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "port/atomics.h"

#include "auth/jwt.h"
#include "topgun.h"

/*
 * Invariant checks of the sync server (queues, group commit, fan-out):
 * compiled in by `make DEBUG=1` (the sanitizer suite), out of release builds.
 */
#ifdef TG_DEBUG
#define TG_ASSERT(cond) \
	do { \
		if (!(cond)) \
			elog(PANIC, "topgun: invariant violated: %s (%s:%d)", #cond, __FILE__, __LINE__); \
	} while (0)
#else
#define TG_ASSERT(cond) ((void) 0)
#endif

/* ---------------------------------------------------------------- GUCs */
extern int	tg_port;
extern char *tg_listen_addresses;
extern char *tg_database;
extern int	tg_max_connections;
extern int	tg_max_message_bytes;
extern int	tg_max_outbound_bytes;
extern int	tg_auth_timeout_ms;
extern int	tg_heartbeat_timeout_ms;
extern int	tg_invalid_message_budget;
extern int	tg_jwt_algorithm;
extern char *tg_jwt_secret;
extern char *tg_jwt_public_key_file;
extern char *tg_jwt_secret_file;
extern int	tg_jwt_leeway_s;
extern int	tg_jwt_require_exp;	/* TG_AUTO / TG_AUTO_ON / TG_AUTO_OFF */
extern char *tg_ssl_cert_file;
extern char *tg_ssl_key_file;
extern int	tg_group_commit_max_ops;
extern int	tg_group_commit_delay_us;
extern int	tg_max_subscriptions_per_connection;
extern int	tg_max_topics_per_connection;
extern int	tg_topic_queue_size;
extern int	tg_max_query_results;
extern int	tg_executors;
extern char *tg_advertise_url;

/* Which process of the sync server this is (docs/worker.md). */
typedef enum TgRole
{
	TG_ROLE_NONE = 0,
	TG_ROLE_SOCKET,			/* libwebsockets loop: never runs SQL */
	TG_ROLE_SESSION,		/* session executor: sessions, writes, live data */
	TG_ROLE_READER			/* reader executor: reads in their own snapshots */
} TgRole;

extern TgRole tg_role;
extern int	tg_executors_total(void);

/* ------------------------------------------------------ shared memory */

/* Counters exported by topgun.worker_stats. */
typedef enum TgStat
{
	TG_STAT_CONN_ACCEPTED = 0,
	TG_STAT_CONN_REFUSED,
	TG_STAT_AUTH_OK,
	TG_STAT_AUTH_FAILED,
	TG_STAT_MSG_ACCEPTED,
	TG_STAT_MSG_INVALID,
	TG_STAT_OPS_APPLIED,
	TG_STAT_OPS_REJECTED,
	TG_STAT_COMMITS,
	TG_STAT_ACKS,
	TG_STAT_EVENTS_SENT,
	TG_STAT_SLOW_CLIENTS_CLOSED,
	TG_STAT_GROUP_RETRIES,
	TG_STAT_QUERY_UPDATES,
	TG_STAT_QUERY_RERUNS,
	TG_STAT_TOPIC_MESSAGES,
	TG_STAT_TOPIC_QUEUED,
	TG_STAT_TOPIC_DROPPED,
	TG_STAT_COUNTER_UPDATES,
	TG_STAT_FEED_EVENTS,
	TG_STAT_FEED_LOST,
	TG_STAT_FEED_RESYNC_CLOSES,
	TG_STAT_ACCESS_DENIED,
	TG_STAT_LIMIT_REACHED,
	TG_STAT_RELOADS,
	TG_STAT_QUERY_CANDIDATES,	/* subscriptions a write looked at */
	TG_STAT_QUERY_SUBS,			/* gauge: live query subscriptions */
	TG_STAT_QUERY_SUB_BYTES,	/* gauge: memory they hold */
	TG_STAT_RATE_LIMITED,		/* messages refused by the rate limits */
	TG_STAT_RATE_LIMITED_OPS,	/* ops in them */
	TG_STAT_RATE_LIMIT_CLOSES,	/* connections closed for a sustained flood (1008) */
	TG_STAT_PROCESSOR_BATCHES,	/* reader transactions that served several entry processors */
	TG_STAT_PROCESSORS_BATCHED, /* the entry processors they served */
	TG_STAT_PROCESSOR_BATCH_RETRIES,	/* such transactions that failed: served one by one */
	TG_STAT_QUERY_PAGE_ROWS,	/* records query page reads looked at (the candidates) */
	TG_STAT_FEED_UNWATCHED,		/* feed record events of maps nobody watches: not re-read */
	TG_STAT_COUNT
} TgStat;

extern const char *const tg_stat_names[TG_STAT_COUNT];

/*
 * One slot per live socket.  Written only by the worker; readers use the
 * changecount protocol of PgBackendStatus (odd = being written).
 */
#define TG_SLOT_ADDR_LEN	64
/* a whole identity (sub / userId, never truncated) plus its NUL */
#define TG_SLOT_USER_LEN	(TG_JWT_MAX_ID_BYTES + 1)

typedef struct TgConnSlot
{
	uint32		changecount;
	bool		in_use;
	bool		authenticated;
	uint64		id;
	char		remote[TG_SLOT_ADDR_LEN];
	char		user[TG_SLOT_USER_LEN];
	TimestampTz connected_since;
	uint64		msgs_in;
	uint64		msgs_out;
	uint64		bytes_in;
	uint64		bytes_out;
	uint64		pending_out;
	int32		watched_maps;
	int32		queries;
	int32		topics;
	int32		counters;
	uint64		limit_hits;
	uint64		denied;
	uint64		rate_limited;
} TgConnSlot;

/* One executor process (topgun.executors): 0 = session, 1.. = readers. */
#define TG_MAX_EXECUTORS 33

typedef struct TgExecSlot
{
	pg_atomic_uint32 pid;		/* 0: not running */
	pg_atomic_uint32 busy;		/* running a request / a loop iteration */
	pg_atomic_uint64 requests;	/* requests (reader) or messages (session) handled */
	pg_atomic_uint64 queued;	/* waiting: requests out at it / messages held */
	pg_atomic_uint64 errors;	/* requests answered with an error */
	pg_atomic_uint64 restarts;	/* times it was started again after dying */
	pg_atomic_uint64 reloads;	/* SIGHUPs handled (session executor) */
} TgExecSlot;

typedef struct TgWorkerShared
{
	pg_atomic_uint32 worker_pid;	/* 0 when not running */
	pg_atomic_uint64 wake_sent_ns;	/* CLOCK_MONOTONIC of the last test wake */
	pg_atomic_uint64 wake_last_ns;	/* signal -> loop latency of the last one */
	pg_atomic_uint64 wake_max_ns;
	pg_atomic_uint64 wake_count;
	pg_atomic_uint64 wake_total_ns;
	pg_atomic_uint32 listening; /* 1 while the listener is up */
	pg_atomic_uint32 ready;		/* 1 while serving (extension present) */
	pg_atomic_uint64 stats[TG_STAT_COUNT];
	TgExecSlot	exec[TG_MAX_EXECUTORS];
	int			nslots;
	TgConnSlot	slots[FLEXIBLE_ARRAY_MEMBER];
} TgWorkerShared;

extern TgWorkerShared *tg_worker_shared;

#define TG_SLOT_BEGIN_WRITE(s) \
	do { (s)->changecount++; pg_write_barrier(); } while (0)
#define TG_SLOT_END_WRITE(s) \
	do { pg_write_barrier(); (s)->changecount++; } while (0)

/* metrics_pg.c: the Prometheus counter a stat feeds (src/metrics), if any */
extern void tg_metrics_stat(int stat, uint64 n);

static inline void
tg_stat_add(TgStat s, uint64 n)
{
	if (tg_worker_shared)
		pg_atomic_fetch_add_u64(&tg_worker_shared->stats[s], n);
	tg_metrics_stat((int) s, n);
}

/* for the gauges */
static inline void
tg_stat_sub(TgStat s, uint64 n)
{
	if (tg_worker_shared)
		pg_atomic_fetch_sub_u64(&tg_worker_shared->stats[s], n);
}

static inline TgExecSlot *
tg_exec_slot(int i)
{
	return (tg_worker_shared && i >= 0 && i < TG_MAX_EXECUTORS) ? &tg_worker_shared->exec[i] : NULL;
}

/* ------------------------------------------------------- connections */

/* One queued outbound message; data starts LWS_PRE bytes into buf. */
typedef struct TgOutMsg
{
	struct TgOutMsg *next;
	size_t		len;
	unsigned char buf[FLEXIBLE_ARRAY_MEMBER];
} TgOutMsg;

/* A watched map name (a connection receives events for it). */
typedef struct TgWatch
{
	struct TgWatch *next;
	char	   *query_id;		/* NULL for a SYNC_INIT watch */
	char		map[FLEXIBLE_ARRAY_MEMBER];
} TgWatch;

#define TG_MAX_ROLES 32

/*
 * Process-local connection state (malloc'd, never palloc'd: lws callbacks
 * touch it).  Freed only at the end of a main-loop iteration after the
 * socket closed, so queued inbound messages never point at freed memory.
 */
typedef struct TgConn
{
	struct TgConn *next;		/* all connections (live and dead) */
	struct TgConn *prev;
	struct lws *wsi;			/* NULL once closed */
	uint64		id;
	int			slot;			/* shared-memory slot, -1 if none */
	bool		closed;			/* socket gone */
	bool		closing;		/* close after flushing the queue */
	bool		kill_now;		/* drop queue and close immediately */
	bool		close_sent;		/* close frame handed to lws */
	bool		slot_dirty;		/* counters changed since the slot was written */
	int			close_code;
	char		close_reason[64];

	uint64		gather_epoch;	/* group-gathering round of its last message */

	/* socket process: frames handed to the session executor / handled there */
	uint64		frames_fwd;
	uint64		frames_done;
	bool		sx_open;		/* the executor knows this connection */

	/* session executor: a read is out at a reader; later messages wait */
	bool		busy;
	struct TgInMsg *deferred_head;
	struct TgInMsg *deferred_tail;
	uint64		frames_handled;
	bool		done_dirty;		/* frames_handled changed since last reported */
	int			pending_writes;	/* its batches in the group being gathered */

	/* inbound reassembly */
	unsigned char *rx;
	size_t		rx_len;
	size_t		rx_cap;

	/* outbound queue */
	TgOutMsg   *out_head;
	TgOutMsg   *out_tail;
	size_t		out_bytes;
	size_t		exempt_bytes;	/* of the reply that went into an empty queue, still queued */
	bool		exempt_open;	/* that reply is the last one queued (its parts may follow) */

	/* session */
	bool		authenticated;
	int64		connected_ms;
	int64		last_ping_ms;
	int64		last_rx_ms;		/* a complete frame arrived (liveness, see housekeeping) */
	char		remote[64];
	char		sub[TG_SLOT_USER_LEN];
	char		user_id[TG_SLOT_USER_LEN];
	int64		token_expires_ms;	/* wall clock: the token's exp + leeway; 0 = never */
	int			nroles;
	char	   *roles[TG_MAX_ROLES];
	TgWatch    *watches;
	int			nwatches;

	/* live data (worker_query.c, worker_topics.c, worker_counters.c) */
	struct TgQuerySub *queries;
	int			nqueries;
	struct TgNameSub *topics;
	int			ntopics;
	struct TgNameSub *counters;
	int			ncounters;
	int			nsearches;		/* live search subscriptions */
	int			njournals;		/* journal subscriptions */
	int			processors_out; /* pipelined ENTRY_PROCESS requests at the readers */
	int64		last_active_ms; /* last message but PING (the GC horizon's floor) */
	bool		is_admin;
	uint64		limit_hits;
	uint64		denied;
	uint64		rate_limited;	/* messages refused by the rate limits */
	struct TgRateConn *rate;	/* session executor: its buckets (ratelimit_session.c) */

	/* invalid-traffic accounting */
	int			invalid_total;
	int64		log_window_start_ms;
	int			log_window_count;
	int			log_suppressed;

	/* counters mirrored into the slot */
	uint64		msgs_in;
	uint64		msgs_out;
	uint64		bytes_in;
	uint64		bytes_out;
} TgConn;

/* A complete inbound WebSocket message waiting for the main loop. */
typedef struct TgInMsg
{
	struct TgInMsg *next;
	TgConn	   *conn;
	size_t		len;
	uint64		rx_us;			/* read off the session queue, tg_metrics_now_us() */
	unsigned char *data;		/* malloc'd */
} TgInMsg;

extern TgConn *tg_conns;		/* list head */
extern bool tg_ready;			/* extension present: serve requests */

extern int64 tg_now_ms(void);	/* wall clock (protocol timestamps) */
extern int64 tg_mono_ms(void);	/* monotonic (timeouts) */
extern uint64 tg_mono_ns(void);
extern bool tg_conn_send(TgConn *c, const unsigned char *data, size_t len);
/* a further message of the reply the last tg_conn_send() began (a reader's parts) */
extern bool tg_conn_send_more(TgConn *c, const unsigned char *data, size_t len);
extern void tg_conn_close(TgConn *c, int code, const char *reason);
extern void tg_conn_kill(TgConn *c, int code, const char *reason);
extern void tg_conn_update_slot(TgConn *c);
extern void tg_request_ready_check(void);

/* worker_auth.c: JWT configuration (socket process and session executor) */
extern bool tg_auth_configure(bool first);
extern void tg_auth_release(void);

/* the session executor (src/executor): what its loop calls */
extern void tg_proto_process(TgInMsg *list);
extern void tg_proto_conn_gone(TgConn *c);
extern void tg_live_conn_gone(TgConn *c);
extern void tg_live_ready(bool ready);
extern void tg_live_poll(bool woken);

/* ---------------------------------------------------------- main loop */
extern PGDLLEXPORT void tg_worker_main(Datum arg);

#endif							/* TG_WORKER_H */
