/*
 * read_msgs.c — the database part of the feature messages, run by a reader
 * executor in a transaction of its own (so SQL features run next to the
 * writes, and the writes they make -- entry processors, resolver
 * registrations -- reach the other clients through the change feed like any
 * SQL write): ENTRY_PROCESS(_BATCH), SEARCH / SEARCH_SUB snapshots,
 * JOURNAL_READ, REGISTER/UNREGISTER/LIST_RESOLVERS, PARTITION_MAP_REQUEST.  The session executor
 * checked access before; every answer is the message's own reply type (the
 * client ignores ERROR), built by SQL as jsonb and sent as msgpack.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "exec/exec.h"
#include "exec/journal_live.h"
#include "exec/reads.h"
#include "logic/logic_pg.h"
#include "logic/processors.h"

#define TG_JOURNAL_MAX_LIMIT 10000

typedef enum
{
	Q_EXEC_ONE,
	Q_EXEC_MANY,
	Q_SEARCH,
	Q_JOURNAL,
	Q_REGISTER,
	Q_UNREGISTER,
	Q_LIST,
	Q_PARTITION,
	Q_COUNT
} QueryId;

static const char *const query_sql[Q_COUNT] = {
	[Q_EXEC_ONE] = "SELECT pg_catalog.jsonb_build_object('type', 'ENTRY_PROCESS_RESPONSE', 'requestId', $1::text) "
	"|| topgun.execute_on_key($2, $3, $4, $5::jsonb)",
	[Q_EXEC_MANY] = "SELECT pg_catalog.jsonb_build_object('type', 'ENTRY_PROCESS_BATCH_RESPONSE', 'requestId', $1::text, "
	"'results', topgun.execute_on_keys($2, $3::text[], $4, $5::jsonb))",
	[Q_SEARCH] = "SELECT pg_catalog.jsonb_build_object('type', 'SEARCH_RESP', 'payload', "
	"pg_catalog.jsonb_build_object('requestId', $1::text, 'results', "
	"coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('key', s.key, 'value', s.value, "
	"'score', s.score, 'matchedTerms', pg_catalog.to_jsonb(s.matched_terms)) ORDER BY s.score DESC, s.key COLLATE \"C\"), '[]'), "
	"'totalCount', count(*))) FROM topgun.search($2, $3, $4, $5, $6::jsonb) s",
	[Q_JOURNAL] = "SELECT pg_catalog.jsonb_build_object('type', 'JOURNAL_READ_RESPONSE', 'requestId', $1::text, "
	"'events', coalesce(pg_catalog.jsonb_agg(j.event ORDER BY j.sequence), '[]'), "
	"'hasMore', coalesce(pg_catalog.bool_or(j.has_more), false)) "
	"FROM topgun.journal_read($2, $3, $4, NULL) j",
	[Q_REGISTER] = "SELECT topgun.register_resolver($1, $2, NULL, $3, $4)",
	[Q_UNREGISTER] = "SELECT topgun.unregister_resolver($1, $2)",
	[Q_LIST] = "SELECT pg_catalog.jsonb_build_object('type', 'LIST_RESOLVERS_RESPONSE', 'requestId', $1::text, "
	"'resolvers', coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('mapName', r.map_pattern, 'name', r.name, "
	"'priority', r.priority) || CASE WHEN r.key_pattern IS NULL THEN '{}'::jsonb "
	"ELSE pg_catalog.jsonb_build_object('keyPattern', r.key_pattern) END), '[]')) "
	"FROM topgun.registered_resolvers r WHERE $2::text IS NULL OR r.map_pattern = $2",
	[Q_PARTITION] = "SELECT CASE WHEN m IS NOT NULL THEN pg_catalog.jsonb_build_object('type', 'PARTITION_MAP', 'payload', m) END "
	"FROM topgun.partition_map($1, $2) m",
};

static const Oid query_types[Q_COUNT][6] = {
	[Q_EXEC_ONE] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID},
	[Q_EXEC_MANY] = {TEXTOID, TEXTOID, TEXTARRAYOID, TEXTOID, TEXTOID},
	[Q_SEARCH] = {TEXTOID, TEXTOID, TEXTOID, INT4OID, FLOAT8OID, TEXTOID},
	[Q_JOURNAL] = {TEXTOID, INT8OID, INT4OID, TEXTOID},
	[Q_REGISTER] = {TEXTOID, TEXTOID, INT4OID, TEXTOID},
	[Q_UNREGISTER] = {TEXTOID, TEXTOID},
	[Q_LIST] = {TEXTOID, TEXTOID},
	[Q_PARTITION] = {INT8OID, TEXTOID},
};

static const int query_nargs[Q_COUNT] = {5, 5, 6, 4, 4, 2, 2, 2};
static int	query_slot[Q_COUNT] = {-1, -1, -1, -1, -1, -1, -1, -1};

static Datum
str(TgStr s)
{
	return PointerGetDatum(cstring_to_text_with_len(s.p, (int) s.len));
}

/* JSON text of a free-form value (processor args, boost), or NULL. */
static char *
json_of(const MpNode *n)
{
	MpBuf		b;
	char		err[128];
	char	   *out = NULL;

	if (n == NULL)
		return NULL;
	mp_buf_init(&b, (size_t) tg_max_message_bytes * 2 + 1024);
	if (!mp_value_to_json(n, &b, err, sizeof(err)))
	{
		mp_buf_free(&b);
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("Invalid value: %s", err)));
	}
	out = pnstrdup((const char *) b.data, b.len);
	mp_buf_free(&b);
	return out;
}

/* Run one query; its single jsonb column (if any) is the reply message. */
static void
run(TgConn *c, QueryId q, Datum *args, const char *nulls, bool reply)
{
	bool		isnull;
	Datum		d;

	if (SPI_execute_plan(tg_live_plan(&query_slot[q], query_sql[q], query_nargs[q], query_types[q]),
						 args, nulls, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "topgun: feature query %d failed", (int) q);
	if (!reply)
		return;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (!isnull)
	{
		MpBuf	   *b = tg_buf_begin();

		tg_put_jsonb(b, DatumGetJsonbP(d));
		tg_buf_send(c, b);
	}
}

/* REGISTER/UNREGISTER_RESOLVER_RESPONSE {requestId, success} */
static void
send_ok(TgConn *c, const char *type, TgStr rid, bool ok)
{
	MpBuf	   *b = tg_buf_begin();

	mp_put_map_header(b, 3);
	mp_put_str(b, "type");
	mp_put_str(b, type);
	mp_put_str(b, "requestId");
	tg_put_tgstr(b, rid);
	mp_put_str(b, "success");
	mp_put_bool(b, ok);
	tg_buf_send(c, b);
}

void
tg_read_message(TgConn *c, TgMessage *m)
{
	Datum		a[6];
	char		n[6] = {' ', ' ', ' ', ' ', ' ', ' '};
	char	   *j;

	switch (m->type)
	{
		case TG_MSG_ENTRY_PROCESS:
		case TG_MSG_ENTRY_PROCESS_BATCH:
			a[0] = str(m->u.entry_process.request_id);
			a[1] = str(m->u.entry_process.map_name);
			if (m->type == TG_MSG_ENTRY_PROCESS)
				a[2] = str(m->u.entry_process.key);
			else
			{
				Datum	   *k = palloc(sizeof(Datum) * Max(1, m->u.entry_process.n_keys));

				for (uint32 i = 0; i < m->u.entry_process.n_keys; i++)
					k[i] = str(m->u.entry_process.keys[i]);
				a[2] = PointerGetDatum(construct_array(k, (int) m->u.entry_process.n_keys, TEXTOID, -1,
													   false, TYPALIGN_INT));
			}
			a[3] = str(m->u.entry_process.processor.name);
			j = json_of(m->u.entry_process.processor.args);
			a[4] = j ? CStringGetTextDatum(j) : (Datum) 0;
			n[4] = j ? ' ' : 'n';
			run(c, m->type == TG_MSG_ENTRY_PROCESS ? Q_EXEC_ONE : Q_EXEC_MANY, a, n, true);
			break;
		case TG_MSG_SEARCH:
		case TG_MSG_SEARCH_SUB:
			{
				TgSearchOptions *o = &m->u.search.options;

				a[0] = str(m->u.search.id);
				a[1] = str(m->u.search.map_name);
				a[2] = str(m->u.search.query);
				/* a limit <= 0 or none: the default cap (topgun.search_max_results) */
				n[3] = (o->has_limit && o->limit >= 1) ? ' ' : 'n';
				a[3] = Int32GetDatum(o->has_limit && o->limit >= 1 ? (int32) Min(o->limit, (double) INT32_MAX) : 0);
				n[4] = o->has_min_score ? ' ' : 'n';
				a[4] = Float8GetDatum(o->has_min_score ? o->min_score : 0);
				j = json_of(o->boost);
				a[5] = j ? CStringGetTextDatum(j) : (Datum) 0;
				n[5] = j ? ' ' : 'n';
				run(c, Q_SEARCH, a, n, true);
				break;
			}
		case TG_MSG_JOURNAL_READ:
			{
				double		lim = m->u.journal.has_limit ? m->u.journal.limit : 100;

				a[0] = str(m->u.journal.request_id);
				a[1] = Int64GetDatum(m->u.journal.from_sequence);
				a[2] = Int32GetDatum((int32) Max(1, Min(lim, TG_JOURNAL_MAX_LIMIT)));
				a[3] = m->u.journal.has_map_name ? str(m->u.journal.map_name) : (Datum) 0;
				n[3] = m->u.journal.has_map_name ? ' ' : 'n';
				run(c, Q_JOURNAL, a, n, true);
				break;
			}
		case TG_MSG_REGISTER_RESOLVER:
			a[0] = str(m->u.register_resolver.name);
			a[1] = str(m->u.register_resolver.map_name);
			a[2] = Int32GetDatum(m->u.register_resolver.priority);
			n[2] = m->u.register_resolver.has_priority ? ' ' : 'n';
			a[3] = m->u.register_resolver.has_key_pattern ? str(m->u.register_resolver.key_pattern) : (Datum) 0;
			n[3] = m->u.register_resolver.has_key_pattern ? ' ' : 'n';
			run(c, Q_REGISTER, a, n, false);
			send_ok(c, "REGISTER_RESOLVER_RESPONSE", m->u.register_resolver.request_id, true);
			break;
		case TG_MSG_UNREGISTER_RESOLVER:
			{
				bool		isnull;

				a[0] = str(m->u.unregister_resolver.resolver_name);
				a[1] = str(m->u.unregister_resolver.map_name);
				run(c, Q_UNREGISTER, a, n, false);
				send_ok(c, "UNREGISTER_RESOLVER_RESPONSE", m->u.unregister_resolver.request_id,
						DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) && !isnull);
				break;
			}
		case TG_MSG_LIST_RESOLVERS:
			a[0] = str(m->u.list_resolvers.request_id);
			a[1] = m->u.list_resolvers.has_map_name ? str(m->u.list_resolvers.map_name) : (Datum) 0;
			n[1] = m->u.list_resolvers.has_map_name ? ' ' : 'n';
			run(c, Q_LIST, a, n, true);
			break;
		case TG_MSG_PARTITION_MAP_REQUEST:
			{
				char		url[512];
				double		v = m->u.partition_map_request.has_current_version ?
					m->u.partition_map_request.current_version : 0;

				/* nothing is sent for a version at or above ours (as the reference) */
				a[0] = Int64GetDatum(v >= 9.0e18 ? INT64_MAX : v <= -9.0e18 ? INT64_MIN : (int64) floor(v));
				tg_mesh_url(url, sizeof(url));
				a[1] = CStringGetTextDatum(url);
				run(c, Q_PARTITION, a, n, true);
				break;
			}
		default:
			elog(ERROR, "topgun: no database part for %s", tg_msg_type_name(m->type));
	}
}

void
tg_read_process_req(const char *payload, size_t len, TgProcReq *r)
{
	TgMessage	msg;
	MpLimits	lim;
	char		err[256];
	char	   *j;

	lim.max_depth = 32;
	lim.max_nodes = (uint32) Min((size_t) UINT32_MAX - 1, len + 1);
	lim.max_str = (uint32) Min((size_t) UINT32_MAX - 1, Max(len, 1));
	if (tg_message_parse((const uint8_t *) payload, len, &lim, &msg, err, sizeof(err)) != TG_PARSE_OK ||
		msg.type != TG_MSG_ENTRY_PROCESS)
	{
		tg_message_free(&msg);
		elog(ERROR, "topgun: a processor request carried an invalid message: %s", err);
	}
	PG_TRY();
	{
		__typeof__(msg.u.entry_process) *e = &msg.u.entry_process;

		r->map = cstring_to_text_with_len(e->map_name.p, (int) e->map_name.len);
		r->key = cstring_to_text_with_len(e->key.p, (int) e->key.len);
		r->builtin = tg_proc_find(e->processor.name.p, e->processor.name.len);
		r->request_id = pnstrdup(e->request_id.p, e->request_id.len);
		j = json_of(e->processor.args);
		r->args = j ? DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(j))) : NULL;
	}
	PG_FINALLY();
	{
		tg_message_free(&msg);
	}
	PG_END_TRY();
}

/*
 * Reader side of TG_REQ_JOURNAL {f: from, l: limit} for the journal
 * subscriptions (journal_live.c): TG_REP_ROWS {events: [...], more}.
 */
void
tg_read_journal_events(TgConn *c, const char *payload, size_t len)
{
	static int	slot = -1;
	static int	hslot = -1;
	Oid			types[2] = {INT8OID, INT4OID};
	Datum		args[2];
	int64		horizon;
	bool		hnull;
	MpArena		arena;
	MpLimits	lim = {8, (uint32) len + 1, (uint32) Max(len, 1)};
	char		err[64];
	const MpNode *req;
	MpBuf		b;
	bool		more = false;

	mp_arena_init(&arena);
	req = mp_decode(&arena, (const uint8_t *) payload, len, &lim, err, sizeof(err));
	if (req == NULL || mp_map_get(req, "f") == NULL || mp_map_get(req, "l") == NULL)
		elog(ERROR, "topgun: malformed journal request");
	args[0] = Int64GetDatum((int64) mp_number_as_double(mp_map_get(req, "f")));
	args[1] = Int32GetDatum((int32) Max(1, Min(mp_number_as_double(mp_map_get(req, "l")), TG_JOURNAL_MAX_LIMIT)));
	mp_arena_free(&arena);
	if (SPI_execute_plan(tg_live_plan(&hslot, "SELECT topgun.journal_horizon()", 0, NULL),
						 NULL, NULL, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "topgun: journal_horizon failed");
	horizon = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &hnull));
	if (DatumGetInt64(args[0]) < 0)
		SPI_processed = 0;		/* only the horizon was asked */
	else if (SPI_execute_plan(tg_live_plan(&slot, "SELECT event, has_more FROM topgun.journal_read($1, $2, NULL, NULL)",
										   2, types), args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "topgun: journal_read failed");
	mp_buf_init(&b, (size_t) 1 << 30);
	mp_put_map_header(&b, 3);
	mp_put_str(&b, "horizon");
	mp_put_int(&b, hnull ? 0 : horizon);
	mp_put_str(&b, "events");
	mp_put_array_header(&b, (uint32) SPI_processed);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Datum		ev = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
		Datum		hm = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull);

		if (!isnull && DatumGetBool(hm))
			more = true;
		tg_put_jsonb(&b, DatumGetJsonbP(ev));
	}
	mp_put_str(&b, "more");
	mp_put_bool(&b, more);
	if (!mp_buf_ok(&b))
		ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED), errmsg("journal batch too large")));
	tg_ipc_put(tg_exec_out, TG_REP_ROWS, c->id, b.data, b.len);
	mp_buf_free(&b);
}
