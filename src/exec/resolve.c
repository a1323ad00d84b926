/*
 * resolve.c — conflict resolvers on client writes (PROTOCOL-ADDENDUM §A5,
 * docs/resolvers.md), run by the group commit inside the group's
 * transaction before the LWW ops are applied: topgun.resolve_ops() runs the
 * chain of every resolver registered for the op's map (built-ins natively,
 * DBA functions through SQL) and answers accept / merge / reject / local per
 * op.  Which maps have resolvers is cached (the patterns of
 * topgun.resolvers, re-read when the table's change commits: its statement
 * trigger sends a relcache invalidation), so a map without resolvers costs
 * one glob walk per op.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "exec/exec.h"
#include "exec/events.h"
#include "exec/resolve.h"


static char **patterns = NULL;
static int	npatterns = 0;
static bool loaded = false;
static Oid	resolvers_relid = InvalidOid;
static int	plan_patterns = -1;
static int	plan_resolve = -1;
static int	plan_restamp = -1;

void
tg_resolvers_invalidate(void)
{
	loaded = false;
}

/* topgun.resolvers changed (its statement trigger, topgun._invalidate_cache) */
static void
relcache_cb(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == resolvers_relid)
		loaded = false;
}

/* In a transaction. */
bool
tg_resolvers_on(const char *map)
{
	size_t		len = strlen(map);

	if (!loaded)
	{
		MemoryContext old;
		static bool cb_registered = false;

		if (!cb_registered)
		{
			CacheRegisterRelcacheCallback(relcache_cb, (Datum) 0);
			cb_registered = true;
		}
		resolvers_relid = get_relname_relid("resolvers", get_namespace_oid("topgun", false));

		if (SPI_execute_plan(tg_live_plan(&plan_patterns,
										  "SELECT DISTINCT map_pattern FROM topgun.resolvers", 0, NULL),
							 NULL, NULL, true, 0) != SPI_OK_SELECT)
			elog(ERROR, "topgun: could not read topgun.resolvers");
		for (int i = 0; i < npatterns; i++)
			pfree(patterns[i]);
		if (patterns)
			pfree(patterns);
		old = MemoryContextSwitchTo(TopMemoryContext);
		npatterns = (int) SPI_processed;
		patterns = palloc(sizeof(char *) * Max(1, npatterns));
		for (int i = 0; i < npatterns; i++)
			patterns[i] = pstrdup(SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
		MemoryContextSwitchTo(old);
		loaded = true;
	}
	for (int i = 0; i < npatterns; i++)
		if (tg_res_glob(patterns[i], strlen(patterns[i]), map, len))
			return true;
	return false;
}

static ArrayType *
text_array(Datum *d, int n)
{
	return construct_array(d, n, TEXTOID, -1, false, TYPALIGN_INT);
}

/* Run the chains for ops (all written by `writer`); in the group's transaction. */
void
tg_resolve(TgConn *writer, TgResolveOp *ops, int n)
{
	Datum	   *m = palloc(sizeof(Datum) * n);
	Datum	   *k = palloc(sizeof(Datum) * n);
	Datum	   *v = palloc(sizeof(Datum) * n);
	Datum	   *t = palloc(sizeof(Datum) * n);
	Datum	   *r = palloc(sizeof(Datum) * Max(1, writer->nroles));
	Datum		args[6];
	Oid			types[6] = {TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTOID, TEXTARRAYOID};
	const char *identity = writer->user_id[0] ? writer->user_id : writer->sub;

	for (int i = 0; i < n; i++)
	{
		m[i] = CStringGetTextDatum(ops[i].map);
		k[i] = CStringGetTextDatum(ops[i].key);
		v[i] = CStringGetTextDatum(ops[i].json);
		t[i] = CStringGetTextDatum(ops[i].ts);
		ops[i].outcome = TG_RES_ACCEPT;
	}
	for (int i = 0; i < writer->nroles; i++)
		r[i] = CStringGetTextDatum(writer->roles[i]);
	args[0] = PointerGetDatum(text_array(m, n));
	args[1] = PointerGetDatum(text_array(k, n));
	args[2] = PointerGetDatum(text_array(v, n));
	args[3] = PointerGetDatum(text_array(t, n));
	args[4] = CStringGetTextDatum(identity);
	args[5] = PointerGetDatum(text_array(r, writer->nroles));
	if (SPI_execute_plan(tg_live_plan(&plan_resolve,
									  "SELECT idx, outcome, value::text, reason FROM topgun.resolve_ops("
									  "$1, $2, $3::jsonb[], $4::topgun.hlc[], $5, $6, false)",
									  6, types), args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "topgun: resolve_ops failed");
	for (uint64 row = 0; row < SPI_processed; row++)
	{
		HeapTuple	tup = SPI_tuptable->vals[row];
		bool		isnull;
		int			idx = DatumGetInt32(SPI_getbinval(tup, SPI_tuptable->tupdesc, 1, &isnull));
		char	   *outcome = SPI_getvalue(tup, SPI_tuptable->tupdesc, 2);
		char	   *value = SPI_getvalue(tup, SPI_tuptable->tupdesc, 3);
		char	   *reason = SPI_getvalue(tup, SPI_tuptable->tupdesc, 4);
		TgResolveOp *op;

		if (idx < 1 || idx > n || outcome == NULL)
			continue;
		op = &ops[idx - 1];
		if (strcmp(outcome, "reject") == 0)
		{
			op->outcome = TG_RES_REJECT;
			op->reason = MemoryContextStrdup(tg_proto_cxt, reason ? reason : "Rejected by conflict resolver");
		}
		else if (strcmp(outcome, "merge") == 0 && value)
		{
			op->outcome = TG_RES_MERGE;
			op->value_json = MemoryContextStrdup(tg_proto_cxt, value);
		}
		else if (strcmp(outcome, "local") == 0)
			op->outcome = TG_RES_LOCAL;
	}
}

/*
 * The stored record of map/key written again with a timestamp newer than
 * `newer_than` (so every replica, the writer's too, converges on it), as an
 * UPDATED event in *ev (value, hlc text, ttl; palloc'd).  false if the key has
 * no record.  In a transaction.
 */
bool
tg_restamp(const char *map, const char *key, const char *newer_than, TgEvent *ev)
{
	Oid			types[3] = {TEXTOID, TEXTOID, TEXTOID};
	Datum		args[3];
	bool		vnull,
				tnull,
				lnull;
	Datum		v,
				l;
	char	   *ts;

	args[0] = CStringGetTextDatum(map);
	args[1] = CStringGetTextDatum(key);
	args[2] = CStringGetTextDatum(newer_than);
	if (SPI_execute_plan(tg_live_plan(&plan_restamp,
									  "SELECT r->'value', (r->'timestamp'->>'millis') || ':' || (r->'timestamp'->>'counter') "
									  "|| ':' || (r->'timestamp'->>'nodeId'), (r->>'ttlMs')::bigint "
									  "FROM topgun.restamp($1, $2, $3::topgun.hlc) r",
									  3, types), args, NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "topgun: restamp failed");
	v = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &vnull);
	ts = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	l = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &lnull);
	(void) tnull;
	if (ts == NULL)
		return false;
	memset(ev, 0, sizeof(*ev));
	ev->kind = TG_EV_UPDATED;
	ev->map = pstrdup(map);
	ev->maplen = strlen(map);
	ev->key = pstrdup(key);
	ev->keylen = strlen(key);
	ev->jvalue = vnull ? NULL : DatumGetJsonbPCopy(v);
	ev->ts_text = pstrdup(ts);
	ev->has_ttl = !lnull;
	ev->ttl_ms = lnull ? 0 : DatumGetInt64(l);
	return true;
}
