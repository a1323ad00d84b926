/*
 * ormap.c — OR-map messages: ORMAP_PUSH_DIFF (a write, in the session
 * executor) and ORMAP_DIFF_REQUEST (a read, in a reader executor).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"

#include "exec/events.h"

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

/*
 * The event of one change _or_merge_key reported: OR_REMOVE for a live
 * record a pushed tombstone removed (under the key that held it), OR_ADD for
 * a pushed record that was new or newer (as pushed).
 */
static void
add_change_event(TgEventList *out, TgStr map, TgOrEntry *ent, HeapTuple t, TupleDesc desc)
{
	char	   *op = SPI_getvalue(t, desc, 1);
	TgEvent		ev;

	memset(&ev, 0, sizeof(ev));
	ev.map = map.p;
	ev.maplen = map.len;
	if (op != NULL && strcmp(op, "remove") == 0)
	{
		char	   *key = SPI_getvalue(t, desc, 2);
		char	   *tag = SPI_getvalue(t, desc, 3);

		if (key == NULL || tag == NULL)
			return;
		ev.kind = TG_EV_OR_REMOVE;
		ev.key = key;
		ev.keylen = strlen(key);
		ev.tag = tag;
		ev.taglen = strlen(tag);
	}
	else
	{
		bool		isnull;
		int32		rec = DatumGetInt32(SPI_getbinval(t, desc, 4, &isnull));
		TgOrRecord *r;

		if (isnull || rec < 1 || (uint32) rec > ent->n_records)
			return;
		r = &ent->records[rec - 1];
		ev.kind = TG_EV_OR_ADD;
		ev.key = ent->key.p;
		ev.keylen = ent->key.len;
		ev.value = r->value;
		ev.ts = &r->ts;
		ev.tag = r->tag.p;
		ev.taglen = r->tag.len;
		ev.has_ttl = r->has_ttl;
		ev.ttl_ms = r->ttl_ms;
	}
	tg_events_add(out, &ev);
}

/*
 * Merge every entry; *out (initialised by the caller, outside the
 * transaction) gets one event per change, which the caller fans out after
 * the commit.  Returns true if anything changed.
 */
bool
tg_push_diff(TgConn *c, TgMessage *m, TgEventList *out)
{
	TgStr		map = m->u.ormap_push_diff.map_name;
	char	   *cmap = tg_pstr(map);
	char	   *kind;
	int			before = out->n;

	if (!tg_acl_check(c, map.p, map.len, TG_ACT_PUT))
		return false;
	kind = tg_map_kind(cmap);
	if (kind && strcmp(kind, "lww") == 0)
	{
		tg_send_error(c, 400, psprintf("Map %s is not an ORMap", cmap));
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
		int			n;

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
			tags[t] = CStringGetTextDatum(tg_pstr(ent->tombstones[t]));
		arr = construct_array(tags, ent->n_tombstones, TEXTOID, -1, false, TYPALIGN_INT);

		args[0] = CStringGetTextDatum(cmap);
		args[1] = CStringGetTextDatum(tg_pstr(ent->key));
		args[2] = CStringGetTextDatum(s.data);
		args[3] = PointerGetDatum(arr);
		n = tg_run_plan(PL_OR_MERGE_KEY, args, NULL, false);
		for (int i = 0; i < n; i++)
			add_change_event(out, map, ent, SPI_tuptable->vals[i], SPI_tuptable->tupdesc);
		pfree(s.data);
	}
	return out->n > before;
}

/* ORMAP_DIFF_REQUEST (reader; READ checked by the session) */
void
tg_read_diff(TgConn *c, TgMessage *m)
{
	TgStr		map = m->u.ormap_diff_request.map_name;
	char	   *cmap = tg_pstr(map);
	Datum		args[2];
	int			ntomb;
	char	  **tombs;
	MpBuf	   *b;

	args[0] = CStringGetTextDatum(cmap);
	ntomb = tg_run_plan(PL_OR_KEY_TOMBSTONES, args, NULL, true);
	tombs = palloc(sizeof(char *) * Max(1, ntomb));
	for (int i = 0; i < ntomb; i++)
		tombs[i] = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);

	b = tg_buf_begin();
	mp_put_map_header(b, 2);
	mp_put_str(b, "type");
	mp_put_str(b, "ORMAP_DIFF_RESPONSE");
	mp_put_str(b, "payload");
	mp_put_map_header(b, 2);
	mp_put_str(b, "mapName");
	tg_put_tgstr(b, map);
	mp_put_str(b, "entries");
	mp_put_array_header(b, m->u.ormap_diff_request.n_keys);
	for (uint32 k = 0; k < m->u.ormap_diff_request.n_keys; k++)
	{
		int			n;

		args[1] = CStringGetTextDatum(tg_pstr(m->u.ormap_diff_request.keys[k]));
		n = tg_run_plan(PL_OR_KEY_RECORDS, args, NULL, true);
		mp_put_map_header(b, 3);
		mp_put_str(b, "key");
		tg_put_tgstr(b, m->u.ormap_diff_request.keys[k]);
		mp_put_str(b, "records");
		mp_put_array_header(b, n);
		for (int i = 0; i < n; i++)
		{
			bool		isnull;
			Datum		d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);

			if (isnull)
				mp_put_nil(b);
			else
				tg_put_jsonb(b, DatumGetJsonbP(d));
		}
		mp_put_str(b, "tombstones");
		mp_put_array_header(b, ntomb);
		for (int i = 0; i < ntomb; i++)
			mp_put_str(b, tombs[i] ? tombs[i] : "");
	}
	tg_buf_send(c, b);
}

