/*
 * resolve.c — conflict resolvers on client writes (PROTOCOL-ADDENDUM §A5,
 * docs/resolvers.md), run by the group commit inside the group's
 * transaction before the LWW ops are applied: tg_resolve_batch() (what
 * topgun.resolve_ops() runs, called directly with the values the group
 * already parsed) runs the chain of every resolver registered for the op's
 * map (built-ins natively, DBA functions through SQL) and answers accept /
 * merge / reject / local per op.  Which maps have resolvers is cached (the
 * patterns of topgun.resolvers, re-read when the table's change commits: its
 * statement trigger sends a relcache invalidation), so a map without
 * resolvers costs one glob walk per op.
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
#include "logic/logic_pg.h"


static char **patterns = NULL;
static int	npatterns = 0;
static bool loaded = false;
static Oid	resolvers_relid = InvalidOid;
static int	plan_patterns = -1;
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

/* Run the chains for ops (all written by `writer`); in the group's transaction. */
void
tg_resolve(TgConn *writer, TgResolveOp *ops, int n)
{
	TgResolveItem *items = palloc(sizeof(TgResolveItem) * n);
	const char *identity = tg_conn_identity(writer);
	bool		is_server = false;

	for (int i = 0; i < writer->nroles; i++)
		is_server |= strcmp(writer->roles[i], "server") == 0;
	for (int i = 0; i < n; i++)
	{
		items[i].map = cstring_to_text(ops[i].map);
		items[i].key = cstring_to_text(ops[i].key);
		items[i].value = ops[i].value;
		items[i].ts = PointerGetDatum(ops[i].ts);
	}
	/* the chain in C: no statement, no arrays, the values as they were parsed */
	tg_resolve_batch(items, n, cstring_to_text(identity), is_server, false);
	for (int i = 0; i < n; i++)
	{
		TgResolveOp *op = &ops[i];

		op->outcome = TG_RES_ACCEPT;
		if (items[i].action == TG_RES_REJECT)
		{
			op->outcome = TG_RES_REJECT;
			op->reason = MemoryContextStrdup(tg_proto_cxt, items[i].reason ? items[i].reason
											 : "Rejected by conflict resolver");
		}
		else if (items[i].action == TG_RES_MERGE && items[i].merged)
		{
			op->outcome = TG_RES_MERGE;
			op->merged = MemoryContextAlloc(tg_proto_cxt, VARSIZE(items[i].merged));
			memcpy(op->merged, items[i].merged, VARSIZE(items[i].merged));
		}
		else if (items[i].action == TG_RES_LOCAL)
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
