/*
 * journal_live.c — JOURNAL_SUBSCRIBE / JOURNAL_UNSUBSCRIBE (PROTOCOL-ADDENDUM
 * §A6, docs/journal.md) in the session executor.  A subscription has a
 * cursor (the next sequence it wants), an optional map and type filter.
 * When the journal's horizon (shared memory: every number at or below it is
 * committed or gone) passes the lowest cursor, a reader reads the events
 * after it (topgun.journal_read, in sequence order) and the session sends
 * each subscription its matching events as JOURNAL_EVENT, READ checked per
 * event map.  Unlike the reference, UNSUBSCRIBE stops the stream, and a
 * subscription without fromSequence starts after the current horizon.
 */
#include "postgres.h"

#include "utils/builtins.h"

#include "exec/exec.h"
#include "exec/journal_live.h"
#include "exec/readers.h"

#define MAX_SUBS_PER_CONN	16
#define READ_BATCH			1000

typedef struct JSub
{
	struct JSub *next;
	TgConn	   *conn;
	char	   *id;
	int64		next_seq;		/* first sequence not sent yet */
	char	   *map;			/* NULL: every map (ADMIN) */
	uint32		types;			/* TgJournalType bits, 0: all */
} JSub;

static JSub *jsubs = NULL;
static bool reading = false;
static int64 read_from = 0;

static void
jsub_drop(TgConn *c, const char *id, size_t len)
{
	JSub	  **pp = &jsubs;

	while (*pp)
	{
		JSub	   *s = *pp;

		if (s->conn == c && (id == NULL || (strlen(s->id) == len && memcmp(s->id, id, len) == 0)))
		{
			*pp = s->next;
			c->njournals--;
			free(s->id);
			free(s->map);
			free(s);
			continue;
		}
		pp = &s->next;
	}
}

void
tg_journal_subscribe(TgConn *c, TgMessage *m)
{
	TgStr		rid = m->u.journal.request_id;
	JSub	   *s;

	if (m->u.journal.has_map_name ? !tg_acl_allowed(c, m->u.journal.map_name.p, m->u.journal.map_name.len, TG_ACT_READ)
		: !c->is_admin)
	{
		c->denied++;
		tg_stat_add(TG_STAT_ACCESS_DENIED, 1);
		tg_send_error(c, 403, "Access denied for the event journal");
		return;
	}
	jsub_drop(c, rid.p, rid.len);
	if (c->njournals >= MAX_SUBS_PER_CONN)
	{
		c->limit_hits++;
		tg_stat_add(TG_STAT_LIMIT_REACHED, 1);
		tg_send_error(c, 400, "Journal subscription limit reached");
		return;
	}
	s = calloc(1, sizeof(JSub));
	if (s == NULL || (s->id = strndup(rid.p, rid.len)) == NULL)
	{
		free(s);
		tg_send_error(c, 500, "Server out of memory");
		return;
	}
	s->conn = c;
	/* without fromSequence: after the journal's horizon when first served */
	s->next_seq = m->u.journal.has_from_sequence ? m->u.journal.from_sequence : -1;
	if (m->u.journal.has_map_name)
		s->map = strndup(m->u.journal.map_name.p, m->u.journal.map_name.len);
	s->types = m->u.journal.has_types ? m->u.journal.types_mask : 0;
	s->next = jsubs;
	jsubs = s;
	c->njournals++;
	c->slot_dirty = true;
}

void
tg_journal_unsubscribe(TgConn *c, TgMessage *m)
{
	jsub_drop(c, m->u.journal_unsub.subscription_id.p, m->u.journal_unsub.subscription_id.len);
}

void
tg_journal_conn_gone(TgConn *c)
{
	jsub_drop(c, NULL, 0);
}

static uint32
type_bit(const MpNode *t)
{
	if (mp_str_eq(t, "PUT"))
		return TG_JOURNAL_PUT;
	if (mp_str_eq(t, "UPDATE"))
		return TG_JOURNAL_UPDATE;
	if (mp_str_eq(t, "DELETE"))
		return TG_JOURNAL_DELETE;
	return 0;
}

/* Events after read_from: to every subscription that wants them. */
static void
events_read(TgConn *unused, void *arg, const char *msg, Size len, const TgRecError *err)
{
	TgRecIter	it;
	TgRec		rec;
	const char *p;
	int64		last = read_from - 1;
	bool		more = false;

	reading = false;
	if (msg == NULL)
	{
		ereport(LOG, (errmsg("topgun: could not read the journal for subscriptions: %s", err->message)));
		return;
	}
	tg_rec_iter_init(&it, msg, len);
	while (tg_rec_next(&it, &rec, &p))
	{
		const MpNode *hz;
		MpArena		arena;
		MpLimits	lim = {64, (uint32) rec.len + 1, (uint32) Max(rec.len, 1)};
		char		e[128];
		const MpNode *root,
				   *evs;

		if (rec.kind != TG_REP_ROWS)
			continue;
		mp_arena_init(&arena);
		root = mp_decode(&arena, (const uint8_t *) p, rec.len, &lim, e, sizeof(e));
		evs = root ? mp_map_get(root, "events") : NULL;
		hz = root ? mp_map_get(root, "horizon") : NULL;
		if (hz)
			for (JSub *s = jsubs; s; s = s->next)
				if (s->next_seq < 0)
					s->next_seq = (int64) mp_number_as_double(hz) + 1;
		{
			const MpNode *mn = root ? mp_map_get(root, "more") : NULL;

			more = mn && mn->type == MP_BOOL && mn->v.b;
		}
		for (uint32 i = 0; evs && evs->type == MP_ARRAY && i < evs->len; i++)
		{
			const MpNode *ev = &evs->v.items[i];
			const MpNode *seq = mp_map_get(ev, "sequence");
			const MpNode *map = mp_map_get(ev, "mapName");
			const MpNode *type = mp_map_get(ev, "type");
			int64		n;

			if (seq == NULL || seq->type != MP_STR || map == NULL || map->type != MP_STR)
				continue;
			n = strtoll(pnstrdup(seq->v.s, seq->len), NULL, 10);
			last = Max(last, n);
			for (JSub *s = jsubs; s; s = s->next)
			{
				MpBuf	   *b;

				if (s->next_seq < 0 || n < s->next_seq || s->conn->closed || s->conn->closing)
					continue;
				s->next_seq = n + 1;
				if (s->map && (strlen(s->map) != map->len || memcmp(s->map, map->v.s, map->len) != 0))
					continue;
				if (s->types && type && !(s->types & type_bit(type)))
					continue;
				if (!tg_acl_allowed(s->conn, map->v.s, map->len, TG_ACT_READ))
					continue;
				b = tg_buf_begin();
				mp_put_map_header(b, 2);
				mp_put_str(b, "type");
				mp_put_str(b, "JOURNAL_EVENT");
				mp_put_str(b, "event");
				mp_put_node(b, ev);
				tg_buf_send(s->conn, b);
			}
		}
		mp_arena_free(&arena);
	}
	/* nothing more up to here for anyone, even without a matching event */
	for (JSub *s = jsubs; s; s = s->next)
		if (!more && s->next_seq >= 0 && s->next_seq <= last)
			s->next_seq = last + 1;
}

/*
 * Once per loop iteration (at most every 20 ms): a reader reads the events
 * after the lowest cursor, up to the journal's horizon (journal_read stops
 * there), and tells the horizon.
 */
void
tg_journal_tick(void)
{
	static int64 last_ms = 0;
	int64		now = tg_mono_ms();
	int64		from = INT64_MAX;
	MpBuf		b;

	if (jsubs == NULL || reading || !tg_ready || now - last_ms < 20)
		return;
	last_ms = now;
	for (JSub *s = jsubs; s; s = s->next)
		from = Min(from, s->next_seq < 0 ? INT64_MAX : s->next_seq);
	read_from = from == INT64_MAX ? -1 : from;	/* -1: only the horizon */
	mp_buf_init(&b, 256);
	mp_put_map_header(&b, 2);
	mp_put_str(&b, "f");
	mp_put_int(&b, read_from);
	mp_put_str(&b, "l");
	mp_put_int(&b, READ_BATCH);
	reading = true;
	tg_readers_submit(NULL, false, TG_REQ_JOURNAL, b.data, b.len, events_read, NULL);
	mp_buf_free(&b);
}
