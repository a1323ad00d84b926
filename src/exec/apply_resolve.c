/*
 * apply_resolve.c — the conflict resolvers in the group commit (apply.c):
 * the LWW ops of maps that have resolvers are judged once, in the group's
 * transaction before they are applied (resolve.c runs the chains), and
 * after the commit the writers of rejected ops, or of ops a resolver kept
 * the stored record against, are corrected.  The op's value and timestamp
 * are decoded here once, for the chains and the merge alike.
 */
#include "postgres.h"

#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/memutils.h"

#include "exec/apply.h"
#include "exec/events.h"
#include "logic/logic_pg.h"

Jsonb *
gop_jsonb(GOp *g)
{
	if (g->jvalue == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(tg_proto_cxt);

		/* the same parse as a cast of the JSON text in SQL */
		g->jvalue = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(g->json)));
		MemoryContextSwitchTo(old);
	}
	return g->jvalue;
}

/* The value as JSON text (the op-by-op path's argument), from the jsonb if it was built directly. */
const char *
gop_json(GOp *g)
{
	if (g->json == NULL && g->jvalue != NULL)
		g->json = MemoryContextStrdup(tg_proto_cxt, JsonbToCString(NULL, &g->jvalue->root, VARSIZE(g->jvalue)));
	return g->json;
}

/* tg_value_jsonb() in the context the group's ops live in */
Jsonb *
tg_value_jsonb_in(const MpNode *value, size_t max_text)
{
	MemoryContext old = MemoryContextSwitchTo(tg_proto_cxt);
	Jsonb	   *j = tg_value_jsonb(value, max_text);

	MemoryContextSwitchTo(old);
	return j;
}

TgHlc *
gop_hlc(GOp *g)
{
	if (g->hlc == NULL)
	{
		const TgTimestamp *ts = &g->op->record.ts;
		MemoryContext old = MemoryContextSwitchTo(tg_proto_cxt);

		g->hlc = tg_hlc_make(ts->millis, ts->counter, ts->node_id.p, (int) ts->node_id.len);
		MemoryContextSwitchTo(old);
	}
	return g->hlc;
}

typedef struct Chain
{
	TgConn	   *writer;
	TgResolveOp *ops;
	int			n;
} Chain;

static void
chain_cb(void *arg)
{
	Chain	   *ch = arg;

	tg_resolve(ch->writer, ch->ops, ch->n);
}

/*
 * One writer's chain in a subtransaction: NULL, or why it raised (a user
 * resolver's error) -- then its ops are rejected and the rest of the group
 * goes on.
 */
static const char *
run_chain(TgConn *writer, TgResolveOp *ops, int n)
{
	Chain		ch = {writer, ops, n};
	ErrorData  *e = tg_subxact_run(chain_cb, &ch);

	if (e == NULL)
		return NULL;
	ereport(LOG, (errmsg("topgun: a conflict resolver raised; its %d ops are rejected: %s", n, e->message)));
	return MemoryContextStrdup(tg_proto_cxt, psprintf("Resolver failed: %s", e->message));
}

/*
 * Conflict resolvers (resolve.c) for the LWW ops of maps that have some, per
 * writer, once per op however often the group is retried: a reject rejects
 * the op, a merge replaces its value, local keeps the stored record.
 */
void
tg_apply_resolve(GBatch *gbatches, int ngbatches, GOp *gops, int ngops)
{
	TgResolveOp *ops = NULL;
	int		   *idx = NULL;
	const char *failed;

	for (int b = 0; b < ngbatches; b++)
	{
		GBatch	   *gb = &gbatches[b];
		int			n = 0;

		for (int i = gb->first; i < gb->first + gb->nops; i++)
		{
			GOp		   *g = &gops[i];

			if (g->resolved || g->state != GS_PENDING || !is_lww_op(g))
				continue;
			if (!tg_resolvers_cover_map(g->map, strlen(g->map)))
			{
				g->resolved = true;
				continue;
			}
			if (ops == NULL)
			{
				ops = palloc0(sizeof(TgResolveOp) * ngops);
				idx = palloc(sizeof(int) * ngops);
			}
			ops[n].map = g->map;
			ops[n].key = g->key;
			ops[n].value = gop_jsonb(g);	/* parsed once: the merge uses it too */
			ops[n].ts = gop_hlc(g);
			idx[n++] = i;
		}
		if (n == 0)
			continue;
		failed = run_chain(gb->conn, ops, n);
		for (int j = 0; j < n; j++)
		{
			GOp		   *g = &gops[idx[j]];

			g->resolved = true;
			if (failed)
			{
				/* a chain that raised rejects its ops: never applied unjudged */
				gop_reject(g, TG_REJECT_RESOLVER, failed);
				continue;
			}
			g->res = ops[j].outcome;
			if (g->res == TG_RES_REJECT)
				gop_reject(g, TG_REJECT_RESOLVER, ops[j].reason);
			else if (g->res == TG_RES_MERGE)
			{
				g->jvalue = ops[j].merged;
				/* the op-by-op fallback (gop_exec) writes the text */
				g->json = MemoryContextStrdup(tg_proto_cxt, JsonbToCString(NULL, &g->jvalue->root,
																		   VARSIZE(g->jvalue)));
			}
		}
	}
	for (int i = 0; i < ngops; i++)
		if (gops[i].res == TG_RES_LOCAL && gops[i].state == GS_PENDING)
			gops[i].state = GS_LOST;	/* nothing written; the writer is corrected after commit */
}

/*
 * After the commit: the writers of rejected ops (and of ops a resolver kept
 * the stored record against) get MERGE_REJECTED, and the stored record is
 * written again newer than their op, as an event to every watcher -- the
 * writer's replica merges it last-write-wins and ends with the stored value.
 */
void
tg_apply_correct_writers(GBatch *gbatches, GOp *gops, int ngops)
{
	TgEventList l;
	bool		any = false;
	char	   *volatile hlc = NULL;

	for (int i = 0; i < ngops; i++)
		if (gops[i].res == TG_RES_REJECT || gops[i].res == TG_RES_LOCAL)
			any = true;
	if (!any)
		return;
	tg_events_init(&l);
	PG_TRY();
	{
		tg_txn_begin();
		for (int i = 0; i < ngops; i++)
		{
			GOp		   *g = &gops[i];
			TgConn	   *c = gbatches[g->batch].conn;
			TgEvent		ev;

			if (g->res != TG_RES_REJECT && g->res != TG_RES_LOCAL)
				continue;
			if (g->res == TG_RES_REJECT && !c->closed)
				tg_send_merge_rejected(c, g->op, g->error);
			if (tg_restamp(g->map, g->key, g->ts, &ev))
				tg_events_add(&l, &ev);
		}
		hlc = tg_hlc_now_text();
		tg_txn_end();
		tg_events_fan_out(&l, hlc, NULL, false);
	}
	PG_CATCH();
	{
		ErrorData  *e = tg_txn_recover();

		ereport(LOG, (errmsg("topgun: could not correct the writers of rejected ops: %s", e->message)));
	}
	PG_END_TRY();
	tg_events_free(&l);
}
