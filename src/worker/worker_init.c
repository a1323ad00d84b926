/*
 * worker_init.c — GUCs, shared memory and registration of the sync server,
 * plus the SQL-callable views of its shared state (topgun.connections,
 * topgun.worker_stats).
 */
#include "postgres.h"

#include <signal.h>
#include <time.h>

#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "topgun.h"
#include "ipc/ipc.h"
#include "worker/worker.h"

/* GUC storage */
int			tg_port = 8080;
char	   *tg_listen_addresses = NULL;
char	   *tg_database = NULL;
int			tg_max_connections = 2000;
int			tg_max_message_bytes = 16 * 1024 * 1024;
int			tg_max_outbound_bytes = 8 * 1024 * 1024;
int			tg_auth_timeout_ms = 10000;
int			tg_heartbeat_timeout_ms = 20000;
int			tg_invalid_message_budget = 100;
int			tg_jwt_algorithm = 0;
char	   *tg_jwt_secret = NULL;
char	   *tg_jwt_public_key_file = NULL;
char	   *tg_jwt_secret_file = NULL;
int			tg_jwt_leeway_s = 30;
int			tg_jwt_require_exp = TG_AUTO;
char	   *tg_ssl_cert_file = NULL;
char	   *tg_ssl_key_file = NULL;
int			tg_group_commit_max_ops = 20000;
int			tg_group_commit_delay_us = 2000;
int			tg_max_subscriptions_per_connection = 1000;
int			tg_max_topics_per_connection = 100;
int			tg_topic_queue_size = 1000;
int			tg_max_query_results = 10000;
int			tg_executors = 3;
char	   *tg_advertise_url = NULL;

TgWorkerShared *tg_worker_shared = NULL;

/* Per process: which one of the server's processes this is. */
TgRole		tg_role = TG_ROLE_NONE;

/* Per process: the socket process's sockets, or an executor's mirrors of them. */
TgConn	   *tg_conns = NULL;
bool		tg_ready = false;

const char *const tg_stat_names[TG_STAT_COUNT] = {
	"connections_accepted",
	"connections_refused",
	"auth_ok",
	"auth_failed",
	"messages_accepted",
	"messages_invalid",
	"ops_applied",
	"ops_rejected",
	"commits",
	"acks",
	"events_sent",
	"slow_clients_closed",
	"group_commit_retries",
	"query_updates",
	"query_reruns",
	"topic_messages",
	"topic_queued",
	"topic_dropped",
	"counter_updates",
	"feed_events",
	"feed_lost",
	"feed_resync_closes",
	"access_denied",
	"limits_reached",
	"reloads",
	"query_candidates",
	"query_subscriptions",
	"query_subscription_bytes",
	"rate_limited",
	"rate_limited_ops",
	"rate_limit_closes",
	"processor_batches",
	"processors_batched",
	"processor_batch_retries",
	"query_page_rows",
	"feed_events_unwatched",
};

static const struct config_enum_entry jwt_alg_options[] = {
	{"HS256", 0, false},
	{"RS256", 1, false},
	{"ES256", 2, false},
	{"hs256", 0, true},
	{"rs256", 1, true},
	{"es256", 2, true},
	{NULL, 0, false}
};

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static Size
tg_worker_shmem_size(void)
{
	return add_size(offsetof(TgWorkerShared, slots),
					mul_size(sizeof(TgConnSlot), tg_max_connections));
}

static void
tg_worker_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(tg_worker_shmem_size());
}

static void
tg_worker_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	tg_worker_shared = ShmemInitStruct("topgun sync server",
									   tg_worker_shmem_size(), &found);
	if (!found)
	{
		memset(tg_worker_shared, 0, tg_worker_shmem_size());
		pg_atomic_init_u32(&tg_worker_shared->worker_pid, 0);
		pg_atomic_init_u32(&tg_worker_shared->listening, 0);
		pg_atomic_init_u32(&tg_worker_shared->ready, 0);
		pg_atomic_init_u64(&tg_worker_shared->wake_sent_ns, 0);
		pg_atomic_init_u64(&tg_worker_shared->wake_last_ns, 0);
		pg_atomic_init_u64(&tg_worker_shared->wake_max_ns, 0);
		pg_atomic_init_u64(&tg_worker_shared->wake_count, 0);
		pg_atomic_init_u64(&tg_worker_shared->wake_total_ns, 0);
		for (int i = 0; i < TG_STAT_COUNT; i++)
			pg_atomic_init_u64(&tg_worker_shared->stats[i], 0);
		for (int i = 0; i < TG_MAX_EXECUTORS; i++)
		{
			TgExecSlot *x = &tg_worker_shared->exec[i];

			pg_atomic_init_u32(&x->pid, 0);
			pg_atomic_init_u32(&x->busy, 0);
			pg_atomic_init_u64(&x->requests, 0);
			pg_atomic_init_u64(&x->queued, 0);
			pg_atomic_init_u64(&x->errors, 0);
			pg_atomic_init_u64(&x->restarts, 0);
			pg_atomic_init_u64(&x->reloads, 0);
		}
		tg_worker_shared->nslots = tg_max_connections;
	}
	LWLockRelease(AddinShmemInitLock);
}

void
tg_worker_init(void)
{
	BackgroundWorker worker;

	DefineCustomIntVariable("topgun.port",
							"TCP port of the WebSocket sync server (0 disables the server).",
							NULL, &tg_port, 8080, 0, 65535,
							PGC_POSTMASTER, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("topgun.listen_addresses",
							   "Address or host name the sync server binds to ('*' = all interfaces).",
							   NULL, &tg_listen_addresses, "localhost",
							   PGC_POSTMASTER, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("topgun.database",
							   "Database the sync server connects to.",
							   NULL, &tg_database, "postgres",
							   PGC_POSTMASTER, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("topgun.max_connections",
							"Maximum number of concurrent WebSocket connections.",
							"Also sizes the shared connection table.",
							&tg_max_connections, 2000, 1, 100000,
							PGC_POSTMASTER, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("topgun.max_message_bytes",
							"Largest accepted WebSocket message (after reassembly).",
							NULL, &tg_max_message_bytes, 16 * 1024 * 1024,
							1024, INT_MAX / 2,
							PGC_SIGHUP, GUC_UNIT_BYTE, NULL, NULL, NULL);
	DefineCustomIntVariable("topgun.max_outbound_bytes",
							"Per-connection cap on queued outbound bytes; a client exceeding it is disconnected.",
							NULL, &tg_max_outbound_bytes, 8 * 1024 * 1024,
							64 * 1024, INT_MAX / 2,
							PGC_SIGHUP, GUC_UNIT_BYTE, NULL, NULL, NULL);
	DefineCustomIntVariable("topgun.auth_timeout_ms",
							"Time an unauthenticated connection may stay open.",
							NULL, &tg_auth_timeout_ms, 10000, 100, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("topgun.heartbeat_timeout_ms",
							"Authenticated connections without a PING for this long are closed.",
							NULL, &tg_heartbeat_timeout_ms, 20000, 100, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("topgun.invalid_message_budget",
							"Invalid messages tolerated per connection before it is closed (1008).",
							NULL, &tg_invalid_message_budget, 100, 0, INT_MAX,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("topgun.max_subscriptions_per_connection",
							"Maximum number of query and counter subscriptions per connection.",
							"Beyond it QUERY_SUB / COUNTER_REQUEST get ERROR 400 'Subscription limit reached'.",
							&tg_max_subscriptions_per_connection, 1000, 1, 1000000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("topgun.max_topics_per_connection",
							"Maximum number of topic subscriptions per connection.",
							"Beyond it TOPIC_SUB gets ERROR 400 'Subscription limit reached'.",
							&tg_max_topics_per_connection, 100, 1, 100000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("topgun.topic_queue_size",
							"Messages kept per offline topic subscriber (token sub + topic).",
							"When full the oldest message is dropped and counted in topgun.topic_queues.",
							&tg_topic_queue_size, 1000, 0, 10000000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("topgun.max_query_results",
							"Maximum number of records a live query subscription may track.",
							"A QUERY_SUB whose result is larger gets ERROR 413; add a limit.",
							&tg_max_query_results, 10000, 1, 10000000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("topgun.executors",
							"Number of executor processes of the sync server (one session executor, the rest readers).",
							"Each is a background worker: max_worker_processes must leave room for them.",
							&tg_executors, 3, 2, TG_MAX_READERS + 1,
							PGC_POSTMASTER, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("topgun.advertise_url",
							   "WebSocket URL cluster-mode clients are told to dial (PARTITION_MAP).",
							   "Empty: ws://<topgun.listen_addresses>:<topgun.port>.  Set it to the URL clients "
							   "reach this node at (behind a proxy or a name); in a mesh each node advertises its own.",
							   &tg_advertise_url, "",
							   PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("topgun.group_commit_max_ops",
							"Maximum number of ops applied in one group-commit transaction.",
							NULL, &tg_group_commit_max_ops, 20000, 1, 1000000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("topgun.group_commit_delay",
							"Longest time, in microseconds, the sync server waits for more input before committing a group.",
							"The wait is a quarter of the previous group's processing time, capped by this "
							"setting, and ends as soon as input stops arriving; 0 commits what is ready at once.",
							&tg_group_commit_delay_us, 2000, 0, 100000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomEnumVariable("topgun.jwt_algorithm",
							 "JWT signature algorithm accepted (pinned; never taken from the token).",
							 NULL, &tg_jwt_algorithm, 0, jwt_alg_options,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("topgun.jwt_secret",
							   "HS256 shared secret for client JWTs.",
							   NULL, &tg_jwt_secret, "",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("topgun.jwt_secret_file",
							   "File holding the HS256 secret (overrides topgun.jwt_secret).",
							   "Keeps the secret out of postgresql.conf and out of the reload log line.",
							   &tg_jwt_secret_file, "",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY, NULL, NULL, NULL);
	DefineCustomStringVariable("topgun.jwt_public_key_file",
							   "PEM public key file for RS256/ES256 client JWTs.",
							   NULL, &tg_jwt_public_key_file, "",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY, NULL, NULL, NULL);
	DefineCustomIntVariable("topgun.jwt_leeway_s",
							"Clock leeway in seconds for JWT exp/nbf checks.",
							NULL, &tg_jwt_leeway_s, 30, 0, 3600,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomEnumVariable("topgun.jwt_require_exp",
							 "Refuse client JWTs without an exp claim.",
							 "auto: on when topgun.production is on, else off.",
							 &tg_jwt_require_exp, TG_AUTO, tg_auto_bool_options,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable("topgun.production",
							 "Production mode: refuse to serve with a missing, default or weak JWT secret.",
							 NULL, &tg_production, false,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("topgun.ssl_cert_file",
							   "Certificate file for wss:// (empty = plain ws://).",
							   NULL, &tg_ssl_cert_file, "",
							   PGC_POSTMASTER, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("topgun.ssl_key_file",
							   "Private key file for wss://.",
							   NULL, &tg_ssl_key_file, "",
							   PGC_POSTMASTER, GUC_SUPERUSER_ONLY, NULL, NULL, NULL);

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = tg_worker_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = tg_worker_shmem_startup;

	if (tg_port == 0 || IsBinaryUpgrade)
		return;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 2;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "topgun");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "tg_worker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "topgun sync server");
	snprintf(worker.bgw_type, BGW_MAXLEN, "topgun sync server");
	worker.bgw_main_arg = (Datum) 0;
	worker.bgw_notify_pid = 0;
	RegisterBackgroundWorker(&worker);
}

/* ------------------------------------------------------------------ SQL */

PG_FUNCTION_INFO_V1(tg_connections);
PG_FUNCTION_INFO_V1(tg_worker_stats);
PG_FUNCTION_INFO_V1(tg_worker_pid);
PG_FUNCTION_INFO_V1(tg_executors_info);
PG_FUNCTION_INFO_V1(tg_worker_wake);

/*
 * topgun.worker_wake(): send the worker its wake-up signal (SIGUSR2) and
 * record the send time, so the worker can measure signal-to-loop latency.
 * Returns false when no worker is running.
 */
Datum
tg_worker_wake(PG_FUNCTION_ARGS)
{
	uint32		pid;
	struct timespec ts;

	if (tg_worker_shared == NULL)
		PG_RETURN_BOOL(false);
	pid = pg_atomic_read_u32(&tg_worker_shared->worker_pid);
	if (pid == 0)
		PG_RETURN_BOOL(false);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	pg_atomic_write_u64(&tg_worker_shared->wake_sent_ns,
						(uint64) ts.tv_sec * 1000000000 + ts.tv_nsec);
	PG_RETURN_BOOL(kill((pid_t) pid, SIGUSR2) == 0);
}

/*
 * topgun.connections(): one row per live socket, read with the changecount
 * protocol so a row is never torn.
 */
Datum
tg_connections(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	if (tg_worker_shared == NULL)
		PG_RETURN_VOID();

	for (int i = 0; i < tg_worker_shared->nslots; i++)
	{
		volatile TgConnSlot *s = &tg_worker_shared->slots[i];
		TgConnSlot	copy;
		Datum		values[18];
		bool		nulls[18];
		int			tries = 0;

		for (;;)
		{
			uint32		before = s->changecount;

			pg_read_barrier();
			memcpy(&copy, (const void *) s, sizeof(copy));
			pg_read_barrier();
			if (before == s->changecount && (before & 1) == 0)
				break;
			if (++tries > 1000)
				break;
			CHECK_FOR_INTERRUPTS();
		}
		if (!copy.in_use)
			continue;
		copy.remote[TG_SLOT_ADDR_LEN - 1] = '\0';
		copy.user[TG_SLOT_USER_LEN - 1] = '\0';

		memset(nulls, 0, sizeof(nulls));
		values[0] = Int64GetDatum((int64) copy.id);
		values[1] = CStringGetTextDatum(copy.remote);
		if (copy.user[0])
			values[2] = CStringGetTextDatum(copy.user);
		else
			nulls[2] = true;
		values[3] = BoolGetDatum(copy.authenticated);
		values[4] = TimestampTzGetDatum(copy.connected_since);
		values[5] = Int64GetDatum((int64) copy.msgs_in);
		values[6] = Int64GetDatum((int64) copy.msgs_out);
		values[7] = Int64GetDatum((int64) copy.bytes_in);
		values[8] = Int64GetDatum((int64) copy.bytes_out);
		values[9] = Int64GetDatum((int64) copy.pending_out);
		values[10] = Int32GetDatum(copy.watched_maps);
		values[11] = Int32GetDatum(i);
		values[12] = Int32GetDatum(copy.queries);
		values[13] = Int32GetDatum(copy.topics);
		values[14] = Int32GetDatum(copy.counters);
		values[15] = Int64GetDatum((int64) copy.limit_hits);
		values[16] = Int64GetDatum((int64) copy.denied);
		values[17] = Int64GetDatum((int64) copy.rate_limited);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	PG_RETURN_VOID();
}

/* topgun.worker_stats(): (name, value) rows of the shared counters. */
Datum
tg_worker_stats(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Datum		values[2];
	bool		nulls[2] = {false, false};

	InitMaterializedSRF(fcinfo, 0);
	for (int i = 0; i < TG_STAT_COUNT; i++)
	{
		uint64		v = tg_worker_shared ? pg_atomic_read_u64(&tg_worker_shared->stats[i]) : 0;

		/*
		 * reloads: SIGHUPs handled by every process that reads settings --
		 * the socket process and every running executor, the lowest count.
		 */
		if (i == TG_STAT_RELOADS && tg_worker_shared)
			for (int x = 0; x < TG_MAX_EXECUTORS; x++)
				if (pg_atomic_read_u32(&tg_worker_shared->exec[x].pid) != 0)
					v = Min(v, pg_atomic_read_u64(&tg_worker_shared->exec[x].reloads));
		values[0] = CStringGetTextDatum(tg_stat_names[i]);
		values[1] = Int64GetDatum((int64) v);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	if (tg_worker_shared)
	{
		int			live = 0;

		for (int i = 0; i < tg_worker_shared->nslots; i++)
			if (tg_worker_shared->slots[i].in_use)
				live++;
		values[0] = CStringGetTextDatum("connections_open");
		values[1] = Int64GetDatum(live);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		values[0] = CStringGetTextDatum("listening");
		values[1] = Int64GetDatum(pg_atomic_read_u32(&tg_worker_shared->listening));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		values[0] = CStringGetTextDatum("ready");
		values[1] = Int64GetDatum(pg_atomic_read_u32(&tg_worker_shared->ready));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		values[0] = CStringGetTextDatum("wake_count");
		values[1] = Int64GetDatum((int64) pg_atomic_read_u64(&tg_worker_shared->wake_count));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		values[0] = CStringGetTextDatum("wake_last_us");
		values[1] = Int64GetDatum((int64) pg_atomic_read_u64(&tg_worker_shared->wake_last_ns) / 1000);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		values[0] = CStringGetTextDatum("wake_avg_us");
		{
			uint64		cnt = pg_atomic_read_u64(&tg_worker_shared->wake_count);

			values[1] = Int64GetDatum(cnt ? (int64) (pg_atomic_read_u64(&tg_worker_shared->wake_total_ns) / cnt / 1000) : 0);
		}
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		values[0] = CStringGetTextDatum("wake_max_us");
		values[1] = Int64GetDatum((int64) pg_atomic_read_u64(&tg_worker_shared->wake_max_ns) / 1000);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	PG_RETURN_VOID();
}

/* topgun.worker_pid(): pid of the running sync server, NULL if none. */
Datum
tg_worker_pid(PG_FUNCTION_ARGS)
{
	uint32		pid = tg_worker_shared ? pg_atomic_read_u32(&tg_worker_shared->worker_pid) : 0;

	if (pid == 0)
		PG_RETURN_NULL();
	PG_RETURN_INT32((int32) pid);
}

/*
 * topgun.executors(): one row per executor process of the sync server
 * (0 = the session executor, 1.. = readers), from shared memory.
 */
Datum
tg_executors_info(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			n = tg_executors_total();

	InitMaterializedSRF(fcinfo, 0);
	if (tg_worker_shared == NULL)
		PG_RETURN_VOID();
	for (int i = 0; i < n && i < TG_MAX_EXECUTORS; i++)
	{
		TgExecSlot *x = &tg_worker_shared->exec[i];
		Datum		values[8];
		bool		nulls[8] = {0};
		uint32		pid = pg_atomic_read_u32(&x->pid);

		values[0] = Int32GetDatum(i);
		values[1] = CStringGetTextDatum(i == 0 ? "session" : "reader");
		values[2] = Int32GetDatum((int32) pid);
		nulls[2] = pid == 0;
		values[3] = CStringGetTextDatum(pid == 0 ? "stopped" :
										pg_atomic_read_u32(&x->busy) ? "running" : "idle");
		values[4] = Int64GetDatum((int64) pg_atomic_read_u64(&x->requests));
		values[5] = Int64GetDatum((int64) pg_atomic_read_u64(&x->queued));
		values[6] = Int64GetDatum((int64) pg_atomic_read_u64(&x->errors));
		values[7] = Int64GetDatum((int64) pg_atomic_read_u64(&x->restarts));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	PG_RETURN_VOID();
}

int
tg_executors_total(void)
{
	return Max(2, tg_executors);
}

int64
tg_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64
tg_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Monotonic milliseconds: for timeouts, immune to wall-clock jumps. */
int64
tg_mono_ms(void)
{
	return (int64) (tg_mono_ns() / 1000000);
}
