/*
 * ormap.c — OR-map messages: ORMAP_PUSH_DIFF (a write, in the session
 * executor) and ORMAP_DIFF_REQUEST (a read, in a reader executor); and
 * the read of an OR key's current values (tg_or_values).
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

/* ------------------------------------------------ ORMAP_DIFF_REQUEST */

/*
 * The reply comes in parts, each an ORMAP_DIFF_RESPONSE {mapName, entries}
 * of at most diff_reply_cap() bytes (a part is larger only when one record
 * alone is).  The client runs mergeKey(key, records, tombstones) for every
 * entry of every part, so
 *   - each distinct requested key gets its records (split over several
 *     entries of the same key when they do not fit: mergeKey of the pieces
 *     is mergeKey of the whole), also when it has none, which drops the
 *     client's local records that are tombstoned;
 *   - the map's tombstones are sent once, with the first key, before any
 *     other key's entry: mergeKey adds them to the map-wide set, so each
 *     later entry drops its key's tombstoned local records exactly as when
 *     every entry carried the whole list (the reference's keys × tombstones
 *     reply).
 */
#define DIFF_REPLY_MAX	((size_t) 1 << 20)

static size_t
diff_reply_cap(void)
{
	return Max((size_t) 16 * 1024, Min(DIFF_REPLY_MAX, (size_t) tg_max_outbound_bytes / 4));
}

typedef struct DiffOut
{
	TgConn	   *c;
	TgStr		map;
	size_t		cap;
	MpBuf		body;			/* the entries of the part being built */
	uint32		nentries;
	int			nparts;
	bool		open;			/* an entry is being built: */
	TgStr		key;
	MpBuf		recs;
	uint32		nrecs;
	MpBuf		tombs;
	uint32		ntombs;
} DiffOut;

/* Bytes of the part if it were sent now (map headers and counts: 5 bytes each). */
static size_t
diff_size(const DiffOut *o)
{
	size_t		n = 64 + o->map.len + o->body.len;

	if (o->open)
		n += 48 + o->key.len + o->recs.len + o->tombs.len;
	return n;
}

static void
diff_close_entry(DiffOut *o)
{
	if (!o->open)
		return;
	if (!mp_buf_ok(&o->recs) || !mp_buf_ok(&o->tombs))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("ORMAP_DIFF_RESPONSE entry too large or out of memory")));
	mp_put_map_header(&o->body, 3);
	mp_put_str(&o->body, "key");
	tg_put_tgstr(&o->body, o->key);
	mp_put_str(&o->body, "records");
	mp_put_array_header(&o->body, o->nrecs);
	mp_put_raw(&o->body, o->recs.data, o->recs.len);
	mp_put_str(&o->body, "tombstones");
	mp_put_array_header(&o->body, o->ntombs);
	mp_put_raw(&o->body, o->tombs.data, o->tombs.len);
	o->nentries++;
	mp_buf_reset(&o->recs);
	mp_buf_reset(&o->tombs);
	o->nrecs = o->ntombs = 0;
	o->open = false;
}

/* Send the part built so far; the open entry goes on in the next part. */
static void
diff_send(DiffOut *o)
{
	bool		was_open = o->open;
	MpBuf	   *b;

	if (o->nrecs > 0 || o->ntombs > 0)
		diff_close_entry(o);
	b = tg_buf_begin();
	mp_put_map_header(b, 2);
	mp_put_str(b, "type");
	mp_put_str(b, "ORMAP_DIFF_RESPONSE");
	mp_put_str(b, "payload");
	mp_put_map_header(b, 2);
	mp_put_str(b, "mapName");
	tg_put_tgstr(b, o->map);
	mp_put_str(b, "entries");
	mp_put_array_header(b, o->nentries);
	mp_put_raw(b, o->body.data, o->body.len);
	if (!mp_buf_ok(&o->body) || !mp_buf_ok(b))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("ORMAP_DIFF_RESPONSE part too large or out of memory")));
	tg_buf_send(o->c, b);
	mp_buf_reset(&o->body);
	o->nentries = 0;
	o->nparts++;
	o->open = was_open;
}

static void
diff_begin_key(DiffOut *o, TgStr key)
{
	diff_close_entry(o);
	if (o->nentries > 0 && diff_size(o) + 48 + key.len > o->cap)
		diff_send(o);
	o->key = key;
	o->open = true;
}

/* Add one encoded record (or tombstone) to the open entry. */
static void
diff_add(DiffOut *o, bool tombstone, const MpBuf *item)
{
	if (diff_size(o) + item->len > o->cap &&
		(o->nentries > 0 || o->nrecs > 0 || o->ntombs > 0))
		diff_send(o);
	if (tombstone)
	{
		mp_put_raw(&o->tombs, item->data, item->len);
		o->ntombs++;
	}
	else
	{
		mp_put_raw(&o->recs, item->data, item->len);
		o->nrecs++;
	}
}

static int
tgstr_cmp(const void *a, const void *b)
{
	const TgStr *x = *(const TgStr *const *) a;
	const TgStr *y = *(const TgStr *const *) b;
	int			r = memcmp(x->p, y->p, Min(x->len, y->len));

	if (r != 0)
		return r;
	return x->len < y->len ? -1 : x->len > y->len ? 1 : 0;
}

/* ORMAP_DIFF_REQUEST (reader; READ checked by the session) */
void
tg_read_diff(TgConn *c, TgMessage *m)
{
	uint32		nreq = m->u.ormap_diff_request.n_keys;
	TgStr	  **keys = palloc(sizeof(TgStr *) * Max(1, nreq));
	uint32		nkeys = 0;
	Datum		args[2];
	DiffOut		o;
	MpBuf		item;

	memset(&o, 0, sizeof(o));
	o.c = c;
	o.map = m->u.ormap_diff_request.map_name;
	o.cap = diff_reply_cap();
	mp_buf_init(&o.body, 0);
	mp_buf_init(&o.recs, 0);
	mp_buf_init(&o.tombs, 0);
	mp_buf_init(&item, 0);

	/* each distinct key once: a repeated key would only repeat its records */
	for (uint32 k = 0; k < nreq; k++)
		keys[k] = &m->u.ormap_diff_request.keys[k];
	qsort(keys, nreq, sizeof(TgStr *), tgstr_cmp);
	for (uint32 k = 0; k < nreq; k++)
		if (nkeys == 0 || tgstr_cmp(&keys[nkeys - 1], &keys[k]) != 0)
			keys[nkeys++] = keys[k];

	PG_TRY();
	{
		args[0] = CStringGetTextDatum(tg_pstr(o.map));
		if (nkeys > 0)
		{
			int			ntomb = tg_run_plan(PL_OR_KEY_TOMBSTONES, args, NULL, true);

			diff_begin_key(&o, *keys[0]);
			for (int i = 0; i < ntomb; i++)
			{
				char	   *t = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);

				mp_buf_reset(&item);
				mp_put_str(&item, t ? t : "");
				diff_add(&o, true, &item);
			}
			SPI_freetuptable(SPI_tuptable);
		}
		for (uint32 k = 0; k < nkeys; k++)
		{
			int			n;

			if (k > 0)
				diff_begin_key(&o, *keys[k]);
			args[1] = CStringGetTextDatum(tg_pstr(*keys[k]));
			n = tg_run_plan(PL_OR_KEY_RECORDS, args, NULL, true);
			for (int i = 0; i < n; i++)
			{
				bool		isnull;
				Datum		d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);

				mp_buf_reset(&item);
				if (isnull)
					mp_put_nil(&item);
				else
					tg_put_jsonb(&item, DatumGetJsonbP(d));
				diff_add(&o, false, &item);
			}
			SPI_freetuptable(SPI_tuptable);
		}
		diff_close_entry(&o);
		if (o.nentries > 0 || o.nparts == 0)
			diff_send(&o);
	}
	PG_FINALLY();
	{
		mp_buf_free(&o.body);
		mp_buf_free(&o.recs);
		mp_buf_free(&o.tombs);
		mp_buf_free(&item);
	}
	PG_END_TRY();
}

static int	plan_orvals = -1;

/*
 * The current values of an OR key as a jsonb array in tag order (as
 * topgun.or_get; NULL: none).  The one read of an OR key whole, for the
 * change feed's query updates (feed.c) and query pages (query_fetch.c).
 * Needs SPI; overwrites SPI_tuptable.
 */
Jsonb *
tg_or_values(text *map, text *key)
{
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		args[2] = {PointerGetDatum(map), PointerGetDatum(key)};
	bool		isnull;
	Datum		d;

	if (SPI_execute_plan(tg_live_plan(&plan_orvals,
									  "SELECT pg_catalog.jsonb_agg(v) FROM topgun.or_get($1, $2) v",
									  2, types), args, NULL, true, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		return NULL;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? NULL : DatumGetJsonbP(d);
}
