/*
 * ratelimit_session.c — per-client rate limits in the session executor,
 * which sees every message of every connection (docs/access-control.md,
 * "Rate limits").
 *
 * Each authenticated connection has token buckets for ops/s (the ops of
 * OP_BATCH / CLIENT_OP), messages/s and bytes/s (frame sizes), and so has
 * its identity (JWT userId, else sub), shared by all that identity's
 * connections.  The limits are the topgun.rate_limit_* settings (-1: off,
 * or the production default with topgun.production on; 0: off), unless a
 * row of topgun.rate_limits names one of the token's roles: then, per
 * limit, the most permissive of those rows (NULL = the setting, 0 = none).
 * PING is never limited (the heartbeat), nor is anything before AUTH (the
 * auth timeout and the invalid-message budget bound that).
 *
 * A message over a limit is not applied and is answered (dispatch.c):
 * writes get their OP_ACK results success:false "rate limited", other
 * requests their typed failure where they have one, and all ERROR 429.  A
 * refused message takes no tokens.  A connection refused again and again,
 * with no pause of a second between two refusals, for
 * topgun.rate_limit_close_after is closed with 1008.
 */
#include "postgres.h"

#include <limits.h>

#include "catalog/namespace.h"
#include "executor/spi.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "exec/exec.h"
#include "exec/ratelimit.h"
#include "exec/ratelimit_session.h"

/* ------------------------------------------------------------ settings */

/* per connection, then per identity: ops, messages, bytes (TgRateKind order) */
#define NLIMITS (2 * TG_RATE_NKINDS)

static int	rl_setting[NLIMITS] = {-1, -1, -1, -1, -1, -1};
static int	rl_burst_ms = 1000;
static int	rl_close_after_ms = 10000;

/* What -1 means with topgun.production on (docs/configuration.md). */
static const int rl_production[NLIMITS] = {
	10000, 1000, 16 * 1024 * 1024,	/* a connection */
	50000, 5000, 64 * 1024 * 1024	/* an identity, all its connections together */
};

static const char *const rl_names[NLIMITS] = {
	"topgun.rate_limit_ops_per_s", "topgun.rate_limit_messages_per_s",
	"topgun.rate_limit_bytes_per_s", "topgun.rate_limit_identity_ops_per_s",
	"topgun.rate_limit_identity_messages_per_s", "topgun.rate_limit_identity_bytes_per_s"
};

static const char *const rl_descr[NLIMITS] = {
	"Ops (in OP_BATCH and CLIENT_OP) per second one connection may send; 0 = no limit, -1 = 0, or 10000 with topgun.production on.",
	"Messages (but PING) per second one connection may send; 0 = no limit, -1 = 0, or 1000 with topgun.production on.",
	"Message bytes per second one connection may send; 0 = no limit, -1 = 0, or 16MB with topgun.production on.",
	"Ops per second all connections of one identity (JWT userId, else sub) may send together; 0 = no limit, -1 = 0, or 50000 in production.",
	"Messages per second all connections of one identity may send together; 0 = no limit, -1 = 0, or 5000 in production.",
	"Message bytes per second all connections of one identity may send together; 0 = no limit, -1 = 0, or 64MB in production."
};

/* bumped whenever what the limits resolve to may have changed */
static uint64 rate_gen = 1;
static bool last_production = false;

static void
assign_setting(int newval, void *extra)
{
	rate_gen++;
}

void
tg_ratelimit_init(void)
{
	for (int i = 0; i < NLIMITS; i++)
		DefineCustomIntVariable(rl_names[i], rl_descr[i], NULL, &rl_setting[i], -1, -1, INT_MAX,
								PGC_SIGHUP, (i % TG_RATE_NKINDS) == TG_RATE_BYTES ? GUC_UNIT_BYTE : 0,
								NULL, assign_setting, NULL);
	DefineCustomIntVariable("topgun.rate_limit_burst",
							"Bucket size of every rate limit, as time at the limit's rate.",
							"A client idle that long may send that much at once.",
							&rl_burst_ms, 1000, 1, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, assign_setting, NULL);
	DefineCustomIntVariable("topgun.rate_limit_close_after",
							"A connection over its rate limits this long without a pause of a second is closed (1008); 0 = never.",
							NULL, &rl_close_after_ms, 10000, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
}

static int64
setting(int i)
{
	if (rl_setting[i] >= 0)
		return rl_setting[i];
	return tg_production ? rl_production[i] : 0;
}

/* ------------------------------------------------------------ topgun.rate_limits */

typedef struct RoleRule
{
	char	   *role;
	int64		v[NLIMITS];		/* -1: the setting */
} RoleRule;

static RoleRule *rules = NULL;
static int	nrules = 0;
static bool rules_stale = true;
static Oid	rules_relid = InvalidOid;
static int	plan_rules = -1;

/* topgun.rate_limits changed (its statement trigger, topgun._invalidate_cache) */
static void
relcache_cb(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == rules_relid)
		rules_stale = true;
}

static void
read_rules(void)
{
	MemoryContext old;
	Oid			nsp = get_namespace_oid("topgun", false);

	rules_relid = get_relname_relid("rate_limits", nsp);
	if (SPI_execute_plan(tg_live_plan(&plan_rules,
									  "SELECT role, coalesce(ops_per_s, -1), coalesce(messages_per_s, -1), "
									  "coalesce(bytes_per_s, -1), coalesce(identity_ops_per_s, -1), "
									  "coalesce(identity_messages_per_s, -1), coalesce(identity_bytes_per_s, -1) "
									  "FROM topgun.rate_limits", 0, NULL),
						 NULL, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "topgun: could not read topgun.rate_limits");
	old = MemoryContextSwitchTo(TopMemoryContext);
	for (int i = 0; i < nrules; i++)
		pfree(rules[i].role);
	if (rules)
		pfree(rules);
	nrules = (int) SPI_processed;
	rules = palloc(sizeof(RoleRule) * Max(1, nrules));
	for (int i = 0; i < nrules; i++)
	{
		HeapTuple	t = SPI_tuptable->vals[i];
		bool		isnull;

		rules[i].role = SPI_getvalue(t, SPI_tuptable->tupdesc, 1);
		for (int k = 0; k < NLIMITS; k++)
			rules[i].v[k] = DatumGetInt64(SPI_getbinval(t, SPI_tuptable->tupdesc, k + 2, &isnull));
	}
	MemoryContextSwitchTo(old);
}

/*
 * Re-read the table if it changed.  A transaction of its own, which also
 * takes in invalidations not seen yet (so an AUTH sees every committed
 * change); with `always` false only when a change is known already.
 */
static void
load_rules(bool always)
{
	static bool cb_registered = false;
	MemoryContext old = CurrentMemoryContext;

	if (!always && !rules_stale)
		return;
	if (!cb_registered)
	{
		CacheRegisterRelcacheCallback(relcache_cb, (Datum) 0);
		cb_registered = true;
	}
	PG_TRY();
	{
		tg_txn_begin();			/* takes in the invalidations not seen yet */
		if (rules_stale)
		{
			/* before the read: a change arriving during it is read next time */
			rules_stale = false;
			read_rules();
			rate_gen++;
		}
		tg_txn_end();
	}
	PG_CATCH();
	{
		ErrorData  *e = tg_txn_recover();

		/* retried at the next change, not at every message */
		rules_stale = false;
		ereport(LOG, (errmsg("topgun: could not read topgun.rate_limits, keeping the rules read before: %s",
							 e->message)));
	}
	PG_END_TRY();
	MemoryContextSwitchTo(old);
}

/* ------------------------------------------------------------ connections */

typedef struct TgRateConn
{
	TgRateBuckets own;
	TgRateIdent *ident;			/* NULL: a token without identity */
	TgRateLimits lim[2];		/* connection, identity */
	bool		any;			/* some limit applies */
	uint64		gen;			/* rate_gen the limits were resolved at */
	TgFlood		flood;
} TgRateConn;

static TgRateTable idents;
static bool idents_ready = false;

static int64
now_us(void)
{
	return (int64) (tg_mono_ns() / 1000);
}

static double
burst_s(void)
{
	return rl_burst_ms / 1000.0;
}

/* 0 (no limit) is the most permissive value; else the higher one */
static int64
more_permissive(int64 a, int64 b)
{
	return (a == 0 || b == 0) ? 0 : Max(a, b);
}

static void
resolve_limits(TgRateConn *rc, const TgConn *c)
{
	int64		v[NLIMITS];
	bool		matched = false;

	for (int r = 0; r < nrules; r++)
	{
		if (!tg_acl_has_role(c, rules[r].role))
			continue;
		for (int k = 0; k < NLIMITS; k++)
		{
			int64		x = rules[r].v[k] < 0 ? setting(k) : rules[r].v[k];

			v[k] = matched ? more_permissive(v[k], x) : x;
		}
		matched = true;
	}
	rc->any = false;
	for (int k = 0; k < NLIMITS; k++)
	{
		int64		x = matched ? v[k] : setting(k);

		rc->lim[k / TG_RATE_NKINDS].per_s[k % TG_RATE_NKINDS] = (double) x;
		if (x > 0)
			rc->any = true;
	}
	rc->gen = rate_gen;
}

void
tg_rate_after_auth(TgConn *c)
{
	TgRateConn *rc;
	const char *who = tg_conn_identity(c);

	if (c->rate)
		return;
	rc = calloc(1, sizeof(TgRateConn));
	if (rc == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	c->rate = rc;
	load_rules(true);
	if (!idents_ready)
		idents_ready = tg_rate_table_init(&idents, tg_max_connections + 1024);
	if (who[0] && idents_ready)
		rc->ident = tg_rate_ident_acquire(&idents, who, now_us());
	resolve_limits(rc, c);
}

void
tg_rate_conn_gone(TgConn *c)
{
	TgRateConn *rc = c->rate;

	if (rc == NULL)
		return;
	if (rc->ident)
		tg_rate_ident_release(&idents, rc->ident, &rc->lim[1], burst_s(), now_us());
	free(rc);
	c->rate = NULL;
}

const char *
tg_rate_check(TgConn *c, const TgMessage *m, size_t bytes)
{
	TgRateConn *rc = c->rate;
	double		cost[TG_RATE_NKINDS];
	TgRateBuckets *sets[2];
	const TgRateLimits *lims[2];
	TgRateRefusal why;
	int64		now;

	if (rc == NULL)
		return NULL;
	if (rules_stale)
		load_rules(false);
	if (last_production != tg_production)
	{
		last_production = tg_production;
		rate_gen++;
	}
	if (rc->gen != rate_gen)
		resolve_limits(rc, c);
	if (!rc->any)
		return NULL;

	cost[TG_RATE_OPS] = m->type == TG_MSG_OP_BATCH ? (double) m->u.op_batch.n_ops :
		m->type == TG_MSG_CLIENT_OP ? 1 : 0;
	cost[TG_RATE_MESSAGES] = 1;
	cost[TG_RATE_BYTES] = (double) bytes;
	sets[0] = &rc->own;
	sets[1] = rc->ident ? &rc->ident->buckets : NULL;
	lims[0] = &rc->lim[0];
	lims[1] = &rc->lim[1];
	now = now_us();
	if (tg_rate_try(sets, lims, 2, burst_s(), cost, now, &why))
		return NULL;

	c->rate_limited++;
	c->slot_dirty = true;
	tg_stat_add(TG_STAT_RATE_LIMITED, 1);
	if (cost[TG_RATE_OPS] > 0)
		tg_stat_add(TG_STAT_RATE_LIMITED_OPS, (uint64) cost[TG_RATE_OPS]);
	if (tg_flood_refused(&rc->flood, now, (int64) rl_close_after_ms * 1000))
	{
		tg_stat_add(TG_STAT_RATE_LIMIT_CLOSES, 1);
		ereport(LOG,
				(errmsg("topgun: closing connection %llu (%s, identity \"%s\"): over its rate limits for %lld ms (topgun.rate_limit_close_after)",
						(unsigned long long) c->id, c->remote, tg_conn_identity(c),
						(long long) (tg_flood_streak_us(&rc->flood) / 1000))));
		tg_conn_close(c, 1008, "Rate limit exceeded");
	}
	return psprintf("Rate limited: over %.0f %s per %s", why.limit, tg_rate_kind_names[why.kind],
					why.holder == 0 ? "connection" : "identity");
}
