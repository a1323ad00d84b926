/*
 * metrics.h — the sync server's metrics registry (PostgreSQL-free).
 *
 * One TgMetricsShared block lives in shared memory (metrics_pg.c creates it
 * and points tg_metrics at it); every process of the server (the socket
 * process, executors, backends) updates it with relaxed atomics, and the
 * renderer reads nothing else, so a scrape never waits for SQL.
 *
 * Families and their label sets are fixed at compile time (metrics.c holds
 * the table): a label index out of range is clamped to the family's last
 * label, so hostile input can never grow the registry.  Executors, whose
 * number is only known at run time, register into a fixed array of slots.
 *
 * Every update function is a no-op while tg_metrics is NULL (unit tests,
 * processes started before shared memory is attached).
 */
#ifndef TG_METRICS_H
#define TG_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire/msgpack.h"

/* Counter, gauge and histogram families (names in metrics.c). */
typedef enum TgMetric
{
	/* counters */
	TG_M_CONN_OPENED = 0,
	TG_M_CONN_CLOSED,			/* label: close code (tg_metrics_conn_closed) */
	TG_M_CONN_REFUSED,			/* label: TgRefuseReason */
	TG_M_AUTH_OK,
	TG_M_AUTH_FAILED,			/* label: TgJwtResult - 1, or TG_AUTH_NOT_CONFIGURED */
	TG_M_MSG_RECEIVED,			/* label: TgMsgType */
	TG_M_MSG_INVALID,
	TG_M_OPS_APPLIED,
	TG_M_OPS_REJECTED,			/* label: TgRejectReason */
	TG_M_COMMITS,
	TG_M_GROUP_RETRIES,
	TG_M_ACKS,
	TG_M_EVENTS_SENT,
	TG_M_SLOW_CLIENTS,
	TG_M_ACCESS_DENIED,
	TG_M_LIMITS_REACHED,
	TG_M_RATE_LIMITED,
	TG_M_QUERY_UPDATES,
	TG_M_QUERY_RERUNS,
	TG_M_COUNTER_UPDATES,
	TG_M_TOPIC_MESSAGES,
	TG_M_TOPIC_QUEUED,
	TG_M_TOPIC_DROPPED,
	TG_M_FEED_EVENTS,
	TG_M_FEED_LOST,
	TG_M_FEED_OVERFLOWS,
	TG_M_FEED_RESYNC_CLOSES,
	/* gauges */
	TG_M_CONN_OPEN,
	TG_M_OUTBOUND_BYTES,
	TG_M_SUBSCRIPTIONS,			/* label: TgSubKind */
	TG_M_FEED_LAG_BYTES,
	TG_M_READY,
	/* histograms */
	TG_M_GROUP_SIZE,			/* ops per group commit */
	TG_M_COMMIT_SECONDS,		/* observed in microseconds */
	TG_M_ACK_SECONDS,			/* observed in microseconds */
	TG_M_COUNT_
} TgMetric;

typedef enum TgRefuseReason
{
	TG_REFUSE_NOT_READY = 0,
	TG_REFUSE_OVERLOADED
} TgRefuseReason;

/* Auth failure labels are TgJwtResult - 1 (malformed ... bad_claims), then: */
#define TG_AUTH_NOT_CONFIGURED 7

typedef enum TgRejectReason
{
	TG_REJECT_INVALID = 0,		/* the op or its value does not parse */
	TG_REJECT_ACCESS_DENIED,
	TG_REJECT_ERROR,			/* applying it failed (constraint, limit, ...) */
	TG_REJECT_RESOLVER,			/* a conflict resolver refused it */
	TG_REJECT_RATE_LIMITED		/* over the rate limits (the whole message) */
} TgRejectReason;

typedef enum TgSubKind
{
	TG_SUB_QUERY = 0,
	TG_SUB_TOPIC,
	TG_SUB_COUNTER,
	TG_SUB_SEARCH
} TgSubKind;

/* What GET /health reports. */
typedef enum TgHealth
{
	TG_HEALTH_NOT_READY = 0,	/* starting, recovery, not listening yet */
	TG_HEALTH_READY,
	TG_HEALTH_EXTENSION_MISSING,
	TG_HEALTH_EXTENSION_OUTDATED,
	TG_HEALTH_SHUTTING_DOWN
} TgHealth;

#define TG_METRICS_MAX_VALUES		256
#define TG_METRICS_MAX_HIST_SLOTS	64
#define TG_METRICS_MAX_EXECUTORS	64
#define TG_METRICS_EXECUTOR_NAME	32	/* bytes, including the NUL */
#define TG_METRICS_VERSION_LEN		64

typedef struct TgExecutorSlot
{
	uint32_t	state;			/* 0 free, 1 being claimed, 2 live */
	char		name[TG_METRICS_EXECUTOR_NAME];
	uint64_t	queue_depth;
} TgExecutorSlot;

typedef struct TgMetricsShared
{
	uint64_t	values[TG_METRICS_MAX_VALUES];	/* counters and gauges */
	uint64_t	hist[TG_METRICS_MAX_HIST_SLOTS];	/* buckets, then sum, per histogram */
	uint32_t	health;			/* TgHealth */
	uint32_t	server_pid;		/* socket process, 0 if none */
	int64_t		server_started;	/* unix seconds, 0 if none */
	char		library_version[TG_METRICS_VERSION_LEN];
	char		postgres_version[TG_METRICS_VERSION_LEN];
	char		extension_version[TG_METRICS_VERSION_LEN];	/* as installed, "" if none */
	TgExecutorSlot executors[TG_METRICS_MAX_EXECUTORS];
} TgMetricsShared;

extern TgMetricsShared *tg_metrics;

/*
 * Point tg_metrics at `m`; when `init`, zero it and record the versions.
 * Returns false if the compile-time families do not fit the block (a
 * programming error, caught by the unit test).
 */
extern bool tg_metrics_attach(TgMetricsShared *m, bool init,
							  const char *library_version, const char *postgres_version);

/* Counters (n added) and gauges (set / added); label 0 for unlabelled ones. */
extern void tg_metrics_inc(TgMetric m, int label, uint64_t n);
extern void tg_metrics_set(TgMetric m, int label, int64_t v);
extern void tg_metrics_add(TgMetric m, int label, int64_t delta);

/* Current value of a counter or gauge series (0 without a registry). */
extern int64_t tg_metrics_get(TgMetric m, int label);

/* One closed WebSocket, by close code (unknown codes count as "other"). */
extern void tg_metrics_conn_closed(int code);

/* Histograms: value in the family's base unit (ops, or microseconds). */
extern void tg_metrics_observe(TgMetric m, uint64_t value);

/* CLOCK_MONOTONIC in microseconds, for the duration histograms. */
extern uint64_t tg_metrics_now_us(void);

/* Health as seen by the socket process; extension_version may be NULL. */
extern void tg_metrics_set_health(TgHealth h, const char *extension_version);
extern void tg_metrics_set_server(uint32_t pid, int64_t started_unix);

/*
 * Executors: register under a name (characters outside [A-Za-z0-9_.-] become
 * '_'; the same name gets its old slot back), publish the depth of its input
 * queue (requests or messages waiting for it), unregister at exit.  Any
 * process may do either.  register returns -1 when all slots are taken;
 * set/unregister ignore -1.
 */
extern int	tg_metrics_executor_register(const char *name);
extern void tg_metrics_executor_set(int slot, uint64_t depth);
extern void tg_metrics_executor_unregister(int slot);

/*
 * Prometheus text exposition 0.0.4 of the whole registry, appended to out.
 * Reads only tg_metrics; never blocks.  False if out failed (cap, OOM).
 */
extern bool tg_metrics_render(MpBuf *out);

#endif							/* TG_METRICS_H */
