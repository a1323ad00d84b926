/*
 * feed.c — the session executor as consumer of the commit-ordered change
 * feed (src/changes): changes made by any backend (psql, applications,
 * triggers, replication) reach WebSocket clients after they commit.
 *
 * Flow: a commit that changed topgun.lww / ormap / counters or called
 * topgun.publish() appends events to the shared ring and sends SIGUSR2; the
 * main loop wakes and calls tg_live_poll(), which reads the events, re-reads
 * the committed rows in one short read-only transaction (events carry
 * identities, not values, so the latest committed state is always sent) and
 * pushes:
 *   LWW       → SERVER_BATCH_EVENT (UPDATED) to connections watching the map,
 *               QUERY_UPDATE to matching query subscriptions;
 *   OR add/rm → SERVER_BATCH_EVENT (OR_ADD / OR_REMOVE), QUERY_UPDATE with
 *               the key's current values;
 *   COUNTER   → COUNTER_UPDATE to the counter's subscribers;
 *   TOPIC     → TOPIC_MESSAGE to subscribers, offline queues
 *               (publisherId "sql"); the reserved topic
 *               topgun:policies-changed reloads the access policies.
 *
 * The worker's own writes are stamped with TG_WORKER_ORIGIN: it fans them
 * out directly after its commit (lowest latency, the sender excluded), and
 * skips their feed echoes — except OR-map echoes, which drive the query
 * updates of OR maps (their values need a re-read anyway).  Per key, the
 * feed is in commit order and every event re-reads the newest committed
 * row, so a client never receives a state older than one it already got.
 *
 * Overflow: if the ring dropped events before they were read (`lost`), the
 * worker cannot know what changed; it closes every connection that has
 * live subscriptions with 1013 "Change feed overflow: resync" (retryable:
 * the client reconnects, Merkle-syncs and re-subscribes).
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "changes/changes.h"
#include "exec/events.h"
#include "exec/search_live.h"
#include "metrics/metrics.h"

#define FEED_READ_BYTES	(8 * 1024 * 1024)

static bool consumer = false;
static uint64 feed_cursor = 0;
static int64 last_poll_ms = 0;

/* ------------------------------------------------------------ lifecycle */

void
tg_live_ready(bool ready)
{
	static MemoryContext live_cxt = NULL;

	if (ready)
	{
		MemoryContext old = CurrentMemoryContext;

		if (live_cxt == NULL)
			live_cxt = AllocSetContextCreate(TopMemoryContext, "topgun live setup",
											 ALLOCSET_SMALL_SIZES);
		MemoryContextSwitchTo(live_cxt);
		tg_proto_enter(live_cxt);
		/* the worker's own commits are fanned out directly */
		tg_changes_set_origin(TG_WORKER_ORIGIN);
		/* ... so their LWW and counter echoes are not even captured */
		tg_changes_skip_kinds((1u << TG_CHANGE_LWW) | (1u << TG_CHANGE_COUNTER));
		tg_changes_register_consumer(true);
		feed_cursor = tg_changes_head();
		consumer = true;
		PG_TRY();
		{
			tg_txn_begin();
			tg_acl_load();
			tg_topics_ready();
			tg_txn_end();
		}
		PG_CATCH();
		{
			ErrorData  *e = tg_txn_recover();

			ereport(LOG, (errmsg("topgun: could not load policies/topics: %s", e->message)));
			tg_acl_invalidate();
		}
		PG_END_TRY();
		MemoryContextSwitchTo(old);
		MemoryContextReset(live_cxt);
	}
	else if (consumer)
	{
		tg_changes_register_consumer(false);
		consumer = false;
	}
}

void
tg_live_conn_gone(TgConn *c)
{
	tg_query_conn_gone(c);
	tg_topics_conn_gone(c);
	tg_counters_conn_gone(c);
}

/* ------------------------------------------------------------ collected events */

typedef struct Ev
{
	TgChangeKind kind;
	bool		own;			/* written by the worker itself */
	char	   *map;
	int			maplen;
	char	   *key;
	int			keylen;
	char	   *tag;
	char	   *payload;
} Ev;

static int	plan_lww = -1;
static int	plan_or = -1;
static int	plan_hlc = -1;
static int	plan_counter = -1;

static void
resync_all(uint64 lost)
{
	int			closed = 0;

	for (TgConn *c = tg_conns; c; c = c->next)
	{
		if (c->closed || c->closing || !c->authenticated)
			continue;
		if (c->nwatches == 0 && c->nqueries == 0 && c->ntopics == 0 && c->ncounters == 0)
			continue;
		tg_conn_close(c, 1013, "Change feed overflow: resync");
		closed++;
	}
	tg_stat_add(TG_STAT_FEED_LOST, lost);
	tg_metrics_inc(TG_M_FEED_OVERFLOWS, 0, 1);
	tg_stat_add(TG_STAT_FEED_RESYNC_CLOSES, closed);
	ereport(LOG,
			(errmsg("topgun: change feed overflow: " UINT64_FORMAT " events lost, %d connections asked to resynchronise",
					lost, closed),
			 errhint("Increase topgun.change_buffer_size.")));
}

/* Values of an OR key as a tree of a jsonb array (NULL: none left). */
static MpNode *
or_values(MpArena *arena, const char *map, int maplen, const char *key, int keylen)
{
	Jsonb	   *jb = tg_or_values(cstring_to_text_with_len(map, maplen), cstring_to_text_with_len(key, keylen));

	return jb ? tg_jsonb_to_node(arena, jb) : NULL;
}

/* Re-read and push a set of events (inside a transaction). */
static void
process_events(Ev *evs, int n)
{
	MpArena		arena;
	TgEventList evl;
	char	   *hlc = NULL;
	int			nlww = 0;
	bool		isnull;

	mp_arena_init(&arena);
	tg_events_init(&evl);

	for (int i = 0; i < n; i++)
		if (!evs[i].own && (evs[i].kind == TG_CHANGE_LWW || evs[i].kind == TG_CHANGE_OR_ADD ||
							evs[i].kind == TG_CHANGE_OR_REMOVE))
			nlww++;
	if (nlww > 0)
	{
		if (SPI_execute_plan(tg_live_plan(&plan_hlc, "SELECT topgun.hlc_now()::text", 0, NULL),
							 NULL, NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "topgun: hlc_now failed");
		hlc = TextDatumGetCString(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	}

	/* LWW: one statement for every changed key, in feed order */
	if (nlww > 0)
	{
		Datum	   *m = palloc(sizeof(Datum) * n);
		Datum	   *k = palloc(sizeof(Datum) * n);
		int		   *idx = palloc(sizeof(int) * n);
		int			cnt = 0;
		Datum		args[2];
		Oid			types[2] = {TEXTARRAYOID, TEXTARRAYOID};

		for (int i = 0; i < n; i++)
		{
			if (evs[i].own || evs[i].kind != TG_CHANGE_LWW)
				continue;
			m[cnt] = PointerGetDatum(cstring_to_text_with_len(evs[i].map, evs[i].maplen));
			k[cnt] = PointerGetDatum(cstring_to_text_with_len(evs[i].key, evs[i].keylen));
			idx[cnt++] = i;
		}
		if (cnt > 0)
		{
			args[0] = PointerGetDatum(construct_array(m, cnt, TEXTOID, -1, false, TYPALIGN_INT));
			args[1] = PointerGetDatum(construct_array(k, cnt, TEXTOID, -1, false, TYPALIGN_INT));
			/*
			 * One primary-key probe per changed key: the LATERAL subquery
			 * with OFFSET 0 cannot be flattened into a join, which a kept
			 * generic plan made a hash join over a scan of all of
			 * topgun.lww on every poll (the change feed of SQL writes and
			 * entry processors cost O(table) per poll).
			 */
			if (SPI_execute_plan(tg_live_plan(&plan_lww,
											  "SELECT u.o::int4, l.value, l.ts::text, l.ttl_ms "
											  "FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2)) WITH ORDINALITY AS u(m, k, o) "
											  "JOIN LATERAL (SELECT x.value, x.ts, x.ttl_ms FROM topgun.lww x "
											  "WHERE x.map = u.m AND x.leaf = topgun.key_leaf(u.k) AND x.key = u.k OFFSET 0) l ON true "
											  "ORDER BY u.o",
											  2, types), args, NULL, true, 0) != SPI_OK_SELECT)
				elog(ERROR, "topgun: could not re-read changed records");
			for (uint64 r = 0; r < SPI_processed; r++)
			{
				HeapTuple	t = SPI_tuptable->vals[r];
				int			o = DatumGetInt32(SPI_getbinval(t, SPI_tuptable->tupdesc, 1, &isnull));
				bool		vnull,
							ttlnull;
				Datum		v = SPI_getbinval(t, SPI_tuptable->tupdesc, 2, &vnull);
				char	   *ts = SPI_getvalue(t, SPI_tuptable->tupdesc, 3);
				Datum		ttl = SPI_getbinval(t, SPI_tuptable->tupdesc, 4, &ttlnull);
				Ev		   *e;
				MpNode	   *node = NULL;

				if (o < 1 || o > cnt || ts == NULL)
					continue;
				e = &evs[idx[o - 1]];
				if (!vnull)
					node = tg_jsonb_to_node(&arena, DatumGetJsonbP(v));

				{
					TgEvent		ev;

					memset(&ev, 0, sizeof(ev));
					ev.kind = TG_EV_UPDATED;
					ev.map = e->map;
					ev.maplen = e->maplen;
					ev.key = e->key;
					ev.keylen = e->keylen;
					ev.jvalue = vnull ? NULL : DatumGetJsonbP(v);
					ev.ts_text = ts;
					ev.has_ttl = !ttlnull;
					ev.ttl_ms = ttlnull ? 0 : DatumGetInt64(ttl);
					tg_events_add(&evl, &ev);
				}
				if (tg_query_map_has_subs(e->map, e->maplen))
					tg_query_on_change(e->map, e->maplen, e->key, e->keylen, node);
			}
		}
	}

	/* OR adds and removes, in feed order */
	for (int i = 0; i < n; i++)
	{
		Ev		   *e = &evs[i];

		if (e->kind != TG_CHANGE_OR_ADD && e->kind != TG_CHANGE_OR_REMOVE)
			continue;
		if (!e->own)
		{
			if (e->kind == TG_CHANGE_OR_ADD)
			{
				Oid			types[3] = {TEXTOID, TEXTOID, TEXTOID};
				Datum		args[3];

				args[0] = PointerGetDatum(cstring_to_text_with_len(e->map, e->maplen));
				args[1] = PointerGetDatum(cstring_to_text_with_len(e->key, e->keylen));
				args[2] = CStringGetTextDatum(e->tag ? e->tag : "");
				if (SPI_execute_plan(tg_live_plan(&plan_or,
												  "SELECT value, ts::text, ttl_ms FROM topgun.ormap "
												  "WHERE map = $1 AND leaf = topgun.key_leaf($2) AND key = $2 AND tag = $3",
												  3, types), args, NULL, true, 1) == SPI_OK_SELECT &&
					SPI_processed == 1)
				{
					HeapTuple	t = SPI_tuptable->vals[0];
					bool		ttlnull;
					Datum		v = SPI_getbinval(t, SPI_tuptable->tupdesc, 1, &isnull);
					char	   *ts = SPI_getvalue(t, SPI_tuptable->tupdesc, 2);
					Datum		ttl = SPI_getbinval(t, SPI_tuptable->tupdesc, 3, &ttlnull);

					TgEvent		ev;

					memset(&ev, 0, sizeof(ev));
					ev.kind = TG_EV_OR_ADD;
					ev.map = e->map;
					ev.maplen = e->maplen;
					ev.key = e->key;
					ev.keylen = e->keylen;
					ev.jvalue = isnull ? NULL : DatumGetJsonbP(v);
					ev.ts_text = ts;
					ev.tag = e->tag ? e->tag : "";
					ev.taglen = strlen(ev.tag);
					ev.has_ttl = !ttlnull;
					ev.ttl_ms = ttlnull ? 0 : DatumGetInt64(ttl);
					tg_events_add(&evl, &ev);
				}
			}
			else
			{
				TgEvent		ev;

				memset(&ev, 0, sizeof(ev));
				ev.kind = TG_EV_OR_REMOVE;
				ev.map = e->map;
				ev.maplen = e->maplen;
				ev.key = e->key;
				ev.keylen = e->keylen;
				ev.tag = e->tag ? e->tag : "";
				ev.taglen = strlen(ev.tag);
				tg_events_add(&evl, &ev);
			}
		}
		if (tg_query_map_has_subs(e->map, e->maplen))
		{
			/* skip the re-read if a later event of the same key follows */
			bool		later = false;

			for (int j = i + 1; j < n && !later; j++)
				if ((evs[j].kind == TG_CHANGE_OR_ADD || evs[j].kind == TG_CHANGE_OR_REMOVE) &&
					evs[j].maplen == e->maplen && evs[j].keylen == e->keylen &&
					memcmp(evs[j].map, e->map, e->maplen) == 0 &&
					memcmp(evs[j].key, e->key, e->keylen) == 0)
					later = true;
			if (!later)
				tg_query_on_or_change(e->map, e->maplen, e->key, e->keylen,
									  or_values(&arena, e->map, e->maplen, e->key, e->keylen));
		}
	}
	tg_events_fan_out(&evl, hlc, NULL, false);

	/* counters and topics */
	for (int i = 0; i < n; i++)
	{
		Ev		   *e = &evs[i];

		if (e->kind == TG_CHANGE_COUNTER && !e->own)
		{
			Oid			t = TEXTOID;
			Datum		arg = PointerGetDatum(cstring_to_text_with_len(e->map, e->maplen));
			bool		dup = false;

			for (int j = i + 1; j < n && !dup; j++)
				if (evs[j].kind == TG_CHANGE_COUNTER && evs[j].maplen == e->maplen &&
					memcmp(evs[j].map, e->map, e->maplen) == 0)
					dup = true;
			if (dup)
				continue;
			if (SPI_execute_plan(tg_live_plan(&plan_counter, "SELECT topgun.counter_state($1)", 1, &t),
								 &arg, NULL, true, 1) == SPI_OK_SELECT && SPI_processed == 1)
			{
				Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

				if (!isnull)
					tg_counter_push(e->map, e->maplen, DatumGetJsonbP(d), NULL);
			}
		}
		else if (e->kind == TG_CHANGE_TOPIC)
		{
			if ((size_t) e->maplen == strlen(TG_POLICY_TOPIC) &&
				memcmp(e->map, TG_POLICY_TOPIC, e->maplen) == 0)
			{
				tg_acl_load();
				tg_recheck_access();
				continue;
			}
			tg_topic_publish(NULL, e->map, e->maplen, NULL,
							 (e->payload && strcmp(e->payload, "null") != 0) ? e->payload : NULL,
							 tg_now_ms(), "sql");
		}
	}
	tg_events_free(&evl);
	mp_arena_free(&arena);
}

/*
 * Would a record change of `map` reach anyone: a connection watching the map
 * (SYNC_INIT, a live query), a query subscription or a live search?  If not,
 * its event is dropped before the re-read (entry processors and SQL writes
 * to maps no client watches cost the session nothing).
 */
static bool
map_listened(const char *map, int len)
{
	return tg_map_watched(map, len) || tg_query_map_has_subs(map, len) ||
		tg_search_map_has_subs(map, len);
}

/*
 * Called by the main loop every iteration (woken = SIGUSR2 seen) and from
 * the housekeeping tick: drain the feed, re-run limited queries touched by
 * changes, reload policies when asked.
 */
void
tg_live_poll(bool woken)
{
	StringInfoData buf;
	int64		now = tg_mono_ms();

	if (!tg_ready || !consumer)
		return;
	if (!woken && now - last_poll_ms < 250 && !tg_acl_needs_reload())
		return;
	last_poll_ms = now;
	tg_proto_enter(CurrentMemoryContext);
	initStringInfo(&buf);
	for (;;)
	{
		uint64		lost = 0;
		int			nread = tg_changes_read(&feed_cursor, &buf, FEED_READ_BYTES, &lost);
		Ev		   *evs;
		volatile int n = 0;
		int			off = 0;
		TgChange	ch;
		bool		any = false;
		uint64		unwatched = 0;

		if (lost > 0)
			resync_all(lost);
		tg_metrics_set(TG_M_FEED_LAG_BYTES, 0, (int64) (tg_changes_head() - feed_cursor));
		if (nread == 0 && !tg_acl_needs_reload())
			break;
		evs = palloc(sizeof(Ev) * Max(1, nread));
		while (tg_changes_decode(&buf, &off, &ch))
		{
			Ev		   *e = &evs[n];

			e->kind = ch.kind;
			e->own = ch.origin == TG_WORKER_ORIGIN;
			if (e->own && (ch.kind == TG_CHANGE_LWW || ch.kind == TG_CHANGE_COUNTER))
				continue;		/* fanned out directly after the worker's commit */
			if (e->own && !tg_query_map_has_subs(ch.map, ch.maplen))
				continue;
			if (!e->own && (ch.kind == TG_CHANGE_LWW || ch.kind == TG_CHANGE_OR_ADD ||
							ch.kind == TG_CHANGE_OR_REMOVE) && !map_listened(ch.map, ch.maplen))
			{
				unwatched++;	/* nobody receives it: no re-read */
				continue;
			}
			e->map = pnstrdup(ch.map, ch.maplen);
			e->maplen = ch.maplen;
			e->key = ch.keylen > 0 ? pnstrdup(ch.key, ch.keylen) : pstrdup("");
			e->keylen = ch.keylen;
			e->tag = ch.taglen > 0 ? pnstrdup(ch.tag, ch.taglen) : NULL;
			e->payload = ch.payloadlen > 0 ? pnstrdup(ch.payload, ch.payloadlen) : NULL;
			n++;
			any = true;
		}
		tg_stat_add(TG_STAT_FEED_EVENTS, nread);
		if (unwatched > 0)
			tg_stat_add(TG_STAT_FEED_UNWATCHED, unwatched);
		if (any || tg_acl_needs_reload())
		{
			PG_TRY();
			{
				tg_txn_begin();
				if (tg_acl_needs_reload())
					tg_acl_load();
				if (n > 0)
					process_events(evs, n);
				tg_txn_end();
			}
			PG_CATCH();
			{
				ErrorData  *e = tg_txn_recover();

				ereport(LOG,
						(errmsg("topgun: could not push committed changes to clients: %s", e->message)));
			}
			PG_END_TRY();
		}
		pfree(evs);
		tg_topics_flush();
		if (nread == 0 || buf.len < FEED_READ_BYTES / 2)
			break;
	}
	pfree(buf.data);
}
