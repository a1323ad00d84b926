/*
 * worker_proto.c — TopGun message handling of the sync server.
 *
 * Runs in the worker's main loop, never inside a libwebsockets callback, so
 * ereport(ERROR) can be caught here with PG_TRY without crossing lws frames.
 *
 * Writes (OP_BATCH, CLIENT_OP) are GROUP-COMMITTED: every write message that
 * arrived during one lws_service() iteration, from all connections, is
 * applied in one transaction and acknowledged after that commit is durable
 * (synchronous_commit is forced on for the worker).  An op that raises an
 * error aborts the group; the op is marked rejected and the group is retried
 * without it.  After a few such retries the group falls back to one
 * subtransaction per op, so a batch full of bad ops stays linear.
 *
 * Any other message that needs the database first flushes the pending group,
 * so a connection always sees its own writes in the answers that follow.
 */
#include "postgres.h"

#include <time.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"

#include "wire/message.h"
#include "wire/msgpack.h"
#include "worker/worker.h"
#include "worker/worker_int.h"
#include "worker/worker_live.h"
#include "executor/readers.h"
#include "executor/session.h"

#define THIRTY_DAYS_MS	(30LL * 24 * 3600 * 1000)
#define MAX_FULL_RETRIES 3

/* ------------------------------------------------------------ plans */

typedef enum PlanId
{
	PL_LWW_PUT,
	PL_OR_APPLY,
	PL_OR_REMOVE_TAG,
	PL_HLC_NOW,
	PL_MAP_KIND,
	PL_ROOT,
	PL_BUCKETS,
	PL_LWW_LEAF,
	PL_OR_LEAF,
	PL_OR_MERGE_KEY,
	PL_LWW_ENTRIES,
	PL_OR_ENTRIES,
	PL_OR_KEY_RECORDS,
	PL_OR_KEY_TOMBSTONES,
	PL_LWW_BULK,
	PL_COUNT
} PlanId;

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
	[PL_OR_MERGE_KEY] = {"SELECT topgun.or_merge_key($1, $2, $3::jsonb, $4)",
	4, {TEXTOID, TEXTOID, TEXTOID, TEXTARRAYOID}},
	[PL_LWW_ENTRIES] = {"SELECT key, value FROM topgun.lww_entries WHERE map = $1 ORDER BY key",
	1, {TEXTOID}},
	[PL_OR_ENTRIES] = {"SELECT key, pg_catalog.jsonb_agg(value ORDER BY tag) FROM topgun.or_entries WHERE map = $1 GROUP BY key ORDER BY key",
	1, {TEXTOID}},
	[PL_OR_KEY_RECORDS] = {"SELECT pg_catalog.jsonb_build_object('value', value, "
		"'timestamp', pg_catalog.jsonb_build_object('millis', topgun.hlc_millis(ts), 'counter', topgun.hlc_counter(ts), 'nodeId', topgun.hlc_node(ts)), "
		"'tag', tag) || CASE WHEN ttl_ms IS NULL THEN '{}'::jsonb ELSE pg_catalog.jsonb_build_object('ttlMs', ttl_ms) END "
		"FROM topgun.ormap WHERE map = $1 AND key = $2 ORDER BY tag",
	2, {TEXTOID, TEXTOID}},
	[PL_OR_KEY_TOMBSTONES] = {"SELECT tag FROM topgun.or_tombstones WHERE map = $1 ORDER BY tag",
	1, {TEXTOID}},
	[PL_LWW_BULK] = {"SELECT ord, won, error FROM topgun.lww_put_many($1, $2, $3::jsonb[], $4::topgun.hlc[], $5)",
	5, {TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, INT8ARRAYOID}},
};

static SPIPlanPtr plans[PL_COUNT];

/* Plans of the live-data modules: slot numbers handed out on first use. */
#define MAX_LIVE_PLANS 64
static SPIPlanPtr live_plans[MAX_LIVE_PLANS];
static int	n_live_plans = 0;

void
tg_proto_reset_plans(void)
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
	tg_acl_invalidate();
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
get_plan(PlanId id)
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

static int
run_plan(PlanId id, Datum *args, const char *nulls, bool read_only)
{
	int			rc = SPI_execute_plan(get_plan(id), args, nulls, read_only, 0);

	if (rc != SPI_OK_SELECT)
		elog(ERROR, "topgun: SPI_execute_plan returned %s", SPI_result_code_string(rc));
	return (int) SPI_processed;
}

/* --------------------------------------------------------- transactions */

static MemoryContext proto_cxt;	/* the main loop's per-iteration context */
MemoryContext tg_proto_cxt;

static void
begin_txn(void)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	MemoryContextSwitchTo(proto_cxt);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "topgun: SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
}

static void
end_txn(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	MemoryContextSwitchTo(proto_cxt);
}

/* In PG_CATCH: recover and return a copy of the error (in proto_cxt). */
static ErrorData *
recover_error(void)
{
	ErrorData  *edata;

	MemoryContextSwitchTo(proto_cxt);
	edata = CopyErrorData();
	FlushErrorState();
	AbortCurrentTransaction();
	MemoryContextSwitchTo(proto_cxt);
	return edata;
}

/* --------------------------------------------------------- encoding */

static MpBuf obuf;				/* scratch message buffer */
static bool obuf_init = false;

static MpBuf *
buf_begin(void)
{
	if (!obuf_init)
	{
		mp_buf_init(&obuf, (size_t) 1 << 30);
		obuf_init = true;
	}
	mp_buf_reset(&obuf);
	return &obuf;
}

static void
put_key(MpBuf *b, const char *k)
{
	mp_put_str(b, k);
}

static void
put_tgstr(MpBuf *b, TgStr s)
{
	mp_put_strn(b, s.p, s.len);
}

static void
buf_send(TgConn *c, MpBuf *b)
{
	if (!mp_buf_ok(b))
	{
		ereport(LOG, (errmsg("topgun: could not encode a reply for connection %llu (too large or out of memory)",
							 (unsigned long long) c->id)));
		return;
	}
	tg_conn_send(c, b->data, b->len);
}

static void
send_error(TgConn *c, int code, const char *message)
{
	MpBuf	   *b = buf_begin();

	mp_put_map_header(b, 2);
	put_key(b, "type");
	mp_put_str(b, "ERROR");
	put_key(b, "payload");
	mp_put_map_header(b, 2);
	put_key(b, "code");
	mp_put_int(b, code);
	put_key(b, "message");
	mp_put_str(b, message);
	buf_send(c, b);
}

static void
send_simple(TgConn *c, const char *type)
{
	MpBuf	   *b = buf_begin();

	mp_put_map_header(b, 1);
	put_key(b, "type");
	mp_put_str(b, type);
	buf_send(c, b);
}

/* ------------------------------------------- exports for worker_live.h */

/* Make cxt the context that transactions return to (main-loop callers). */
void
tg_proto_enter(MemoryContext cxt)
{
	proto_cxt = cxt;
	tg_proto_cxt = cxt;
}

static void put_jsonb(MpBuf *b, Jsonb *jb);
static void put_hlc_text(MpBuf *b, const char *hlc);

MpBuf *
tg_buf_begin(void)
{
	return buf_begin();
}

void
tg_buf_send(TgConn *c, MpBuf *b)
{
	buf_send(c, b);
}

void
tg_send_error(TgConn *c, int code, const char *message)
{
	send_error(c, code, message);
}

void
tg_put_jsonb(MpBuf *b, Jsonb *jb)
{
	put_jsonb(b, jb);
}

void
tg_put_hlc_text(MpBuf *b, const char *hlc)
{
	put_hlc_text(b, hlc);
}

void
tg_txn_begin(void)
{
	begin_txn();
}

void
tg_txn_end(void)
{
	end_txn();
}

ErrorData *
tg_txn_recover(void)
{
	return recover_error();
}

/* jsonb → msgpack → decoded tree (the query engine works on msgpack trees). */
MpNode *
tg_jsonb_to_node(MpArena *arena, Jsonb *jb)
{
	MpBuf		b;
	MpLimits	lim = {64, 0, 0};
	char		err[128];
	uint8_t    *copy;
	MpNode	   *n = NULL;

	mp_buf_init(&b, (size_t) 1 << 30);
	put_jsonb(&b, jb);
	if (mp_buf_ok(&b))
	{
		lim.max_nodes = (uint32) Min((size_t) UINT32_MAX - 1, b.len + 1);
		lim.max_str = (uint32) Min((size_t) UINT32_MAX - 1, Max(b.len, 1));
		copy = mp_arena_alloc(arena, b.len);
		if (copy)
		{
			memcpy(copy, b.data, b.len);
			n = mp_decode(arena, copy, b.len, &lim, err, sizeof(err));
		}
	}
	mp_buf_free(&b);
	return n;
}

/* "millis:counter:node" text of topgun.hlc → Timestamp map. */
static void
put_hlc_text(MpBuf *b, const char *hlc)
{
	const char *p1 = strchr(hlc, ':');
	const char *p2 = p1 ? strchr(p1 + 1, ':') : NULL;
	int64		millis;
	long		counter;

	if (p1 == NULL || p2 == NULL)
		elog(ERROR, "topgun: malformed hlc text \"%s\"", hlc);
	millis = strtoll(hlc, NULL, 10);
	counter = strtol(p1 + 1, NULL, 10);
	mp_put_timestamp(b, millis, (uint32) counter, p2 + 1, strlen(p2 + 1));
}

static void
put_tg_timestamp(MpBuf *b, const TgTimestamp *ts)
{
	mp_put_timestamp(b, ts->millis, ts->counter, ts->node_id.p, ts->node_id.len);
}

/* jsonb → msgpack: integral numbers in int32/uint32 range as ints, else float64. */
static void
put_jsonb_scalar(MpBuf *b, JsonbValue *v)
{
	switch (v->type)
	{
		case jbvNull:
			mp_put_nil(b);
			break;
		case jbvString:
			mp_put_strn(b, v->val.string.val, v->val.string.len);
			break;
		case jbvBool:
			mp_put_bool(b, v->val.boolean);
			break;
		case jbvNumeric:
			mp_put_number(b, DatumGetFloat8(DirectFunctionCall1(numeric_float8,
																NumericGetDatum(v->val.numeric))));
			break;
		default:
			elog(ERROR, "topgun: unexpected jsonb value type %d", (int) v->type);
	}
}

static void
put_jsonb(MpBuf *b, Jsonb *jb)
{
	JsonbIterator *it = JsonbIteratorInit(&jb->root);
	JsonbValue	v;
	JsonbIteratorToken r;

	while ((r = JsonbIteratorNext(&it, &v, false)) != WJB_DONE)
	{
		switch (r)
		{
			case WJB_BEGIN_ARRAY:
				if (!v.val.array.rawScalar)
					mp_put_array_header(b, (uint32) v.val.array.nElems);
				break;
			case WJB_BEGIN_OBJECT:
				mp_put_map_header(b, (uint32) v.val.object.nPairs);
				break;
			case WJB_KEY:
				mp_put_strn(b, v.val.string.val, v.val.string.len);
				break;
			case WJB_VALUE:
			case WJB_ELEM:
				put_jsonb_scalar(b, &v);
				break;
			default:
				break;
		}
	}
}

/* ------------------------------------------------------------ helpers */

static char *
pstr(TgStr s)
{
	return pnstrdup(s.p, s.len);
}

static char *
hlc_text(const TgTimestamp *ts)
{
	return psprintf(INT64_FORMAT ":%u:%.*s", ts->millis, ts->counter,
					(int) ts->node_id.len, ts->node_id.p);
}

static bool
watches_map(TgConn *c, const char *map, size_t len)
{
	for (TgWatch *w = c->watches; w; w = w->next)
		if (strlen(w->map) == len && memcmp(w->map, map, len) == 0)
			return true;
	return false;
}

bool
tg_watches_map(TgConn *c, const char *map, size_t len)
{
	return watches_map(c, map, len);
}

static void
add_watch(TgConn *c, TgStr map, TgStr *query_id)
{
	TgWatch    *w;

	if (query_id == NULL && watches_map(c, map.p, map.len))
		return;
	if (query_id)
	{
		/* QUERY_SUB re-sent with the same id replaces the old one */
		for (w = c->watches; w; w = w->next)
			if (w->query_id && strlen(w->query_id) == query_id->len &&
				memcmp(w->query_id, query_id->p, query_id->len) == 0)
				return;
	}
	w = malloc(offsetof(TgWatch, map) + map.len + 1);
	if (w == NULL)
		return;
	memcpy(w->map, map.p, map.len);
	w->map[map.len] = '\0';
	w->query_id = NULL;
	if (query_id)
	{
		w->query_id = malloc(query_id->len + 1);
		if (w->query_id == NULL)
		{
			free(w);
			return;
		}
		memcpy(w->query_id, query_id->p, query_id->len);
		w->query_id[query_id->len] = '\0';
	}
	w->next = c->watches;
	c->watches = w;
	c->nwatches++;
}

static void
drop_query_watch(TgConn *c, TgStr query_id)
{
	TgWatch   **pp = &c->watches;

	while (*pp)
	{
		TgWatch    *w = *pp;

		if (w->query_id && strlen(w->query_id) == query_id.len &&
			memcmp(w->query_id, query_id.p, query_id.len) == 0)
		{
			*pp = w->next;
			free(w->query_id);
			free(w);
			c->nwatches--;
			continue;
		}
		pp = &w->next;
	}
}

/* ------------------------------------------------- invalid traffic */

static void
flush_invalid_summary(TgConn *c)
{
	if (c->log_suppressed > 0)
		ereport(LOG,
				(errmsg("topgun: connection %llu (%s): %d invalid messages suppressed",
						(unsigned long long) c->id, c->remote, c->log_suppressed)));
	c->log_suppressed = 0;
}

static void
note_invalid(TgConn *c, const char *reason)
{
	int64		now = tg_mono_ms();
	char		msg[600];

	tg_stat_add(TG_STAT_MSG_INVALID, 1);
	c->invalid_total++;

	if (now - c->log_window_start_ms >= 10000)
	{
		flush_invalid_summary(c);
		c->log_window_start_ms = now;
		c->log_window_count = 0;
	}
	if (c->log_window_count < 5)
	{
		c->log_window_count++;
		ereport(LOG,
				(errmsg("topgun: invalid message from connection %llu (%s): %s",
						(unsigned long long) c->id, c->remote, reason)));
	}
	else
		c->log_suppressed++;

	snprintf(msg, sizeof(msg), "Invalid message format: %s", reason);
	send_error(c, 400, msg);

	if (c->invalid_total > tg_invalid_message_budget)
	{
		flush_invalid_summary(c);
		ereport(LOG,
				(errmsg("topgun: closing connection %llu (%s): more than %d invalid messages",
						(unsigned long long) c->id, c->remote, tg_invalid_message_budget)));
		tg_conn_close(c, 1008, "Too many invalid messages");
	}
}

void
tg_proto_conn_gone(TgConn *c)
{
	flush_invalid_summary(c);
}

/* ------------------------------------------------------------- auth */

/*
 * Failed AUTHs are logged at most 10 times per 10 s window (server-wide:
 * an attacker reconnects for every attempt), then one summary line.
 */
static int64 auth_log_window_ms = 0;
static int	auth_log_count = 0;
static int	auth_log_suppressed = 0;

static bool
auth_log_allowed(void)
{
	int64		now = tg_mono_ms();

	if (now - auth_log_window_ms >= 10000)
	{
		if (auth_log_suppressed > 0)
			ereport(LOG,
					(errmsg("topgun: %d authentication failure messages suppressed",
							auth_log_suppressed)));
		auth_log_window_ms = now;
		auth_log_count = 0;
		auth_log_suppressed = 0;
	}
	if (auth_log_count < 10)
	{
		auth_log_count++;
		return true;
	}
	auth_log_suppressed++;
	return false;
}

static void
handle_auth(TgConn *c, TgMessage *m)
{
	TgJwtClaims claims;
	char		err[128];
	TgJwtResult r;
	MpBuf	   *b;

	if (c->authenticated)
		return;					/* the client sends AUTH twice; ignore */

	if (!tg_jwt_key_ok)
	{
		r = TG_JWT_BAD_SIGNATURE;
		strlcpy(err, "server authentication is not configured", sizeof(err));
	}
	else
		r = tg_jwt_verify(&tg_jwt_key, m->u.auth.token.p, m->u.auth.token.len,
						  (int64_t) time(NULL), tg_jwt_leeway_s, 0, 0,
						  &claims, err, sizeof(err));
	if (r != TG_JWT_OK)
	{
		tg_stat_add(TG_STAT_AUTH_FAILED, 1);
		if (auth_log_allowed())
			ereport(LOG,
					(errmsg("topgun: authentication failed for connection %llu (%s): %s",
							(unsigned long long) c->id, c->remote, err)));
		b = buf_begin();
		mp_put_map_header(b, 2);
		put_key(b, "type");
		mp_put_str(b, "AUTH_FAIL");
		put_key(b, "error");
		mp_put_str(b, err);
		buf_send(c, b);
		tg_conn_close(c, 4001, "Unauthorized");
		return;
	}

	tg_stat_add(TG_STAT_AUTH_OK, 1);
	c->authenticated = true;
	c->last_ping_ms = tg_mono_ms();
	strlcpy(c->sub, claims.has_sub ? claims.sub : "", sizeof(c->sub));
	strlcpy(c->user_id, claims.has_user_id ? claims.user_id : "", sizeof(c->user_id));
	for (int i = 0; i < c->nroles; i++)
		free(c->roles[i]);
	c->nroles = 0;
	for (int i = 0; i < claims.nroles && i < TG_MAX_ROLES; i++)
	{
		c->roles[c->nroles] = strdup(claims.roles[i]);
		if (c->roles[c->nroles])
			c->nroles++;
	}
	tg_acl_after_auth(c);
	send_simple(c, "AUTH_ACK");
	tg_conn_update_slot(c);
}

static void
handle_ping(TgConn *c)
{
	MpBuf	   *b = buf_begin();

	c->last_ping_ms = tg_mono_ms();
	/* no top-level numeric timestamp: it would corrupt the client HLC */
	mp_put_map_header(b, 2);
	put_key(b, "type");
	mp_put_str(b, "PONG");
	put_key(b, "serverTime");
	mp_put_float64(b, (double) tg_now_ms());
	buf_send(c, b);
}

/* ------------------------------------------------------ group commit */

typedef enum GState
{
	GS_PENDING = 0,
	GS_WON,						/* stored: fan out */
	GS_LOST,					/* merge kept the existing state: success */
	GS_REJECTED
} GState;

typedef struct GOp
{
	TgOp	   *op;
	int			batch;
	char	   *map;
	char	   *key;
	char	   *json;			/* value as JSON text (PUT/REMOVE/OR_ADD) */
	char	   *ts;				/* hlc text */
	char	   *tag;			/* OR_ADD tag / OR_REMOVE tag */
	bool		has_ttl;
	int64		ttl;
	GState		state;
	char	   *error;
	bool		denied;			/* refused by access control */
} GOp;

typedef struct GBatch
{
	TgConn	   *conn;
	TgInMsg    *in;				/* owns the frame bytes */
	TgMessage  *msg;			/* owns the tree (palloc'd: ops point into it) */
	bool		client_op;
	int			first;
	int			nops;
} GBatch;

static GBatch *gbatches = NULL;
static int	ngbatches = 0;
static int	gbatches_cap = 0;
static GOp *gops = NULL;
static int	ngops = 0;
static int	gops_cap = 0;

static void
gop_reject(GOp *g, const char *why)
{
	g->state = GS_REJECTED;
	g->error = pstrdup(why);
}

/* Pure-C preparation of one op (no SQL). */
static void
gop_prepare(GOp *g)
{
	TgOp	   *op = g->op;
	char		err[256];
	const MpNode *value = NULL;

	if (!op->valid)
	{
		gop_reject(g, op->error ? op->error : "invalid op");
		return;
	}
	g->map = pstr(op->map_name);
	g->key = pstr(op->key);
	switch (op->op_type)
	{
		case TG_OP_OR_ADD:
			value = op->or_record.value;
			g->ts = hlc_text(&op->or_record.ts);
			g->tag = pstr(op->or_record.tag);
			g->has_ttl = op->or_record.has_ttl;
			g->ttl = op->or_record.ttl_ms;
			break;
		case TG_OP_OR_REMOVE:
			g->tag = pstr(op->or_tag);
			return;
		default:
			value = op->record.value;
			g->ts = hlc_text(&op->record.ts);
			g->has_ttl = op->record.has_ttl;
			g->ttl = op->record.ttl_ms;
			/* REMOVE always means a tombstone */
			if (op->op_type == TG_OP_REMOVE)
				value = NULL;
			break;
	}
	if (value == NULL || value->type == MP_NIL)
		g->json = "null";
	else
	{
		MpBuf		jb;

		mp_buf_init(&jb, (size_t) tg_max_message_bytes * 2 + 1024);
		if (!mp_value_to_json(value, &jb, err, sizeof(err)))
		{
			mp_buf_free(&jb);
			gop_reject(g, psprintf("Invalid value: %s", err));
			return;
		}
		g->json = pnstrdup((const char *) jb.data, jb.len);
		mp_buf_free(&jb);
	}
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
			run_plan(PL_OR_APPLY, args, nulls, false);
			break;
		case TG_OP_OR_REMOVE:
			args[0] = CStringGetTextDatum(g->map);
			args[1] = CStringGetTextDatum(g->tag);
			run_plan(PL_OR_REMOVE_TAG, args, nulls, false);
			break;
		default:
			args[0] = CStringGetTextDatum(g->map);
			args[1] = CStringGetTextDatum(g->key);
			args[2] = CStringGetTextDatum(g->json);
			args[3] = CStringGetTextDatum(g->ts);
			args[4] = Int64GetDatum(g->ttl);
			if (!g->has_ttl)
				nulls[4] = 'n';
			run_plan(PL_LWW_PUT, args, nulls, false);
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

static char *
fetch_hlc_now(void)
{
	bool		isnull;
	Datum		d;

	run_plan(PL_HLC_NOW, NULL, NULL, false);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return MemoryContextStrdup(proto_cxt, TextDatumGetCString(d));
}

static ArrayType *
text_array(Datum *elems, int n)
{
	return construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT);
}

/*
 * Apply every pending LWW op of the group with ONE call of
 * topgun.lww_put_many(): it validates every op in C and reports problems per
 * op (kind mismatch, limits, strict clock drift ...) instead of raising,
 * collapses duplicate keys (newest wins) and runs a single INSERT ... ON
 * CONFLICT in index order.  Only an unexpected error raises; the caller then
 * retries the group op by op.
 */
static bool
is_lww_op(const GOp *g)
{
	return g->op->op_type != TG_OP_OR_ADD && g->op->op_type != TG_OP_OR_REMOVE;
}

static void gop_exec(GOp *g);

static void
lww_bulk_exec(int from, int to)
{
	int			n = 0;
	int		   *idx;
	Datum	   *m, *k, *v, *t, *ttl;
	bool	   *ttlnull;
	Datum		args[5];
	int			dims[1];
	int			lbs[1] = {1};
	int			rows;

	for (int i = from; i < to; i++)
		if (gops[i].state == GS_PENDING && is_lww_op(&gops[i]))
			n++;
	if (n == 0)
		return;
	idx = palloc(sizeof(int) * n);
	m = palloc(sizeof(Datum) * n);
	k = palloc(sizeof(Datum) * n);
	v = palloc(sizeof(Datum) * n);
	t = palloc(sizeof(Datum) * n);
	ttl = palloc(sizeof(Datum) * n);
	ttlnull = palloc(sizeof(bool) * n);
	n = 0;
	for (int i = from; i < to; i++)
	{
		GOp		   *g = &gops[i];

		if (g->state != GS_PENDING || !is_lww_op(g))
			continue;
		idx[n] = i;
		m[n] = CStringGetTextDatum(g->map);
		k[n] = CStringGetTextDatum(g->key);
		v[n] = CStringGetTextDatum(g->json);
		t[n] = CStringGetTextDatum(g->ts);
		ttl[n] = Int64GetDatum(g->ttl);
		ttlnull[n] = !g->has_ttl;
		n++;
	}
	dims[0] = n;
	args[0] = PointerGetDatum(text_array(m, n));
	args[1] = PointerGetDatum(text_array(k, n));
	args[2] = PointerGetDatum(text_array(v, n));
	args[3] = PointerGetDatum(text_array(t, n));
	args[4] = PointerGetDatum(construct_md_array(ttl, ttlnull, 1, dims, lbs, INT8OID,
												 sizeof(int64), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	rows = run_plan(PL_LWW_BULK, args, NULL, false);
	for (int r = 0; r < rows; r++)
	{
		bool		isnull;
		bool		errnull;
		int			ord = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &isnull));
		Datum		won = SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 2, &isnull);
		Datum		err = SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 3, &errnull);

		if (ord < 1 || ord > n)
			elog(ERROR, "topgun: bulk apply returned row %d of %d", ord, n);
		if (!errnull)
		{
			/* validated in C and reported, not raised: the others commit */
			gops[idx[ord - 1]].state = GS_REJECTED;
			gops[idx[ord - 1]].error = MemoryContextStrdup(proto_cxt, TextDatumGetCString(err));
			continue;
		}
		gops[idx[ord - 1]].state = (!isnull && DatumGetBool(won)) ? GS_WON : GS_LOST;
	}
	for (int j = 0; j < n; j++)
		if (gops[idx[j]].state == GS_PENDING)
			elog(ERROR, "topgun: bulk apply lost an op");
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
		begin_txn();
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
				MemoryContext oldcxt = CurrentMemoryContext;
				ResourceOwner oldowner = CurrentResourceOwner;

				BeginInternalSubTransaction(NULL);
				MemoryContextSwitchTo(oldcxt);
				PG_TRY();
				{
					gop_exec(&gops[i]);
					ReleaseCurrentSubTransaction();
					MemoryContextSwitchTo(oldcxt);
					CurrentResourceOwner = oldowner;
				}
				PG_CATCH();
				{
					ErrorData  *e;

					MemoryContextSwitchTo(proto_cxt);
					e = CopyErrorData();
					FlushErrorState();
					RollbackAndReleaseCurrentSubTransaction();
					MemoryContextSwitchTo(oldcxt);
					CurrentResourceOwner = oldowner;
					gop_reject(&gops[i], e->message);
					tg_stat_add(TG_STAT_GROUP_RETRIES, 1);
				}
				PG_END_TRY();
			}
		}
		if (run_start >= 0)
		{
			cur = -1;
			lww_bulk_exec(run_start, ngops);
		}
		cur = -1;
		group_hlc = fetch_hlc_now();
		end_txn();
		ok = true;
	}
	PG_CATCH();
	{
		*edata = recover_error();
		*bad = cur;
		ok = false;
	}
	PG_END_TRY();
	return ok;
}

/* Encode one event {mapName,key,eventType,...} of a won op. */
static void
put_event(MpBuf *b, GOp *g)
{
	TgOp	   *op = g->op;

	mp_put_map_header(b, 4);
	put_key(b, "mapName");
	put_tgstr(b, op->map_name);
	put_key(b, "key");
	put_tgstr(b, op->key);
	put_key(b, "eventType");
	switch (op->op_type)
	{
		case TG_OP_OR_ADD:
			mp_put_str(b, "OR_ADD");
			put_key(b, "orRecord");
			mp_put_map_header(b, op->or_record.has_ttl ? 4 : 3);
			put_key(b, "value");
			mp_put_node(b, op->or_record.value);
			put_key(b, "timestamp");
			put_tg_timestamp(b, &op->or_record.ts);
			put_key(b, "tag");
			put_tgstr(b, op->or_record.tag);
			if (op->or_record.has_ttl)
			{
				put_key(b, "ttlMs");
				mp_put_int(b, op->or_record.ttl_ms);
			}
			break;
		case TG_OP_OR_REMOVE:
			mp_put_str(b, "OR_REMOVE");
			put_key(b, "orTag");
			put_tgstr(b, op->or_tag);
			break;
		default:
			mp_put_str(b, "UPDATED");
			put_key(b, "record");
			mp_put_map_header(b, op->record.has_ttl ? 3 : 2);
			put_key(b, "value");
			if (op->op_type == TG_OP_REMOVE)
				mp_put_nil(b);
			else
				mp_put_node(b, op->record.value);
			put_key(b, "timestamp");
			put_tg_timestamp(b, &op->record.ts);
			if (op->record.has_ttl)
			{
				put_key(b, "ttlMs");
				mp_put_int(b, op->record.ttl_ms);
			}
			break;
	}
}

static void
fan_out_batch(GBatch *gb)
{
	int			nwon = 0;
	MpBuf		evbuf;
	size_t	   *ev_off;
	size_t	   *ev_len;
	GOp		  **evop;
	MpBuf		tsbuf;

	for (int i = gb->first; i < gb->first + gb->nops; i++)
		if (gops[i].state == GS_WON)
			nwon++;
	if (nwon == 0 || group_hlc == NULL)
		return;
	TG_ASSERT(nwon <= gb->nops);

	/* encode every event once */
	mp_buf_init(&evbuf, 0);
	mp_buf_init(&tsbuf, 0);
	put_hlc_text(&tsbuf, group_hlc);
	ev_off = palloc(sizeof(size_t) * nwon);
	ev_len = palloc(sizeof(size_t) * nwon);
	evop = palloc(sizeof(GOp *) * nwon);
	nwon = 0;
	for (int i = gb->first; i < gb->first + gb->nops; i++)
	{
		if (gops[i].state != GS_WON)
			continue;
		ev_off[nwon] = evbuf.len;
		put_event(&evbuf, &gops[i]);
		ev_len[nwon] = evbuf.len - ev_off[nwon];
		evop[nwon] = &gops[i];
		nwon++;
	}
	if (!mp_buf_ok(&evbuf) || !mp_buf_ok(&tsbuf))
	{
		mp_buf_free(&evbuf);
		mp_buf_free(&tsbuf);
		return;
	}

	for (TgConn *c = tg_conns; c; c = c->next)
	{
		int			n = 0;
		MpBuf	   *b;

		if (c == gb->conn || c->closed || c->closing || !c->authenticated ||
			c->watches == NULL)
			continue;
		/* a watch exists only if READ was allowed (re-checked on policy changes) */
		for (int e = 0; e < nwon; e++)
			if (watches_map(c, evop[e]->op->map_name.p, evop[e]->op->map_name.len))
				n++;
		if (n == 0)
			continue;
		b = buf_begin();
		if (gb->client_op)
		{
			/* CLIENT_OP has a single op: SERVER_EVENT */
			mp_put_map_header(b, 3);
			put_key(b, "type");
			mp_put_str(b, "SERVER_EVENT");
			put_key(b, "payload");
			mp_put_raw(b, evbuf.data + ev_off[0], ev_len[0]);
		}
		else
		{
			mp_put_map_header(b, 3);
			put_key(b, "type");
			mp_put_str(b, "SERVER_BATCH_EVENT");
			put_key(b, "payload");
			mp_put_map_header(b, 1);
			put_key(b, "events");
			mp_put_array_header(b, n);
			for (int e = 0; e < nwon; e++)
				if (watches_map(c, evop[e]->op->map_name.p, evop[e]->op->map_name.len))
					mp_put_raw(b, evbuf.data + ev_off[e], ev_len[e]);
		}
		put_key(b, "timestamp");
		mp_put_raw(b, tsbuf.data, tsbuf.len);
		buf_send(c, b);
		tg_stat_add(TG_STAT_EVENTS_SENT, 1);
	}
	mp_buf_free(&evbuf);
	mp_buf_free(&tsbuf);
}

static void
send_op_rejected(TgConn *c, TgOp *op, const char *reason)
{
	MpBuf	   *b = buf_begin();

	mp_put_map_header(b, 2);
	put_key(b, "type");
	mp_put_str(b, "OP_REJECTED");
	put_key(b, "payload");
	mp_put_map_header(b, 2);
	put_key(b, "opId");
	if (op->has_id)
		put_tgstr(b, op->id);
	else
		mp_put_str(b, "");
	put_key(b, "reason");
	mp_put_str(b, reason);
	buf_send(c, b);
}

static void
ack_batch(GBatch *gb)
{
	TgConn	   *c = gb->conn;
	int			nids = 0;
	int			last = -1;
	MpBuf	   *b;

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
			send_error(c, 403, psprintf("Partial batch failure: %d ops denied", ndenied));
	}
	if (gb->client_op)
	{
		GOp		   *g = &gops[gb->first];

		if (g->state == GS_REJECTED)
			send_op_rejected(c, g->op, g->error);
		return;
	}
	for (int i = gb->first; i < gb->first + gb->nops; i++)
	{
		if (gops[i].op->has_id)
		{
			nids++;
			last = i;
		}
		if (gops[i].state == GS_REJECTED && gops[i].op->has_id)
			send_op_rejected(c, gops[i].op, gops[i].error);
	}
	if (nids == 0)
		return;

	b = buf_begin();
	mp_put_map_header(b, 2);
	put_key(b, "type");
	mp_put_str(b, "OP_ACK");
	put_key(b, "payload");
	mp_put_map_header(b, 3);
	put_key(b, "lastId");
	put_tgstr(b, gops[last].op->id);
	put_key(b, "achievedLevel");
	mp_put_str(b, "PERSISTED");
	put_key(b, "results");
	mp_put_array_header(b, nids);
	for (int i = gb->first; i < gb->first + gb->nops; i++)
	{
		GOp		   *g = &gops[i];

		if (!g->op->has_id)
			continue;
		if (g->state == GS_REJECTED)
		{
			mp_put_map_header(b, 4);
			put_key(b, "opId");
			put_tgstr(b, g->op->id);
			put_key(b, "success");
			mp_put_bool(b, false);
			put_key(b, "achievedLevel");
			mp_put_str(b, "FIRE_AND_FORGET");
			put_key(b, "error");
			mp_put_str(b, g->error);
		}
		else
		{
			mp_put_map_header(b, 3);
			put_key(b, "opId");
			put_tgstr(b, g->op->id);
			put_key(b, "success");
			mp_put_bool(b, true);
			put_key(b, "achievedLevel");
			mp_put_str(b, "PERSISTED");
		}
	}
	buf_send(c, b);
	tg_stat_add(TG_STAT_ACKS, 1);
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

static void
group_flush(void)
{
	int			failures = 0;
	bool		use_bulk = true;
	bool		committed = false;
	int			napplied = 0;
	int			nrejected = 0;
	bool		any = false;

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
					gop_reject(&gops[i], edata->message);
			if (edata->sqlerrcode == ERRCODE_UNDEFINED_FUNCTION ||
				edata->sqlerrcode == ERRCODE_UNDEFINED_TABLE ||
				edata->sqlerrcode == ERRCODE_INVALID_SCHEMA_NAME ||
				edata->sqlerrcode == ERRCODE_UNDEFINED_OBJECT)
			{
				tg_proto_reset_plans();
				tg_request_ready_check();
			}
			break;
		}
		gop_reject(&gops[bad], edata->message);
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
			nrejected++;
		else
			napplied++;
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

void
tg_group_flush_pending(void)
{
	group_flush();
}

/* Take ownership of a parsed write message (OP_BATCH / CLIENT_OP). */
static void
group_add(TgConn *c, TgInMsg *in, TgMessage *msg)
{
	GBatch	   *gb;
	int			nops = msg->type == TG_MSG_CLIENT_OP ? 1 : (int) msg->u.op_batch.n_ops;

	if (ngops > 0 && ngops + nops > tg_group_commit_max_ops)
		group_flush();

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
	gb->msg = MemoryContextAlloc(proto_cxt, sizeof(TgMessage));
	*gb->msg = *msg;
	gb->client_op = msg->type == TG_MSG_CLIENT_OP;
	gb->first = ngops;
	gb->nops = nops;
	for (int i = 0; i < nops; i++)
	{
		GOp		   *g = &gops[ngops++];

		memset(g, 0, sizeof(GOp));
		g->op = gb->client_op ? &gb->msg->u.client_op.op : &gb->msg->u.op_batch.ops[i];
		g->batch = ngbatches - 1;
		g->state = GS_PENDING;
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
				gop_reject(g, "Access denied");
				g->denied = true;
				c->denied++;
				c->slot_dirty = true;
				tg_stat_add(TG_STAT_ACCESS_DENIED, 1);
			}
		}
	}
}

/* ------------------------------------------------------ read handlers */

static char *
map_kind(const char *map)
{
	Datum		arg = CStringGetTextDatum(map);
	bool		isnull;
	Datum		d;

	if (run_plan(PL_MAP_KIND, &arg, NULL, true) != 1)
		return NULL;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? NULL : TextDatumGetCString(d);
}

static uint32
merkle_root(const char *map)
{
	Datum		arg = CStringGetTextDatum(map);
	bool		isnull;
	Datum		d;

	if (run_plan(PL_ROOT, &arg, NULL, true) != 1)
		return 0;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? 0 : (uint32) DatumGetInt64(d);
}

static bool
too_old(bool has, double last_sync)
{
	return has && last_sync > 0 && (double) tg_now_ms() - last_sync > (double) THIRTY_DAYS_MS;
}

static void
send_reset_required(TgConn *c, TgStr map)
{
	MpBuf	   *b = buf_begin();

	mp_put_map_header(b, 2);
	put_key(b, "type");
	mp_put_str(b, "SYNC_RESET_REQUIRED");
	put_key(b, "payload");
	mp_put_map_header(b, 1);
	put_key(b, "mapName");
	put_tgstr(b, map);
	buf_send(c, b);
}

static void
send_root(TgConn *c, const char *type, TgStr map, uint32 root, const char *hlc)
{
	MpBuf	   *b = buf_begin();

	mp_put_map_header(b, 2);
	put_key(b, "type");
	mp_put_str(b, type);
	put_key(b, "payload");
	mp_put_map_header(b, 3);
	put_key(b, "mapName");
	put_tgstr(b, map);
	put_key(b, "rootHash");
	mp_put_uint32(b, root);
	put_key(b, "timestamp");
	put_hlc_text(b, hlc);
	buf_send(c, b);
}

/* SYNC_INIT / ORMAP_SYNC_INIT, session part: access, watch, age. */
static bool
sync_init_session(TgConn *c, TgStr map, bool has_last_sync, double last_sync)
{
	if (!tg_acl_check(c, map.p, map.len, TG_ACT_READ))
		return false;
	add_watch(c, map, NULL);
	if (too_old(has_last_sync, last_sync))
	{
		send_reset_required(c, map);
		return false;
	}
	return true;
}

/* ... and the reader's part: the root (runs in a reader executor). */
void
tg_read_sync_root(TgConn *c, TgMessage *m)
{
	bool		ormap = m->type == TG_MSG_ORMAP_SYNC_INIT;
	TgStr		map = ormap ? m->u.ormap_sync_init.map_name : m->u.sync_init.map_name;
	char	   *cmap = pstr(map);
	char	   *kind = map_kind(cmap);

	if (kind && strcmp(kind, ormap ? "lww" : "or") == 0)
	{
		if (ormap)
			send_error(c, 400, psprintf("Map %s is not an ORMap", cmap));
		else
			send_error(c, 501, "Merkle Sync not supported for ORMap tags");
		return;
	}
	send_root(c, ormap ? "ORMAP_SYNC_RESP_ROOT" : "SYNC_RESP_ROOT", map, merkle_root(cmap),
			  fetch_hlc_now());
}

static void
send_buckets(TgConn *c, const char *type, TgStr map, TgStr path, const char *cmap, const char *cpath)
{
	Datum		args[2];
	int			n;
	MpBuf	   *b;

	args[0] = CStringGetTextDatum(cmap);
	args[1] = CStringGetTextDatum(cpath);
	n = run_plan(PL_BUCKETS, args, NULL, true);
	b = buf_begin();
	mp_put_map_header(b, 2);
	put_key(b, "type");
	mp_put_str(b, type);
	put_key(b, "payload");
	mp_put_map_header(b, 3);
	put_key(b, "mapName");
	put_tgstr(b, map);
	put_key(b, "path");
	put_tgstr(b, path);
	put_key(b, "buckets");
	mp_put_map_header(b, n);
	for (int i = 0; i < n; i++)
	{
		bool		isnull;
		char	   *bucket = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		Datum		h = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull);

		mp_put_str(b, bucket ? bucket : "");
		mp_put_uint32(b, isnull ? 0 : (uint32) DatumGetInt64(h));
	}
	buf_send(c, b);
}

/* MERKLE_REQ_BUCKET / ORMAP_MERKLE_REQ_BUCKET (reader; READ checked by the session) */
void
tg_read_bucket(TgConn *c, TgMessage *m)
{
	bool		ormap = m->type == TG_MSG_ORMAP_MERKLE_REQ_BUCKET;
	TgStr		map = m->u.bucket_req.map_name;
	TgStr		path = m->u.bucket_req.path;
	char	   *cmap = pstr(map);
	char	   *cpath = pstr(path);
	char	   *kind;

	kind = map_kind(cmap);
	if (kind && strcmp(kind, ormap ? "lww" : "or") == 0)
	{
		send_error(c, 400, ormap ? psprintf("Map %s is not an ORMap", cmap)
				   : psprintf("Map %s is an ORMap", cmap));
		return;
	}
	if (path.len == 3)
	{
		Datum		args[2];
		int			n;

		args[0] = CStringGetTextDatum(cmap);
		args[1] = CStringGetTextDatum(cpath);
		n = run_plan(ormap ? PL_OR_LEAF : PL_LWW_LEAF, args, NULL, true);
		if (n > 0)
		{
			MpBuf	   *b = buf_begin();

			mp_put_map_header(b, 2);
			put_key(b, "type");
			mp_put_str(b, ormap ? "ORMAP_SYNC_RESP_LEAF" : "SYNC_RESP_LEAF");
			put_key(b, "payload");
			mp_put_map_header(b, 3);
			put_key(b, "mapName");
			put_tgstr(b, map);
			put_key(b, "path");
			put_tgstr(b, path);
			put_key(b, ormap ? "entries" : "records");
			mp_put_array_header(b, n);
			for (int i = 0; i < n; i++)
			{
				bool		isnull;
				Datum		d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);

				if (isnull)
					mp_put_nil(b);
				else
					put_jsonb(b, DatumGetJsonbP(d));
			}
			buf_send(c, b);
			return;
		}
	}
	send_buckets(c, ormap ? "ORMAP_SYNC_RESP_BUCKETS" : "SYNC_RESP_BUCKETS",
				 map, path, cmap, cpath);
}


void
tg_proto_drop_query_watch(TgConn *c, const char *query_id)
{
	TgStr		q;

	q.p = query_id;
	q.len = (uint32) strlen(query_id);
	drop_query_watch(c, q);
}

/* Policies changed: forget map watches (SYNC_INIT) that lost READ. */
void
tg_proto_recheck_watches(void)
{
	for (TgConn *c = tg_conns; c; c = c->next)
	{
		TgWatch   **pp = &c->watches;

		while (*pp)
		{
			TgWatch    *w = *pp;

			if (w->query_id == NULL && !tg_acl_allowed(c, w->map, strlen(w->map), TG_ACT_READ))
			{
				*pp = w->next;
				free(w);
				c->nwatches--;
				c->slot_dirty = true;
				continue;
			}
			pp = &w->next;
		}
	}
}

/* Called by worker_query.c once the subscription is accepted. */
void
tg_proto_add_query_watch(TgConn *c, TgStr map, TgStr query_id)
{
	add_watch(c, map, &query_id);
}

/* JSON text of an ORMapRecord for topgun.or_merge_key. */
static bool
or_record_json(StringInfo s, const TgOrRecord *r, char *err, size_t errlen)
{
	MpBuf		jb;

	mp_buf_init(&jb, (size_t) tg_max_message_bytes * 2 + 1024);
	if (r->value->type == MP_NIL)
		mp_put_raw(&jb, "null", 5);
	else if (!mp_value_to_json(r->value, &jb, err, errlen))
	{
		mp_buf_free(&jb);
		return false;
	}
	appendStringInfoString(s, "{\"value\":");
	appendStringInfoString(s, (const char *) jb.data);
	mp_buf_free(&jb);
	appendStringInfo(s, ",\"timestamp\":{\"millis\":" INT64_FORMAT ",\"counter\":%u,\"nodeId\":",
					 r->ts.millis, r->ts.counter);
	escape_json(s, pnstrdup(r->ts.node_id.p, r->ts.node_id.len));
	appendStringInfoString(s, "},\"tag\":");
	escape_json(s, pnstrdup(r->tag.p, r->tag.len));
	if (r->has_ttl)
		appendStringInfo(s, ",\"ttlMs\":" INT64_FORMAT, r->ttl_ms);
	appendStringInfoChar(s, '}');
	return true;
}

/* Returns true if anything changed; events are sent by the caller after commit. */
static bool
h_push_diff(TgConn *c, TgMessage *m)
{
	TgStr		map = m->u.ormap_push_diff.map_name;
	char	   *cmap = pstr(map);
	char	   *kind;
	int64		changed = 0;

	if (!tg_acl_check(c, map.p, map.len, TG_ACT_PUT))
		return false;
	kind = map_kind(cmap);
	if (kind && strcmp(kind, "lww") == 0)
	{
		send_error(c, 400, psprintf("Map %s is not an ORMap", cmap));
		return false;
	}
	for (uint32 e = 0; e < m->u.ormap_push_diff.n_entries; e++)
	{
		TgOrEntry  *ent = &m->u.ormap_push_diff.entries[e];
		StringInfoData s;
		char		err[256];
		Datum		args[4];
		Datum	   *tags;
		ArrayType  *arr;
		bool		isnull;
		Datum		d;

		initStringInfo(&s);
		appendStringInfoChar(&s, '[');
		for (uint32 r = 0; r < ent->n_records; r++)
		{
			if (r > 0)
				appendStringInfoChar(&s, ',');
			if (!or_record_json(&s, &ent->records[r], err, sizeof(err)))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("Invalid value: %s", err)));
		}
		appendStringInfoChar(&s, ']');
		tags = palloc(sizeof(Datum) * Max(1, ent->n_tombstones));
		for (uint32 t = 0; t < ent->n_tombstones; t++)
			tags[t] = CStringGetTextDatum(pstr(ent->tombstones[t]));
		arr = construct_array(tags, ent->n_tombstones, TEXTOID, -1, false, TYPALIGN_INT);

		args[0] = CStringGetTextDatum(cmap);
		args[1] = CStringGetTextDatum(pstr(ent->key));
		args[2] = CStringGetTextDatum(s.data);
		args[3] = PointerGetDatum(arr);
		run_plan(PL_OR_MERGE_KEY, args, NULL, false);
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		if (!isnull)
			changed += DatumGetInt32(d);
	}
	return changed > 0;
}

static void
push_diff_events(TgConn *sender, TgMessage *m, const char *hlc)
{
	TgStr		map = m->u.ormap_push_diff.map_name;
	MpBuf		tsbuf;

	mp_buf_init(&tsbuf, 0);
	put_hlc_text(&tsbuf, hlc);
	for (TgConn *c = tg_conns; c; c = c->next)
	{
		if (c == sender || c->closed || c->closing || !c->authenticated ||
			!watches_map(c, map.p, map.len))
			continue;
		for (uint32 e = 0; e < m->u.ormap_push_diff.n_entries; e++)
		{
			TgOrEntry  *ent = &m->u.ormap_push_diff.entries[e];

			for (uint32 r = 0; r < ent->n_records; r++)
			{
				TgOrRecord *rec = &ent->records[r];
				MpBuf	   *b = buf_begin();

				mp_put_map_header(b, 3);
				put_key(b, "type");
				mp_put_str(b, "SERVER_EVENT");
				put_key(b, "payload");
				mp_put_map_header(b, 4);
				put_key(b, "mapName");
				put_tgstr(b, map);
				put_key(b, "key");
				put_tgstr(b, ent->key);
				put_key(b, "eventType");
				mp_put_str(b, "OR_ADD");
				put_key(b, "orRecord");
				mp_put_map_header(b, rec->has_ttl ? 4 : 3);
				put_key(b, "value");
				mp_put_node(b, rec->value);
				put_key(b, "timestamp");
				put_tg_timestamp(b, &rec->ts);
				put_key(b, "tag");
				put_tgstr(b, rec->tag);
				if (rec->has_ttl)
				{
					put_key(b, "ttlMs");
					mp_put_int(b, rec->ttl_ms);
				}
				put_key(b, "timestamp");
				mp_put_raw(b, tsbuf.data, tsbuf.len);
				buf_send(c, b);
				tg_stat_add(TG_STAT_EVENTS_SENT, 1);
			}
		}
	}
	mp_buf_free(&tsbuf);
}

/* ORMAP_DIFF_REQUEST (reader; READ checked by the session) */
void
tg_read_diff(TgConn *c, TgMessage *m)
{
	TgStr		map = m->u.ormap_diff_request.map_name;
	char	   *cmap = pstr(map);
	Datum		args[2];
	int			ntomb;
	char	  **tombs;
	MpBuf	   *b;

	args[0] = CStringGetTextDatum(cmap);
	ntomb = run_plan(PL_OR_KEY_TOMBSTONES, args, NULL, true);
	tombs = palloc(sizeof(char *) * Max(1, ntomb));
	for (int i = 0; i < ntomb; i++)
		tombs[i] = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);

	b = buf_begin();
	mp_put_map_header(b, 2);
	put_key(b, "type");
	mp_put_str(b, "ORMAP_DIFF_RESPONSE");
	put_key(b, "payload");
	mp_put_map_header(b, 2);
	put_key(b, "mapName");
	put_tgstr(b, map);
	put_key(b, "entries");
	mp_put_array_header(b, m->u.ormap_diff_request.n_keys);
	for (uint32 k = 0; k < m->u.ormap_diff_request.n_keys; k++)
	{
		int			n;

		args[1] = CStringGetTextDatum(pstr(m->u.ormap_diff_request.keys[k]));
		n = run_plan(PL_OR_KEY_RECORDS, args, NULL, true);
		mp_put_map_header(b, 3);
		put_key(b, "key");
		put_tgstr(b, m->u.ormap_diff_request.keys[k]);
		put_key(b, "records");
		mp_put_array_header(b, n);
		for (int i = 0; i < n; i++)
		{
			bool		isnull;
			Datum		d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);

			if (isnull)
				mp_put_nil(b);
			else
				put_jsonb(b, DatumGetJsonbP(d));
		}
		put_key(b, "tombstones");
		mp_put_array_header(b, ntomb);
		for (int i = 0; i < ntomb; i++)
			mp_put_str(b, tombs[i] ? tombs[i] : "");
	}
	buf_send(c, b);
}

/* Run one database-backed handler in its own transaction. */
static void
run_db_message(TgConn *c, TgMessage *m)
{
	volatile bool changed = false;
	char	   *volatile hlc = NULL;

	group_flush();
	PG_TRY();
	{
		begin_txn();
		switch (m->type)
		{
			case TG_MSG_ORMAP_PUSH_DIFF:
				changed = h_push_diff(c, m);
				if (changed)
					hlc = fetch_hlc_now();
				break;
			case TG_MSG_COUNTER_REQUEST:
			case TG_MSG_COUNTER_SYNC:
				tg_counter_handle(c, m);
				break;
			default:
				break;
		}
		end_txn();
		tg_counters_after_commit(true);
		if (m->type == TG_MSG_ORMAP_PUSH_DIFF)
		{
			tg_stat_add(TG_STAT_COMMITS, 1);
			pgstat_report_stat(false);
		}
	}
	PG_CATCH();
	{
		ErrorData  *edata = recover_error();
		bool		client_fault;

		tg_counters_after_commit(false);

		/* bad data from the client (values, limits, map kind) is a 400 */
		client_fault = ERRCODE_TO_CATEGORY(edata->sqlerrcode) == ERRCODE_DATA_EXCEPTION ||
			edata->sqlerrcode == ERRCODE_WRONG_OBJECT_TYPE ||
			edata->sqlerrcode == ERRCODE_PROGRAM_LIMIT_EXCEEDED;
		if (!client_fault)
			ereport(LOG,
					(errmsg("topgun: %s from connection %llu failed: %s",
							tg_msg_type_name(m->type), (unsigned long long) c->id,
							edata->message)));
		send_error(c, client_fault ? 400 : 500, edata->message);
		if (edata->sqlerrcode == ERRCODE_UNDEFINED_FUNCTION ||
			edata->sqlerrcode == ERRCODE_UNDEFINED_TABLE ||
			edata->sqlerrcode == ERRCODE_INVALID_SCHEMA_NAME)
		{
			tg_proto_reset_plans();
			tg_request_ready_check();
		}
		changed = false;
	}
	PG_END_TRY();
	if (changed && hlc)
		push_diff_events(c, m, hlc);
}

/* --------------------------------------------------------- dispatcher */

static MpLimits
frame_limits(size_t len)
{
	MpLimits	l;

	l.max_depth = 32;
	l.max_nodes = (uint32) Min((size_t) UINT32_MAX - 1, len + 1);
	l.max_str = (uint32) Min((size_t) UINT32_MAX - 1, Max(len, 1));
	return l;
}

/*
 * Handle one message.  Returns true if the group took ownership of the
 * frame (then it must not be freed by the caller).
 */
/*
 * A read goes to a reader executor; the connection is busy until the answer
 * is back (its later messages wait).  Returns false when the message was
 * answered here already (refused, or nothing to read).
 */
static bool
delegate_read(TgConn *c, TgInMsg *in, TgMessage *m)
{
	TgRecKind	kind;
	TgStr		map;

	switch (m->type)
	{
		case TG_MSG_SYNC_INIT:
			if (!sync_init_session(c, m->u.sync_init.map_name, m->u.sync_init.has_last_sync,
								   m->u.sync_init.last_sync))
				return false;
			kind = TG_REQ_SYNC_ROOT;
			break;
		case TG_MSG_ORMAP_SYNC_INIT:
			if (!sync_init_session(c, m->u.ormap_sync_init.map_name,
								   m->u.ormap_sync_init.has_last_sync,
								   m->u.ormap_sync_init.last_sync))
				return false;
			kind = TG_REQ_SYNC_ROOT;
			break;
		case TG_MSG_MERKLE_REQ_BUCKET:
		case TG_MSG_ORMAP_MERKLE_REQ_BUCKET:
			map = m->u.bucket_req.map_name;
			if (!tg_acl_check(c, map.p, map.len, TG_ACT_READ))
				return false;
			kind = TG_REQ_BUCKET;
			break;
		case TG_MSG_ORMAP_DIFF_REQUEST:
			map = m->u.ormap_diff_request.map_name;
			if (!tg_acl_check(c, map.p, map.len, TG_ACT_READ))
				return false;
			kind = TG_REQ_DIFF;
			break;
		case TG_MSG_QUERY_SUB:
			map = m->u.query_sub.map_name;
			if (!tg_acl_check(c, map.p, map.len, TG_ACT_READ))
				return false;
			/* the reader must see this connection's acknowledged writes */
			if (c->pending_writes > 0)
				group_flush();
			return tg_query_handle_sub(c, m);
		default:
			return false;
	}
	if (c->pending_writes > 0)
		group_flush();
	tg_readers_submit(c, true, kind, in->data, in->len, tg_readers_forward_frames, NULL);
	return true;
}

/*
 * Handle one message.  Returns true if the message is not done with: the
 * group took ownership of the frame, or it waits behind a read of the same
 * connection (then it must not be freed by the caller).
 */
static bool
handle_one(TgInMsg *in)
{
	TgConn	   *c = in->conn;
	TgMessage	msg;
	MpLimits	lim = frame_limits(in->len);
	char		err[256];
	TgParseResult pr;
	bool		later = false;

	if (c->closed || c->closing)
		return false;
	if (c->busy)
	{
		/* a read of this connection is out: keep the order */
		in->next = NULL;
		if (c->deferred_tail)
			c->deferred_tail->next = in;
		else
			c->deferred_head = in;
		c->deferred_tail = in;
		return true;
	}

	pr = tg_message_parse(in->data, in->len, &lim, &msg, err, sizeof(err));
	if (pr != TG_PARSE_OK)
	{
		tg_message_free(&msg);
		if (pr == TG_PARSE_NOMEM)
			send_error(c, 500, "Server out of memory");
		else
			note_invalid(c, err);
		tg_conn_handled(c, 1);
		return false;
	}
	tg_stat_add(TG_STAT_MSG_ACCEPTED, 1);

	if (msg.type == TG_MSG_PING)
		handle_ping(c);
	else if (!c->authenticated)
	{
		if (msg.type == TG_MSG_AUTH)
			handle_auth(c, &msg);
		else
			tg_conn_close(c, 4001, "Auth required");
	}
	else
	{
		switch (msg.type)
		{
			case TG_MSG_AUTH:
				break;			/* already authenticated: ignored */
			case TG_MSG_OP_BATCH:
			case TG_MSG_CLIENT_OP:
				group_add(c, in, &msg);
				return true;	/* answered when the group commits */
			case TG_MSG_SYNC_INIT:
			case TG_MSG_MERKLE_REQ_BUCKET:
			case TG_MSG_ORMAP_SYNC_INIT:
			case TG_MSG_ORMAP_MERKLE_REQ_BUCKET:
			case TG_MSG_ORMAP_DIFF_REQUEST:
			case TG_MSG_QUERY_SUB:
				later = delegate_read(c, in, &msg);
				tg_conn_update_slot(c);
				break;
			case TG_MSG_ORMAP_PUSH_DIFF:
				run_db_message(c, &msg);
				break;
			case TG_MSG_QUERY_UNSUB:
				drop_query_watch(c, msg.u.query_unsub.query_id);
				tg_query_handle_unsub(c, msg.u.query_unsub.query_id);
				tg_conn_update_slot(c);
				break;
			case TG_MSG_TOPIC_SUB:
			case TG_MSG_TOPIC_UNSUB:
			case TG_MSG_TOPIC_PUB:
				tg_topic_handle(c, &msg);
				tg_conn_update_slot(c);
				break;
			case TG_MSG_COUNTER_REQUEST:
			case TG_MSG_COUNTER_SYNC:
				run_db_message(c, &msg);
				tg_conn_update_slot(c);
				break;
			default:
				send_error(c, 501, psprintf("%s is not implemented yet",
											tg_msg_type_name(msg.type)));
				break;
		}
	}
	tg_message_free(&msg);
	if (!later)
		tg_conn_handled(c, 1);
	return false;				/* the frame is not needed any more */
}

void
tg_proto_process(TgInMsg *list)
{
	proto_cxt = CurrentMemoryContext;
	tg_proto_cxt = proto_cxt;

	while (list)
	{
		TgInMsg    *next = list->next;
		TgConn	   *c = list->conn;

		if (!tg_ready)
		{
			tg_conn_close(c, 1013, "Server not ready");
			free(list->data);
			free(list);
		}
		else if (!handle_one(list))
		{
			free(list->data);
			free(list);
		}
		list = next;
		QueryCancelPending = false;	/* nothing to cancel between messages */
		CHECK_FOR_INTERRUPTS();
	}
	group_flush();
	tg_topics_flush();
	/* the others are refreshed by the 250 ms housekeeping tick */
	for (TgConn *c = tg_conns; c; c = c->next)
		if (!c->closed && c->slot_dirty)
			tg_conn_update_slot(c);
}
