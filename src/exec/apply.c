/*
 * apply.c — group commit of client writes (OP_BATCH, CLIENT_OP), in the
 * session executor (docs/worker.md, "Writes: group commit").
 *
 * Every write message handed over in one loop iteration, from all
 * connections, is applied in ONE transaction and acknowledged after that
 * commit is durable (synchronous_commit is forced on).  Consecutive LWW ops
 * go through one topgun.lww_put_many() call that reports op errors per op;
 * an op that raises aborts the group, is rejected, and the group is retried
 * without it; after a few such retries the group falls back to one
 * subtransaction per op, so a batch full of bad ops stays linear.  Conflict
 * resolvers judge the ops first (apply_resolve.c).
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "pgstat.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "core/lww_batch.h"
#include "exec/apply.h"
#include "exec/events.h"
#include "metrics/metrics.h"

#define MAX_FULL_RETRIES 3

/* ------------------------------------------------------ group commit */

static GBatch *gbatches = NULL;
static int	ngbatches = 0;
static int	gbatches_cap = 0;
static GOp *gops = NULL;
static int	ngops = 0;
static int	gops_cap = 0;

/* Pure-C preparation of one op (no SQL). */
static void
gop_prepare(GOp *g)
{
	TgOp	   *op = g->op;
	char		err[256];
	const MpNode *value = NULL;

	if (!op->valid)
	{
		gop_reject(g, TG_REJECT_INVALID, op->error ? op->error : "invalid op");
		return;
	}
	g->map = tg_pstr(op->map_name);
	g->key = tg_pstr(op->key);
	switch (op->op_type)
	{
		case TG_OP_OR_ADD:
			value = op->or_record.value;
			g->ts = tg_hlc_text(&op->or_record.ts);
			g->tag = tg_pstr(op->or_record.tag);
			g->has_ttl = op->or_record.has_ttl;
			g->ttl = op->or_record.ttl_ms;
			break;
		case TG_OP_OR_REMOVE:
			g->tag = tg_pstr(op->or_tag);
			return;
		default:
			value = op->record.value;
			g->ts = tg_hlc_text(&op->record.ts);
			g->has_ttl = op->record.has_ttl;
			g->ttl = op->record.ttl_ms;
			/* REMOVE always means a tombstone */
			if (op->op_type == TG_OP_REMOVE)
				value = NULL;
			break;
	}
	if (value == NULL || value->type == MP_NIL)
		g->json = "null";
	else if (op->op_type != TG_OP_OR_ADD &&
			 (g->jvalue = tg_value_jsonb_in(value, (size_t) tg_max_message_bytes * 2 + 1024)) != NULL)
		g->json = NULL;			/* no JSON text: gop_json() writes it if a fallback needs it */
	else
	{
		MpBuf		jb;

		mp_buf_init(&jb, (size_t) tg_max_message_bytes * 2 + 1024);
		if (!mp_value_to_json(value, &jb, err, sizeof(err)))
		{
			mp_buf_free(&jb);
			gop_reject(g, TG_REJECT_INVALID, psprintf("Invalid value: %s", err));
			return;
		}
		g->json = pnstrdup((const char *) jb.data, jb.len);
		mp_buf_free(&jb);
	}
}

static void
gop_exec(GOp *g);

/* gop_exec for tg_subxact_run */
static void
gop_exec_cb(void *g)
{
	gop_exec(g);
}

static void
gop_exec(GOp *g)
{
	Datum		args[6];
	char		nulls[6];
	bool		isnull;
	bool		won = false;

	memset(nulls, ' ', sizeof(nulls));
	switch (g->op->op_type)
	{
		case TG_OP_OR_ADD:
			args[0] = CStringGetTextDatum(g->map);
			args[1] = CStringGetTextDatum(g->key);
			args[2] = CStringGetTextDatum(g->json);
			args[3] = CStringGetTextDatum(g->tag);
			args[4] = CStringGetTextDatum(g->ts);
			args[5] = Int64GetDatum(g->ttl);
			if (!g->has_ttl)
				nulls[5] = 'n';
			tg_run_plan(PL_OR_APPLY, args, nulls, false);
			break;
		case TG_OP_OR_REMOVE:
			args[0] = CStringGetTextDatum(g->map);
			args[1] = CStringGetTextDatum(g->tag);
			tg_run_plan(PL_OR_REMOVE_TAG, args, nulls, false);
			break;
		default:
			args[0] = CStringGetTextDatum(g->map);
			args[1] = CStringGetTextDatum(g->key);
			args[2] = CStringGetTextDatum(gop_json(g));
			args[3] = CStringGetTextDatum(g->ts);
			args[4] = Int64GetDatum(g->ttl);
			if (!g->has_ttl)
				nulls[4] = 'n';
			tg_run_plan(PL_LWW_PUT, args, nulls, false);
			break;
	}
	if (SPI_processed == 1)
	{
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		won = !isnull && DatumGetBool(d);
	}
	g->state = won ? GS_WON : GS_LOST;
}

static char *group_hlc = NULL;	/* event timestamp of the last commit */

/*
 * Apply every pending LWW op of the group with ONE call of
 * topgun.lww_put_many(): it validates every op in C and reports problems per
 * op (kind mismatch, limits, strict clock drift ...) instead of raising,
 * collapses duplicate keys (newest wins) and runs a single INSERT ... ON
 * CONFLICT in index order.  Only an unexpected error raises; the caller then
 * retries the group op by op.
 */
static void
lww_bulk_exec(int from, int to)
{
	int			n = 0;
	int		   *idx;
	TgLwwOp    *ops;

	for (int i = from; i < to; i++)
		if (gops[i].state == GS_PENDING && is_lww_op(&gops[i]))
			n++;
	if (n == 0)
		return;
	idx = palloc(sizeof(int) * n);
	ops = palloc0(sizeof(TgLwwOp) * n);
	n = 0;
	for (int i = from; i < to; i++)
	{
		GOp		   *g = &gops[i];

		if (g->state != GS_PENDING || !is_lww_op(g))
			continue;
		idx[n] = i;
		ops[n].map = cstring_to_text(g->map);
		ops[n].key = cstring_to_text(g->key);
		ops[n].value = gop_jsonb(g);
		ops[n].ts = gop_hlc(g);
		ops[n].has_ttl = g->has_ttl;
		ops[n].ttl = g->ttl;
		n++;
	}
	/* topgun.lww_put_many's body, without arrays, the SQL call and the text casts */
	tg_lww_put_batch(ops, n);
	for (int j = 0; j < n; j++)
	{
		GOp		   *g = &gops[idx[j]];

		if (ops[j].error)
		{
			/* validated in C and reported, not raised: the others commit */
			g->state = GS_REJECTED;
			g->reject = TG_REJECT_INVALID;
			g->error = MemoryContextStrdup(tg_proto_cxt, ops[j].error);
		}
		else
			g->state = ops[j].won ? GS_WON : GS_LOST;
	}
}

/*
 * One attempt at applying every non-rejected op.  Returns true on commit.
 * On failure, *bad is the index of the op that raised (or -1 if the error
 * was outside any op) and *edata the error.
 */
static bool
group_attempt(bool bulk, bool per_op_subxact, int *bad, ErrorData **edata)
{
	volatile int cur = -1;
	volatile bool ok = false;
	volatile int run_start = -1;

	for (int i = 0; i < ngops; i++)
		if (gops[i].state != GS_REJECTED)
			gops[i].state = GS_PENDING;

	PG_TRY();
	{
		tg_txn_begin();
		tg_apply_resolve(gbatches, ngbatches, gops, ngops);
		run_start = -1;
		for (volatile int i = 0; i < ngops; i++)
		{
			if (gops[i].state != GS_PENDING)
				continue;
			if (bulk)
			{
				/*
				 * Runs of consecutive LWW ops go in one statement; order
				 * with OR ops is kept (a map's kind is fixed by its first
				 * write).
				 */
				if (is_lww_op(&gops[i]))
				{
					if (run_start < 0)
						run_start = i;
					continue;
				}
				if (run_start >= 0)
				{
					cur = -1;
					lww_bulk_exec(run_start, i);
					run_start = -1;
				}
			}
			cur = i;
			if (!per_op_subxact)
				gop_exec(&gops[i]);
			else
			{
				ErrorData  *e = tg_subxact_run(gop_exec_cb, &gops[i]);

				if (e != NULL)
				{
					gop_reject(&gops[i], TG_REJECT_ERROR, e->message);
					tg_stat_add(TG_STAT_GROUP_RETRIES, 1);
				}
			}
		}
		if (run_start >= 0)
		{
			cur = -1;
			lww_bulk_exec(run_start, ngops);
		}
		cur = -1;
		group_hlc = tg_hlc_now_text();
		tg_txn_end();
		ok = true;
	}
	PG_CATCH();
	{
		*edata = tg_txn_recover();
		*bad = cur;
		ok = false;
	}
	PG_END_TRY();
	return ok;
}

/* The events of a batch's ops that changed state, to the other watchers. */
static void
fan_out_batch(GBatch *gb)
{
	TgEventList l;

	tg_events_init(&l);
	for (int i = gb->first; i < gb->first + gb->nops; i++)
	{
		TgOp	   *op = gops[i].op;
		TgEvent		e;

		if (gops[i].state != GS_WON)
			continue;
		memset(&e, 0, sizeof(e));
		e.map = op->map_name.p;
		e.maplen = op->map_name.len;
		e.key = op->key.p;
		e.keylen = op->key.len;
		switch (op->op_type)
		{
			case TG_OP_OR_ADD:
				e.kind = TG_EV_OR_ADD;
				e.value = op->or_record.value;
				e.ts = &op->or_record.ts;
				e.tag = op->or_record.tag.p;
				e.taglen = op->or_record.tag.len;
				e.has_ttl = op->or_record.has_ttl;
				e.ttl_ms = op->or_record.ttl_ms;
				break;
			case TG_OP_OR_REMOVE:
				e.kind = TG_EV_OR_REMOVE;
				e.tag = op->or_tag.p;
				e.taglen = op->or_tag.len;
				break;
			default:
				e.kind = TG_EV_UPDATED;
				e.value = op->op_type == TG_OP_REMOVE ? NULL : op->record.value;
				e.ts = &op->record.ts;
				e.has_ttl = op->record.has_ttl;
				e.ttl_ms = op->record.ttl_ms;
				break;
		}
		tg_events_add(&l, &e);
	}
	TG_ASSERT(l.n <= gb->nops);
	tg_events_fan_out(&l, group_hlc, gb->conn, gb->client_op);
	tg_events_free(&l);
}

static void
ack_batch(GBatch *gb)
{
	TgConn	   *c = gb->conn;
	int			nids = 0;
	TgAckedOp  *acked;

	c->pending_writes = 0;
	tg_conn_handled(c, 1);
	if (c->closed)
		return;
	{
		int			ndenied = 0;

		for (int i = gb->first; i < gb->first + gb->nops; i++)
			if (gops[i].denied)
				ndenied++;
		if (ndenied > 0 && !gb->client_op)
			tg_send_error(c, 403, psprintf("Partial batch failure: %d ops denied", ndenied));
		if (gb->refused)
			tg_send_error(c, 429, gb->refused);
	}
	if (gb->client_op)
	{
		GOp		   *g = &gops[gb->first];

		if (g->state == GS_REJECTED)
			tg_send_op_rejected(c, g->op, g->error);
		return;
	}
	for (int i = gb->first; i < gb->first + gb->nops; i++)
	{
		if (gops[i].op->has_id)
			nids++;
		/* a refused batch: its OP_ACK results say it, one ERROR 429 says why */
		if (gops[i].state == GS_REJECTED && gops[i].op->has_id && !gb->refused)
			tg_send_op_rejected(c, gops[i].op, gops[i].error);
	}
	if (nids == 0)
		return;
	acked = palloc(sizeof(TgAckedOp) * nids);
	nids = 0;
	for (int i = gb->first; i < gb->first + gb->nops; i++)
		if (gops[i].op->has_id)
		{
			acked[nids].op = gops[i].op;
			acked[nids++].error = gops[i].state == GS_REJECTED ? gops[i].error : NULL;
		}
	tg_send_op_ack(c, acked, nids);
	tg_stat_add(TG_STAT_ACKS, 1);
	tg_metrics_observe(TG_M_ACK_SECONDS, tg_metrics_now_us() - gb->in->rx_us);
}

static void
group_release(void)
{
	for (int i = 0; i < ngbatches; i++)
	{
		tg_message_free(gbatches[i].msg);
		free(gbatches[i].in->data);
		free(gbatches[i].in);
	}
	ngbatches = 0;
	ngops = 0;
}

void
tg_group_flush(void)
{
	int			failures = 0;
	bool		use_bulk = true;
	bool		committed = false;
	int			napplied = 0;
	int			nrejected = 0;
	bool		any = false;
	uint64		t0 = tg_metrics_now_us();

	if (ngbatches == 0)
		return;

	for (int i = 0; i < ngops; i++)
		if (gops[i].state != GS_REJECTED)
			any = true;

	group_hlc = NULL;
	while (any)
	{
		int			bad = -1;
		ErrorData  *edata = NULL;
		bool		bulk = use_bulk;

		if (group_attempt(bulk, failures >= MAX_FULL_RETRIES, &bad, &edata))
		{
			committed = true;
			break;
		}
		tg_stat_add(TG_STAT_GROUP_RETRIES, 1);
		if (bulk && bad < 0)
		{
			/* the bulk statement failed: find the culprit op by op */
			use_bulk = false;
			continue;
		}
		if (bad < 0)
		{
			/* not attributable to one op (commit failed, plans broken ...) */
			ereport(LOG,
					(errmsg("topgun: group commit failed: %s", edata->message)));
			for (int i = 0; i < ngops; i++)
				if (gops[i].state != GS_REJECTED)
					gop_reject(&gops[i], TG_REJECT_ERROR, edata->message);
			if (edata->sqlerrcode == ERRCODE_UNDEFINED_FUNCTION ||
				edata->sqlerrcode == ERRCODE_UNDEFINED_TABLE ||
				edata->sqlerrcode == ERRCODE_INVALID_SCHEMA_NAME ||
				edata->sqlerrcode == ERRCODE_UNDEFINED_OBJECT)
			{
				tg_plans_reset();
				tg_acl_invalidate();
				tg_request_ready_check();
			}
			break;
		}
		gop_reject(&gops[bad], TG_REJECT_ERROR, edata->message);
		failures++;
		any = false;
		for (int i = 0; i < ngops; i++)
			if (gops[i].state != GS_REJECTED)
				any = true;
	}

	if (committed)
	{
		tg_stat_add(TG_STAT_COMMITS, 1);
		pgstat_report_stat(false);
	}
	for (int i = 0; i < ngops; i++)
	{
		if (gops[i].state == GS_REJECTED)
		{
			nrejected++;
			tg_metrics_inc(TG_M_OPS_REJECTED, gops[i].reject, 1);
		}
		else
			napplied++;
	}
	if (committed)
	{
		tg_metrics_observe(TG_M_GROUP_SIZE, napplied);
		tg_metrics_observe(TG_M_COMMIT_SECONDS, tg_metrics_now_us() - t0);
	}
	tg_stat_add(TG_STAT_OPS_APPLIED, napplied);
	tg_stat_add(TG_STAT_OPS_REJECTED, nrejected);

#ifdef TG_DEBUG
	{
		int			nb = 0;

		for (int i = 0; i < ngops; i++)
			TG_ASSERT(gops[i].state != GS_PENDING);	/* every op has an outcome */
		for (int i = 0; i < ngbatches; i++)
		{
			TG_ASSERT(gbatches[i].first == nb);		/* batches tile the ops */
			nb += gbatches[i].nops;
		}
		TG_ASSERT(nb == ngops);
	}
#endif
	for (int i = 0; i < ngbatches; i++)
		ack_batch(&gbatches[i]);
	if (committed)
	{
		for (int i = 0; i < ngbatches; i++)
			fan_out_batch(&gbatches[i]);
		tg_apply_correct_writers(gbatches, gops, ngops);
		/* live queries see the worker's own LWW writes directly (OR via the feed) */
		for (int i = 0; i < ngops; i++)
		{
			GOp		   *g = &gops[i];

			if (g->state != GS_WON || !is_lww_op(g))
				continue;
			if (!tg_query_map_has_subs(g->op->map_name.p, g->op->map_name.len))
				continue;
			tg_query_on_change(g->op->map_name.p, g->op->map_name.len,
							   g->op->key.p, g->op->key.len,
							   g->op->op_type == TG_OP_REMOVE ? NULL : g->op->record.value);
		}
	}
	group_release();
}

/*
 * Take ownership of a parsed write message (OP_BATCH / CLIENT_OP): a batch
 * of the group, its ops pending.
 */
static GBatch *
group_take(TgConn *c, TgInMsg *in, TgMessage *msg)
{
	GBatch	   *gb;
	int			nops = msg->type == TG_MSG_CLIENT_OP ? 1 : (int) msg->u.op_batch.n_ops;

	if (ngops > 0 && ngops + nops > tg_group_commit_max_ops)
		tg_group_flush();

	if (ngbatches == gbatches_cap)
	{
		gbatches_cap = Max(16, gbatches_cap * 2);
		gbatches = gbatches ? repalloc(gbatches, sizeof(GBatch) * gbatches_cap)
			: MemoryContextAlloc(TopMemoryContext, sizeof(GBatch) * gbatches_cap);
	}
	if (ngops + nops > gops_cap)
	{
		gops_cap = Max(Max(256, gops_cap * 2), ngops + nops);
		gops = gops ? repalloc(gops, sizeof(GOp) * gops_cap)
			: MemoryContextAlloc(TopMemoryContext, sizeof(GOp) * gops_cap);
	}
	gb = &gbatches[ngbatches++];
	gb->conn = c;
	c->pending_writes++;
	gb->in = in;
	gb->msg = MemoryContextAlloc(tg_proto_cxt, sizeof(TgMessage));
	*gb->msg = *msg;
	gb->client_op = msg->type == TG_MSG_CLIENT_OP;
	gb->first = ngops;
	gb->nops = nops;
	gb->refused = NULL;
	for (int i = 0; i < nops; i++)
	{
		GOp		   *g = &gops[ngops++];

		memset(g, 0, sizeof(GOp));
		g->op = gb->client_op ? &gb->msg->u.client_op.op : &gb->msg->u.op_batch.ops[i];
		g->batch = ngbatches - 1;
		g->state = GS_PENDING;
	}
	return gb;
}

/*
 * A write message over the rate limits: every op is rejected "rate limited"
 * without being looked at, answered with the group's acks (so in order with
 * the connection's earlier batches) after one ERROR 429 carrying `why`.
 */
void
tg_group_refuse(TgConn *c, TgInMsg *in, TgMessage *msg, const char *why)
{
	GBatch	   *gb = group_take(c, in, msg);

	gb->refused = MemoryContextStrdup(tg_proto_cxt, why);
	for (int i = gb->first; i < gb->first + gb->nops; i++)
		gop_reject(&gops[i], TG_REJECT_RATE_LIMITED, "rate limited");
}

void
tg_group_add(TgConn *c, TgInMsg *in, TgMessage *msg)
{
	GBatch	   *gb = group_take(c, in, msg);

	for (int i = gb->first; i < gb->first + gb->nops; i++)
	{
		GOp		   *g = &gops[i];

		gop_prepare(g);
		if (g->state != GS_REJECTED)
		{
			/* REMOVE, or a record whose value is null, needs REMOVE; the rest PUT */
			TgOp	   *op = g->op;
			bool		is_remove = op->op_type == TG_OP_REMOVE ||
				(op->op_type != TG_OP_OR_ADD && op->op_type != TG_OP_OR_REMOVE &&
				 op->has_record && op->record.value->type == MP_NIL);

			if (!tg_acl_allowed(c, op->map_name.p, op->map_name.len,
								is_remove ? TG_ACT_REMOVE : TG_ACT_PUT))
			{
				gop_reject(g, TG_REJECT_ACCESS_DENIED, "Access denied");
				g->denied = true;
				c->denied++;
				c->slot_dirty = true;
				tg_stat_add(TG_STAT_ACCESS_DENIED, 1);
			}
		}
	}
}

