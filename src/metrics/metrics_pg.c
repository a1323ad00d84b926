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

bool		tg_metrics_enabled = true;
const TgNetList *tg_metrics_allow = NULL;
static char *metrics_listen_addresses = NULL;

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
