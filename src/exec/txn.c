/*
 * txn.c — transactions and kept SPI plans of the executors.  Every
 * statement an executor runs goes through a plan kept here
 * (SPI_prepare + SPI_keepplan), discarded when the extension disappears.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "exec/exec.h"

/* ------------------------------------------------------------ plans */


typedef struct PlanDef
{
	const char *sql;
	int			nargs;
	Oid			types[6];
} PlanDef;

static const PlanDef plan_defs[PL_COUNT] = {
	[PL_LWW_PUT] = {"SELECT topgun.lww_put($1, $2, $3::jsonb, $4::topgun.hlc, $5)",
	5, {TEXTOID, TEXTOID, TEXTOID, TEXTOID, INT8OID}},
	[PL_OR_APPLY] = {"SELECT topgun.or_apply($1, $2, $3::jsonb, $4, $5::topgun.hlc, $6)",
	6, {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, INT8OID}},
	[PL_OR_REMOVE_TAG] = {"SELECT topgun.or_remove_tag($1, $2)", 2, {TEXTOID, TEXTOID}},
	[PL_HLC_NOW] = {"SELECT topgun.hlc_now()::text", 0, {0}},
	[PL_MAP_KIND] = {"SELECT topgun.map_kind($1)", 1, {TEXTOID}},
	[PL_ROOT] = {"SELECT topgun.merkle_root($1)", 1, {TEXTOID}},
	[PL_BUCKETS] = {"SELECT bucket, hash FROM topgun.merkle_buckets($1, $2) ORDER BY bucket",
	2, {TEXTOID, TEXTOID}},
	[PL_LWW_LEAF] = {"SELECT pg_catalog.jsonb_build_object('key', key, 'record', record) FROM topgun.merkle_leaf($1, $2)",
	2, {TEXTOID, TEXTOID}},
	[PL_OR_LEAF] = {"SELECT pg_catalog.jsonb_build_object('key', key) || record FROM topgun.merkle_leaf($1, $2)",
	2, {TEXTOID, TEXTOID}},
	[PL_OR_MERGE_KEY] = {"SELECT op, op_key, op_tag, rec FROM topgun._or_merge_key($1, $2, $3::jsonb, $4)",
	4, {TEXTOID, TEXTOID, TEXTOID, TEXTARRAYOID}},
	[PL_LWW_ENTRIES] = {"SELECT key, value FROM topgun.lww_entries WHERE map = $1 ORDER BY key",
	1, {TEXTOID}},
	[PL_OR_ENTRIES] = {"SELECT key, pg_catalog.jsonb_agg(value ORDER BY tag) FROM topgun.or_entries WHERE map = $1 GROUP BY key ORDER BY key",
	1, {TEXTOID}},
	[PL_OR_KEY_RECORDS] = {"SELECT pg_catalog.jsonb_build_object('value', value, "
		"'timestamp', pg_catalog.jsonb_build_object('millis', topgun.hlc_millis(ts), 'counter', topgun.hlc_counter(ts), 'nodeId', topgun.hlc_node(ts)), "
		"'tag', tag) || CASE WHEN ttl_ms IS NULL THEN '{}'::jsonb ELSE pg_catalog.jsonb_build_object('ttlMs', ttl_ms) END "
		"FROM topgun.ormap WHERE map = $1 AND leaf = topgun.key_leaf($2) AND key = $2 ORDER BY tag",
	2, {TEXTOID, TEXTOID}},
	[PL_OR_KEY_TOMBSTONES] = {"SELECT tag FROM topgun.or_tombstones WHERE map = $1 ORDER BY tag",
	1, {TEXTOID}},
};

static SPIPlanPtr plans[PL_COUNT];

/* Plans of the live-data modules: slot numbers handed out on first use. */
#define MAX_LIVE_PLANS 64
static SPIPlanPtr live_plans[MAX_LIVE_PLANS];
static int	n_live_plans = 0;

void
tg_plans_reset(void)
{
	for (int i = 0; i < PL_COUNT; i++)
	{
		if (plans[i])
			SPI_freeplan(plans[i]);
		plans[i] = NULL;
	}
	for (int i = 0; i < n_live_plans; i++)
	{
		if (live_plans[i])
			SPI_freeplan(live_plans[i]);
		live_plans[i] = NULL;
	}
}

/* A kept plan for a live-data module; *slot starts at -1. */
SPIPlanPtr
tg_live_plan(int *slot, const char *sql, int nargs, const Oid *types)
{
	if (*slot < 0)
	{
		if (n_live_plans == MAX_LIVE_PLANS)
			elog(ERROR, "topgun: too many worker plans");
		*slot = n_live_plans++;
	}
	if (live_plans[*slot] == NULL)
	{
		SPIPlanPtr	p = SPI_prepare(sql, nargs, (Oid *) types);

		if (p == NULL)
			elog(ERROR, "topgun: SPI_prepare failed for \"%s\": %s",
				 sql, SPI_result_code_string(SPI_result));
		if (SPI_keepplan(p) != 0)
			elog(ERROR, "topgun: SPI_keepplan failed");
		live_plans[*slot] = p;
	}
	return live_plans[*slot];
}

static SPIPlanPtr
tg_get_plan(PlanId id)
{
	if (plans[id] == NULL)
	{
		SPIPlanPtr	p = SPI_prepare(plan_defs[id].sql, plan_defs[id].nargs,
									(Oid *) plan_defs[id].types);

		if (p == NULL)
			elog(ERROR, "topgun: SPI_prepare failed for \"%s\": %s",
				 plan_defs[id].sql, SPI_result_code_string(SPI_result));
		if (SPI_keepplan(p) != 0)
			elog(ERROR, "topgun: SPI_keepplan failed");
		plans[id] = p;
	}
	return plans[id];
}

int
tg_run_plan(PlanId id, Datum *args, const char *nulls, bool read_only)
{
	int			rc = SPI_execute_plan(tg_get_plan(id), args, nulls, read_only, 0);

	if (rc != SPI_OK_SELECT)
		elog(ERROR, "topgun: SPI_execute_plan returned %s", SPI_result_code_string(rc));
	return (int) SPI_processed;
}

/* --------------------------------------------------------- transactions */

MemoryContext tg_proto_cxt;	/* the loop's per-iteration context */

/* SQL objects vanished ("function does not exist" ...): check the extension now */
bool		tg_ready_check_wanted = false;

void
tg_request_ready_check(void)
{
	tg_ready_check_wanted = true;
}

void
tg_txn_begin(void)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	MemoryContextSwitchTo(tg_proto_cxt);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "topgun: SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
}

void
tg_txn_end(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	MemoryContextSwitchTo(tg_proto_cxt);
}

/* In PG_CATCH: recover and return a copy of the error (in tg_proto_cxt). */
ErrorData *
tg_txn_recover(void)
{
	ErrorData  *edata;

	MemoryContextSwitchTo(tg_proto_cxt);
	edata = CopyErrorData();
	FlushErrorState();
	AbortCurrentTransaction();
	MemoryContextSwitchTo(tg_proto_cxt);
	return edata;
}

/*
 * fn(arg) in a subtransaction of the current transaction: NULL, or the
 * error it raised (copied into tg_proto_cxt) after the subtransaction was
 * rolled back -- the caller's work before it stays, the transaction goes on.
 */
ErrorData *
tg_subxact_run(void (*fn) (void *arg), void *arg)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	ErrorData  *volatile err = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		fn(arg);
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(tg_proto_cxt);
		err = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(oldcxt);
	CurrentResourceOwner = oldowner;
	return err;
}

/* Make cxt the context that transactions return to (main-loop callers). */
void
tg_proto_enter(MemoryContext cxt)
{
	tg_proto_cxt = cxt;
}

char *
tg_hlc_now_text(void)
{
	bool		isnull;
	Datum		d;

	tg_run_plan(PL_HLC_NOW, NULL, NULL, false);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return MemoryContextStrdup(tg_proto_cxt, TextDatumGetCString(d));
}

char *
tg_map_kind(const char *map)
{
	Datum		arg = CStringGetTextDatum(map);
	bool		isnull;
	Datum		d;

	if (tg_run_plan(PL_MAP_KIND, &arg, NULL, true) != 1)
		return NULL;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? NULL : TextDatumGetCString(d);
}
