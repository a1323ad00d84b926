/*
 * worker_counters.c — PN counters over the wire (COUNTER_REQUEST /
 * COUNTER_SYNC → COUNTER_RESPONSE / COUNTER_UPDATE, PROTOCOL.md §5.3),
 * backed by the persistent SQL counter (topgun.counter_merge /
 * topgun.counter_state).
 *
 * Both input shapes are accepted ({p, n} and {positive, negative}, decoded
 * by src/wire) and the state is always emitted as {p, n, positive,
 * negative} with the same maps under both names.  A connection subscribes to
 * a counter with COUNTER_REQUEST or COUNTER_SYNC; it then receives a
 * COUNTER_UPDATE whenever the counter changes: after a COUNTER_SYNC of any
 * client (the syncing client included), and after any committed SQL change
 * (topgun.counter_add / counter_merge, via the change feed).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "executor/executor.h"

typedef struct PendingCounter
{
	struct PendingCounter *next;
	char	   *name;
	Jsonb	   *state;
	TgConn	   *also;
} PendingCounter;

static PendingCounter *pending = NULL;

static int	plan_state = -1;
static int	plan_merge = -1;

static char *
counter_resource(const char *name, size_t len)
{
	return psprintf("counter:%.*s", (int) len, name);
}

/* counter_state as jsonb (SPI connected), copied into the loop context. */
static Jsonb *
read_state(const char *name, size_t len)
{
	Oid			t = TEXTOID;
	Datum		arg = PointerGetDatum(cstring_to_text_with_len(name, len));
	bool		isnull;
	Datum		d;

	/* not read-only: it must see a merge made earlier in this transaction */
	if (SPI_execute_plan(tg_live_plan(&plan_state, "SELECT topgun.counter_state($1)", 1, &t),
						 &arg, NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "topgun: could not read counter state");
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull)
		return NULL;
	{
		Jsonb	   *src = DatumGetJsonbP(d);
		Jsonb	   *copy = MemoryContextAlloc(tg_proto_cxt, VARSIZE(src));

		memcpy(copy, src, VARSIZE(src));
		return copy;
	}
}

static void
put_side(MpBuf *b, Jsonb *state, const char *side)
{
	JsonbValue	k;
	JsonbValue *v;

	k.type = jbvString;
	k.val.string.val = (char *) side;
	k.val.string.len = strlen(side);
	v = state ? findJsonbValueFromContainer(&state->root, JB_FOBJECT, &k) : NULL;
	if (v != NULL && v->type == jbvBinary)
	{
		Jsonb	   *sub = JsonbValueToJsonb(v);

		tg_put_jsonb(b, sub);
	}
	else
		mp_put_map_header(b, 0);
}

static void
send_state(TgConn *c, const char *type, const char *name, size_t len, Jsonb *state)
{
	MpBuf	   *b = tg_buf_begin();

	mp_put_map_header(b, 2);
	mp_put_str(b, "type");
	mp_put_str(b, type);
	mp_put_str(b, "payload");
	mp_put_map_header(b, 2);
	mp_put_str(b, "name");
	mp_put_strn(b, name, len);
	mp_put_str(b, "state");
	mp_put_map_header(b, 4);
	mp_put_str(b, "p");
	put_side(b, state, "positive");
	mp_put_str(b, "n");
	put_side(b, state, "negative");
	mp_put_str(b, "positive");
	put_side(b, state, "positive");
	mp_put_str(b, "negative");
	put_side(b, state, "negative");
	tg_buf_send(c, b);
}

/* Send COUNTER_UPDATE to every subscriber of the counter (and `also`). */
void
tg_counter_push(const char *name, size_t len, Jsonb *state, TgConn *also)
{
	for (TgConn *c = tg_conns; c; c = c->next)
	{
		if (c->closed || c->closing || !c->authenticated)
			continue;
		if (c != also && (c->ncounters == 0 || !tg_namesub_has(c->counters, name, len)))
			continue;
		send_state(c, "COUNTER_UPDATE", name, len, state);
		tg_stat_add(TG_STAT_COUNTER_UPDATES, 1);
	}
}

void
tg_counters_after_commit(bool committed)
{
	while (pending)
	{
		PendingCounter *p = pending;

		pending = p->next;
		if (committed)
			tg_counter_push(p->name, strlen(p->name), p->state, p->also);
	}
}

static bool
subscribe(TgConn *c, const char *name, size_t len)
{
	if (tg_namesub_has(c->counters, name, len))
		return true;
	if (c->nqueries + c->ncounters >= tg_max_subscriptions_per_connection)
	{
		c->limit_hits++;
		c->slot_dirty = true;
		tg_stat_add(TG_STAT_LIMIT_REACHED, 1);
		tg_send_error(c, 400, "Subscription limit reached");
		return false;
	}
	if (!tg_namesub_add(&c->counters, name, len))
	{
		tg_send_error(c, 500, "Server out of memory");
		return false;
	}
	c->ncounters++;
	c->slot_dirty = true;
	return true;
}

static void
append_side(StringInfo s, const char *key, uint32 n, const TgCounterPart *parts)
{
	appendStringInfo(s, "\"%s\":{", key);
	for (uint32 i = 0; i < n; i++)
	{
		if (i > 0)
			appendStringInfoChar(s, ',');
		escape_json(s, pnstrdup(parts[i].node_id.p, parts[i].node_id.len));
		appendStringInfo(s, ":" INT64_FORMAT, (int64) parts[i].value);
	}
	appendStringInfoChar(s, '}');
}

/* COUNTER_REQUEST / COUNTER_SYNC, inside a transaction (run_db_message). */
void
tg_counter_handle(TgConn *c, TgMessage *m)
{
	if (m->type == TG_MSG_COUNTER_REQUEST)
	{
		TgStr		name = m->u.counter_request.name;
		char	   *res = counter_resource(name.p, name.len);

		if (!tg_acl_check(c, res, strlen(res), TG_ACT_READ))
			return;
		if (!subscribe(c, name.p, name.len))
			return;
		send_state(c, "COUNTER_RESPONSE", name.p, name.len, read_state(name.p, name.len));
		return;
	}
	else
	{
		TgStr		name = m->u.counter_sync.name;
		char	   *res = counter_resource(name.p, name.len);
		StringInfoData s;
		Oid			types[2] = {TEXTOID, JSONBOID};
		Datum		args[2];
		PendingCounter *p;

		if (!tg_acl_check(c, res, strlen(res), TG_ACT_PUT))
			return;
		initStringInfo(&s);
		appendStringInfoChar(&s, '{');
		append_side(&s, "p", m->u.counter_sync.n_p, m->u.counter_sync.p);
		appendStringInfoChar(&s, ',');
		append_side(&s, "n", m->u.counter_sync.n_n, m->u.counter_sync.n);
		appendStringInfoChar(&s, '}');
		args[0] = PointerGetDatum(cstring_to_text_with_len(name.p, name.len));
		args[1] = DirectFunctionCall1(jsonb_in, CStringGetDatum(s.data));
		if (SPI_execute_plan(tg_live_plan(&plan_merge, "SELECT topgun.counter_merge($1, $2)", 2, types),
							 args, NULL, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "topgun: counter merge failed");
		(void) subscribe(c, name.p, name.len);
		p = MemoryContextAlloc(tg_proto_cxt, sizeof(PendingCounter));
		p->name = MemoryContextStrdup(tg_proto_cxt, pnstrdup(name.p, name.len));
		p->state = read_state(name.p, name.len);
		p->also = c;
		p->next = pending;
		pending = p;
	}
}

void
tg_counters_conn_gone(TgConn *c)
{
	PendingCounter *p;

	tg_namesub_free(&c->counters);
	c->ncounters = 0;
	for (p = pending; p; p = p->next)
		if (p->also == c)
			p->also = NULL;
}
