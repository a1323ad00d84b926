/*
 * events.c — see events.h.  An event is
 *   {mapName, key, eventType: UPDATED, record: {value, timestamp[, ttlMs]}}
 *   {mapName, key, eventType: OR_ADD, orRecord: {value, timestamp, tag[, ttlMs]}}
 *   {mapName, key, eventType: OR_REMOVE, orTag}
 * as the TopGun client's handleServerEvent reads it (PROTOCOL.md).
 */
#include "postgres.h"

#include "exec/events.h"
#include "exec/search_live.h"

void
tg_events_init(TgEventList *l)
{
	memset(l, 0, sizeof(*l));
	l->cxt = CurrentMemoryContext;	/* events may be added inside a shorter transaction */
	mp_buf_init(&l->buf, (size_t) 1 << 30);
}

void
tg_events_free(TgEventList *l)
{
	mp_buf_free(&l->buf);
	if (l->evs)
		pfree(l->evs);
	memset(l, 0, sizeof(*l));
}

static void
put_value(MpBuf *b, const TgEvent *e)
{
	mp_put_str(b, "value");
	if (e->value)
		mp_put_node(b, e->value);
	else if (e->jvalue)
		tg_put_jsonb(b, e->jvalue);
	else
		mp_put_nil(b);
	mp_put_str(b, "timestamp");
	if (e->ts)
		tg_put_timestamp(b, e->ts);
	else
		tg_put_hlc_text(b, e->ts_text);
}

void
tg_events_add(TgEventList *l, const TgEvent *e)
{
	MpBuf	   *b = &l->buf;
	struct TgEncodedEvent *x;

	if (l->n == l->cap)
	{
		l->cap = Max(16, l->cap * 2);
		l->evs = l->evs ? repalloc(l->evs, sizeof(*l->evs) * l->cap)
			: MemoryContextAlloc(l->cxt, sizeof(*l->evs) * l->cap);
	}
	x = &l->evs[l->n++];
	/* the map name outlives e (fan-out may come after e's transaction) */
	{
		char	   *m = MemoryContextAlloc(l->cxt, e->maplen + 1);

		memcpy(m, e->map, e->maplen);
		m[e->maplen] = '\0';
		x->map = m;
	}
	x->maplen = e->maplen;
	x->off = b->len;
	/* live search re-scores the keys its maps' events name */
	tg_search_changed(e->map, e->maplen, e->key, e->keylen);
	mp_put_map_header(b, 4);
	mp_put_str(b, "mapName");
	mp_put_strn(b, e->map, e->maplen);
	mp_put_str(b, "key");
	mp_put_strn(b, e->key, e->keylen);
	mp_put_str(b, "eventType");
	switch (e->kind)
	{
		case TG_EV_UPDATED:
			mp_put_str(b, "UPDATED");
			mp_put_str(b, "record");
			mp_put_map_header(b, e->has_ttl ? 3 : 2);
			put_value(b, e);
			break;
		case TG_EV_OR_ADD:
			mp_put_str(b, "OR_ADD");
			mp_put_str(b, "orRecord");
			mp_put_map_header(b, e->has_ttl ? 4 : 3);
			put_value(b, e);
			mp_put_str(b, "tag");
			mp_put_strn(b, e->tag, e->taglen);
			break;
		case TG_EV_OR_REMOVE:
			mp_put_str(b, "OR_REMOVE");
			mp_put_str(b, "orTag");
			mp_put_strn(b, e->tag, e->taglen);
			break;
	}
	if (e->has_ttl && e->kind != TG_EV_OR_REMOVE)
	{
		mp_put_str(b, "ttlMs");
		mp_put_int(b, e->ttl_ms);
	}
	x->len = b->len - x->off;
}

void
tg_events_fan_out(TgEventList *l, const char *hlc, TgConn *exclude, bool single)
{
	MpBuf		tsbuf;

	if (l->n == 0 || hlc == NULL || !mp_buf_ok(&l->buf))
		return;
	TG_ASSERT(!single || l->n == 1);
	mp_buf_init(&tsbuf, 0);
	tg_put_hlc_text(&tsbuf, hlc);
	for (TgConn *c = tg_conns; c; c = c->next)
	{
		int			n = 0;
		MpBuf	   *b;

		if (c == exclude || c->closed || c->closing || !c->authenticated || c->watches == NULL)
			continue;
		/* a watch exists only if READ was allowed (re-checked on policy changes) */
		for (int e = 0; e < l->n; e++)
			if (tg_watches_map(c, l->evs[e].map, l->evs[e].maplen))
				n++;
		if (n == 0)
			continue;
		b = tg_buf_begin();
		mp_put_map_header(b, 3);
		mp_put_str(b, "type");
		mp_put_str(b, single ? "SERVER_EVENT" : "SERVER_BATCH_EVENT");
		mp_put_str(b, "payload");
		if (!single)
		{
			mp_put_map_header(b, 1);
			mp_put_str(b, "events");
			mp_put_array_header(b, n);
		}
		for (int e = 0; e < l->n; e++)
			if (tg_watches_map(c, l->evs[e].map, l->evs[e].maplen))
				mp_put_raw(b, l->buf.data + l->evs[e].off, l->evs[e].len);
		mp_put_str(b, "timestamp");
		mp_put_raw(b, tsbuf.data, tsbuf.len);
		tg_buf_send(c, b);
		tg_stat_add(TG_STAT_EVENTS_SENT, 1);
	}
	mp_buf_free(&tsbuf);
}
