/*
 * resolve.c — conflict resolvers on client writes (PROTOCOL-ADDENDUM §A5,
 * docs/resolvers.md), run by the group commit inside the group's
 * transaction before the LWW ops are applied: tg_resolve_batch() (what
 * topgun.resolve_ops() runs, called directly with the values the group
 * already parsed) runs the chain of every resolver registered for the op's
 * map (built-ins natively, DBA functions through SQL) and answers accept /
 * merge / reject / local per op.  Which maps have resolvers is
 * tg_resolvers_cover_map() (src/logic/pg_resolve.c: the resolver list kept
 * until topgun.resolvers changes), so a map without resolvers costs one glob
 * walk per op.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "exec/exec.h"
#include "exec/events.h"
#include "exec/resolve.h"
#include "logic/logic_pg.h"


static int	plan_restamp = -1;

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
