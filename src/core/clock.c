/*
 * clock.c — the node-wide hybrid logical clock.
 *
 * One clock per server, in shared memory, so hlc_now() is strictly
 * increasing across every backend and the sync worker.  The update rule is
 * TopGun's HLC.update(); the drift check follows its strict mode, driven by
 * topgun.strict_clock and topgun.max_drift_ms.
 */
#include "topgun.h"
#include "core/hlc.h"

#include <limits.h>

#include "access/xlog.h"
#include "storage/lwlock.h"
#include "utils/builtins.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

typedef struct TgClockShared
{
	slock_t		mutex;
	int64		last_millis;
	int64		counter;
} TgClockShared;

static TgClockShared *clock_shared = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static char *tg_node_id_guc = NULL;
static int	tg_max_drift_ms = 60000;
/* topgun.strict_clock: on, off, or auto (= on exactly when topgun.production) */
static int	tg_strict_clock_mode = TG_AUTO;

/* Whether remote timestamps beyond topgun.max_drift_ms are refused. */
bool
tg_clock_strict(void)
{
	return tg_auto_on(tg_strict_clock_mode);
}

/* Drift warnings are rate limited per process: one line per 10 s, then a count. */
#define DRIFT_WARN_INTERVAL_MS 10000
static int64 drift_warn_last = 0;
static int64 drift_warn_suppressed = 0;

/* Derived default node id, computed once per process. */
static char derived_node_id[32];

PG_FUNCTION_INFO_V1(hlc_now);
PG_FUNCTION_INFO_V1(hlc_update);
PG_FUNCTION_INFO_V1(tg_node_id_sql);

static int64
wall_millis(void)
{
	TimestampTz now = GetCurrentTimestamp();

	/* TimestampTz is microseconds since 2000-01-01. */
	return now / 1000 + ((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY * 1000);
}

static bool
check_node_id(char **newval, void **extra, GucSource source)
{
	const char *v = *newval;
	size_t		len = v ? strlen(v) : 0;

	if (len == 0)
		return true;			/* empty = derive from the system identifier */
	if (len > TG_MAX_NODE_BYTES)
	{
		GUC_check_errdetail("topgun.node_id must be at most %d bytes.", TG_MAX_NODE_BYTES);
		return false;
	}
	if (strchr(v, ':') != NULL)
	{
		GUC_check_errdetail("topgun.node_id must not contain \":\".");
		return false;
	}
	return true;
}

const char *
tg_node_id(void)
{
	if (tg_node_id_guc != NULL && tg_node_id_guc[0] != '\0')
		return tg_node_id_guc;
	if (derived_node_id[0] == '\0')
		snprintf(derived_node_id, sizeof(derived_node_id), "pg-%016llx",
				 (unsigned long long) GetSystemIdentifier());
	return derived_node_id;
}

static void
clock_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(TgClockShared)));
}

static void
clock_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	clock_shared = ShmemInitStruct("topgun node clock", sizeof(TgClockShared), &found);
	if (!found)
	{
		SpinLockInit(&clock_shared->mutex);
		clock_shared->last_millis = 0;
		clock_shared->counter = 0;
	}
	LWLockRelease(AddinShmemInitLock);
}

void
tg_clock_init(void)
{
	DefineCustomStringVariable("topgun.node_id",
							   "Node id stamped into timestamps this server generates.",
							   "Empty means 'pg-' followed by the cluster's system identifier. "
							   "Must be unique among all peers that exchange data.",
							   &tg_node_id_guc, "", PGC_SIGHUP, 0,
							   check_node_id, NULL, NULL);
	DefineCustomIntVariable("topgun.max_drift_ms",
							"How far ahead of the local wall clock a remote timestamp may be.",
							NULL, &tg_max_drift_ms, 60000, 0, INT_MAX,
							PGC_SUSET, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomEnumVariable("topgun.strict_clock",
							 "Reject remote timestamps further than topgun.max_drift_ms ahead.",
							 "on: refuse them; off: accept them with a rate-limited warning; "
							 "auto: on when topgun.production is on, else off.",
							 &tg_strict_clock_mode, TG_AUTO, tg_auto_bool_options,
							 PGC_SUSET, 0, NULL, NULL, NULL);

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = clock_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = clock_shmem_startup;
}

static TgClockShared *
get_clock(void)
{
	if (clock_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("topgun node clock is not initialised"),
				 errhint("topgun must be listed in shared_preload_libraries.")));
	return clock_shared;
}

/*
 * The counter must stay a safe JS integer.  A burst of 2^53 timestamps in one
 * millisecond is impossible, but we still never wrap: the clock borrows the
 * next millisecond instead.
 */
static inline void
bump_counter(TgClockShared *c)
{
	if (c->counter >= TG_HLC_MAX_MILLIS)
	{
		c->last_millis++;
		c->counter = 0;
	}
	else
		c->counter++;
}

TgHlc *
tg_clock_now(void)
{
	TgClockShared *c = get_clock();
	int64		sys = wall_millis();
	int64		m;
	int64		k;
	const char *node = tg_node_id();

	SpinLockAcquire(&c->mutex);
	if (sys > c->last_millis)
	{
		c->last_millis = sys;
		c->counter = 0;
	}
	else
		bump_counter(c);
	m = c->last_millis;
	k = c->counter;
	SpinLockRelease(&c->mutex);
	return tg_hlc_make(m, k, node, strlen(node));
}

/*
 * The clock's current millis.  A remote time that is not ahead of the clock
 * cannot move it, so only times beyond it face the drift check; this also
 * keeps our own timestamps (from hlc_now()) out of the check.
 */
static int64
clock_millis(TgClockShared *c)
{
	int64		m;

	SpinLockAcquire(&c->mutex);
	m = c->last_millis;
	SpinLockRelease(&c->mutex);
	return m;
}

/* Raise or warn (rate-limited) when a remote time is too far ahead. */
static bool
drift_check(const TgHlc *remote, int64 sys)
{
	int64		drift = remote->millis - sys;

	if (drift <= tg_max_drift_ms)
		return true;
	if (tg_clock_strict())
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_FIELD_OVERFLOW),
				 errmsg("clock drift detected: timestamp of node \"%.*s\" is more than %d ms ahead of the local clock",
						TG_HLC_NODE_LEN(remote), remote->node, tg_max_drift_ms),
				 errdetail("Remote time " INT64_FORMAT " is " INT64_FORMAT " ms ahead of local " INT64_FORMAT "; topgun.strict_clock is on.",
						   remote->millis, drift, sys),
				 errhint("Fix the clock of node \"%.*s\" or raise topgun.max_drift_ms.",
						 TG_HLC_NODE_LEN(remote), remote->node)));
	if (sys - drift_warn_last >= DRIFT_WARN_INTERVAL_MS)
	{
		ereport(WARNING,
				(errmsg("clock drift detected: timestamp of node \"%.*s\" is more than %d ms ahead of the local clock",
						TG_HLC_NODE_LEN(remote), remote->node, tg_max_drift_ms),
				 errdetail("Remote time " INT64_FORMAT " is " INT64_FORMAT " ms ahead of local " INT64_FORMAT "; accepted because topgun.strict_clock is off. " INT64_FORMAT " similar warnings were suppressed in the previous %d s.",
						   remote->millis, drift, sys, drift_warn_suppressed, DRIFT_WARN_INTERVAL_MS / 1000)));
		drift_warn_last = sys;
		drift_warn_suppressed = 0;
	}
	else
		drift_warn_suppressed++;
	return false;
}

/*
 * Non-raising drift check for batch paths: NULL when `remote` is acceptable
 * (or only warned about), else the rejection message.
 */
char *
tg_clock_drift_error(const TgHlc *remote)
{
	int64		sys = wall_millis();

	if (!tg_clock_strict() || remote->millis - sys <= tg_max_drift_ms ||
		remote->millis <= clock_millis(get_clock()))
		return NULL;
	return psprintf("clock drift detected: timestamp of node \"%.*s\" is more than %d ms ahead of the local clock",
					TG_HLC_NODE_LEN(remote), remote->node, tg_max_drift_ms);
}

/* TopGun's HLC.update(): returns the new local time. */
TgHlc *
tg_clock_update(const TgHlc *remote)
{
	TgClockShared *c = get_clock();
	int64		sys = wall_millis();
	int64		m;
	int64		k;
	const char *node = tg_node_id();

	if (remote->millis > sys && remote->millis > clock_millis(c))
		drift_check(remote, sys);

	SpinLockAcquire(&c->mutex);
	m = Max(Max(c->last_millis, sys), remote->millis);
	if (m == c->last_millis && m == remote->millis)
	{
		c->counter = Max(c->counter, remote->counter);
		bump_counter(c);
	}
	else if (m == c->last_millis)
		bump_counter(c);
	else if (m == remote->millis)
	{
		c->last_millis = m;
		c->counter = remote->counter;
		bump_counter(c);
	}
	else
	{
		c->last_millis = m;
		c->counter = 0;
	}
	m = c->last_millis;
	k = c->counter;
	SpinLockRelease(&c->mutex);
	return tg_hlc_make(m, k, node, strlen(node));
}

/*
 * Merge a timestamp that arrives with a record.  The drift check always
 * applies; the clock only moves when the remote time is at or beyond ours
 * (otherwise TopGun's rule would merely bump the counter, which costs a
 * shared-memory write per record for no ordering benefit).
 */
void
tg_clock_observe(const TgHlc *remote)
{
	TgClockShared *c = get_clock();
	int64		sys = wall_millis();

	if (remote->millis > sys && remote->millis > clock_millis(c))
		drift_check(remote, sys);
	SpinLockAcquire(&c->mutex);
	if (remote->millis > c->last_millis ||
		(remote->millis == c->last_millis && remote->counter >= c->counter))
	{
		c->last_millis = remote->millis;
		c->counter = remote->counter;
		bump_counter(c);
	}
	SpinLockRelease(&c->mutex);
}

Datum
hlc_now(PG_FUNCTION_ARGS)
{
	PG_RETURN_HLC_P(tg_clock_now());
}

Datum
hlc_update(PG_FUNCTION_ARGS)
{
	PG_RETURN_HLC_P(tg_clock_update(PG_GETARG_HLC_P(0)));
}

Datum
tg_node_id_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(tg_node_id()));
}
