/*
 * metrics_pg.c — GUCs and shared memory of the metrics registry.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/guc.h"

#include "topgun.h"
#include "metrics/metrics.h"
#include "metrics/metrics_pg.h"
#include "worker/worker.h"

bool		tg_metrics_enabled = true;
const TgNetList *tg_metrics_allow = NULL;
static char *metrics_listen_addresses = NULL;

/*
 * The counter each topgun.worker_stats stat feeds (+1; 0 = none), so that
 * every tg_stat_add() is also a Prometheus sample.  Stats whose metric
 * carries a label (close code, refusal, auth failure, message type, reject
 * reason) are counted where the label is known, and have none here; so has
 * any stat added later until it is listed.
 */
#define FEEDS(m) ((m) + 1)
static const int stat_metric[TG_STAT_COUNT] = {
	[TG_STAT_AUTH_OK] = FEEDS(TG_M_AUTH_OK),
	[TG_STAT_MSG_INVALID] = FEEDS(TG_M_MSG_INVALID),
	[TG_STAT_OPS_APPLIED] = FEEDS(TG_M_OPS_APPLIED),
	[TG_STAT_COMMITS] = FEEDS(TG_M_COMMITS),
	[TG_STAT_ACKS] = FEEDS(TG_M_ACKS),
	[TG_STAT_EVENTS_SENT] = FEEDS(TG_M_EVENTS_SENT),
	[TG_STAT_SLOW_CLIENTS_CLOSED] = FEEDS(TG_M_SLOW_CLIENTS),
	[TG_STAT_GROUP_RETRIES] = FEEDS(TG_M_GROUP_RETRIES),
	[TG_STAT_QUERY_UPDATES] = FEEDS(TG_M_QUERY_UPDATES),
	[TG_STAT_QUERY_RERUNS] = FEEDS(TG_M_QUERY_RERUNS),
	[TG_STAT_TOPIC_MESSAGES] = FEEDS(TG_M_TOPIC_MESSAGES),
	[TG_STAT_TOPIC_QUEUED] = FEEDS(TG_M_TOPIC_QUEUED),
	[TG_STAT_TOPIC_DROPPED] = FEEDS(TG_M_TOPIC_DROPPED),
	[TG_STAT_COUNTER_UPDATES] = FEEDS(TG_M_COUNTER_UPDATES),
	[TG_STAT_FEED_EVENTS] = FEEDS(TG_M_FEED_EVENTS),
	[TG_STAT_FEED_LOST] = FEEDS(TG_M_FEED_LOST),
	[TG_STAT_FEED_RESYNC_CLOSES] = FEEDS(TG_M_FEED_RESYNC_CLOSES),
	[TG_STAT_ACCESS_DENIED] = FEEDS(TG_M_ACCESS_DENIED),
	[TG_STAT_LIMIT_REACHED] = FEEDS(TG_M_LIMITS_REACHED),
	[TG_STAT_RATE_LIMITED] = FEEDS(TG_M_RATE_LIMITED),
};

void
tg_metrics_stat(int stat, uint64 n)
{
	if (stat >= 0 && stat < TG_STAT_COUNT && stat_metric[stat] > 0)
		tg_metrics_inc((TgMetric) (stat_metric[stat] - 1), 0, n);
}

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static bool
check_listen_addresses(char **newval, void **extra, GucSource source)
{
	TgNetList  *l = malloc(sizeof(TgNetList));	/* the GUC machinery free()s extra */
	char		err[160];

	if (l == NULL)
		return false;
	if (!tg_netlist_parse(*newval, l, err, sizeof(err)))
	{
		GUC_check_errdetail("%s", err);
		free(l);
		return false;
	}
	*extra = l;
	return true;
}

static void
assign_listen_addresses(const char *newval, void *extra)
{
	tg_metrics_allow = extra;
}

static void
metrics_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(sizeof(TgMetricsShared));
}

static void
metrics_shmem_startup(void)
{
	bool		found;
	TgMetricsShared *m;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	m = ShmemInitStruct("topgun metrics", sizeof(TgMetricsShared), &found);
	if (!tg_metrics_attach(m, !found, TG_EXTVERSION, PG_VERSION))
		elog(FATAL, "topgun: the metrics families do not fit TgMetricsShared");
	LWLockRelease(AddinShmemInitLock);
}

void
tg_metrics_init(void)
{
	DefineCustomBoolVariable("topgun.metrics",
							 "Serve GET /metrics (Prometheus) on the sync server's port.",
							 NULL, &tg_metrics_enabled, true,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("topgun.metrics_listen_addresses",
							   "Peers allowed to GET /metrics: addresses, CIDRs, 'localhost', '*'.",
							   "Comma-separated; others get 403.  /health is open to every peer.",
							   &metrics_listen_addresses, "localhost",
							   PGC_SIGHUP, 0,
							   check_listen_addresses, assign_listen_addresses, NULL);

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = metrics_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = metrics_shmem_startup;
}
