/*
 * queries.c — live query subscriptions (QUERY_SUB / QUERY_UNSUB,
 * QUERY_RESP, QUERY_UPDATE; PROTOCOL.md §7, docs/live.md).
 *
 * Each subscription holds its compiled query (src/query, JS semantics) and
 * the set of keys the client currently holds.  Subscriptions are listed per
 * map (a hash table map name → list), so a write only looks at the
 * subscriptions of its own map, and for each of them evaluates the compiled
 * predicate on the one changed value:
 *
 *   no limit/cursor: matches now → UPDATE (enter or change); matched
 *                    before but not now → REMOVE.  O(1) per subscription.
 *   limit or cursor: the page depends on other records, so when the change
 *                    touches the page (matches now, or was in it) the query
 *                    is re-run from the database after the event, and the
 *                    page is diffed (REMOVE leaving keys, UPDATE entering
 *                    and changed keys).  Changes that neither match nor
 *                    were in the page cost one predicate evaluation.
 *
 * Bounds: topgun.max_subscriptions_per_connection (queries + counters),
 * topgun.max_query_results keys tracked per subscription.
 */
#include "postgres.h"

#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "executor/executor.h"
#include "executor/readers.h"
#include "ipc/ipc.h"

#define CURSOR_TTL_MS	(10 * 60 * 1000)
#define MAX_CHANGED		64

/* ------------------------------------------------------------ per-map lists */

typedef struct MapKey
{
	uint16		len;
	char		name[TG_WIRE_MAX_MAP_BYTES + 1];	/* NUL-padded */
} MapKey;

struct TgMapSubs
{
	MapKey		key;			/* hash key: must be first */
	TgQuerySub *head;
	int			n;
};

static HTAB *map_subs = NULL;

static void
mapkey(MapKey *k, const char *map, size_t len)
{
	memset(k, 0, sizeof(*k));
	k->len = (uint16) Min(len, TG_WIRE_MAX_MAP_BYTES);
	memcpy(k->name, map, k->len);
}

static TgMapSubs *
map_lookup(const char *map, size_t len, bool create)
{
	MapKey		k;
	bool		found;
	TgMapSubs  *ms;

	if (map_subs == NULL)
	{
		HASHCTL		ctl;

		if (!create)
			return NULL;
		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(MapKey);
		ctl.entrysize = sizeof(TgMapSubs);
		ctl.hcxt = TopMemoryContext;
		map_subs = hash_create("topgun query subscriptions", 64, &ctl,
							   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	if (len > TG_WIRE_MAX_MAP_BYTES)
		return NULL;
	mapkey(&k, map, len);
	ms = hash_search(map_subs, &k, create ? HASH_ENTER : HASH_FIND, &found);
	if (ms && create && !found)
	{
		ms->head = NULL;
		ms->n = 0;
	}
	return ms;
}

bool
tg_query_map_has_subs(const char *map, size_t len)
{
	TgMapSubs  *ms = map_lookup(map, len, false);

	return ms != NULL && ms->n > 0;
}

/* ------------------------------------------------------------ pending re-runs */

typedef struct Pending
{
	struct Pending *next;
	TgQuerySub *sub;
	int			nchanged;		/* -1: too many, refresh every value */
	char	   *changed[MAX_CHANGED];
	size_t		changed_len[MAX_CHANGED];
} Pending;

static Pending *pending = NULL;

static Pending *
pending_find(TgQuerySub *sub)
{
	for (Pending *p = pending; p; p = p->next)
		if (p->sub == sub)
			return p;
	return NULL;
}

static void
pending_drop_sub(TgQuerySub *sub)
{
	Pending   **pp = &pending;

	while (*pp)
	{
		Pending    *p = *pp;

		if (p->sub == sub)
		{
			*pp = p->next;
			for (int i = 0; i < p->nchanged; i++)
				free(p->changed[i]);
			free(p);
			continue;
		}
		pp = &p->next;
	}
}

bool
tg_query_has_pending(void)
{
	return pending != NULL;
}

/* ------------------------------------------------------------ subscriptions */

static void
sub_free(TgQuerySub *sub)
{
	TgMapSubs  *ms = sub->ms;

	pending_drop_sub(sub);
	if (sub->inflight)
		tg_readers_forget(sub);
	if (sub->running)
	{
		for (int i = 0; i < sub->running->nchanged; i++)
			free(sub->running->changed[i]);
		free(sub->running);
	}
	free(sub->qraw);
	if (ms)
	{
		if (sub->map_prev)
			sub->map_prev->map_next = sub->map_next;
		else
			ms->head = sub->map_next;
		if (sub->map_next)
			sub->map_next->map_prev = sub->map_prev;
		ms->n--;
		if (ms->n == 0)
			hash_search(map_subs, &ms->key, HASH_REMOVE, NULL);
	}
	tg_query_free(sub->q);
	tg_ks_free(&sub->keys);
	free(sub->cursor);
	free(sub->query_id);
	free(sub);
}

static TgQuerySub *
conn_find_sub(TgConn *c, const char *qid, size_t len, TgQuerySub ***link)
{
	TgQuerySub **pp = &c->queries;

	while (*pp)
	{
		if (strlen((*pp)->query_id) == len && memcmp((*pp)->query_id, qid, len) == 0)
		{
			if (link)
				*link = pp;
			return *pp;
		}
		pp = &(*pp)->next;
	}
	return NULL;
}

static void
conn_drop_sub(TgConn *c, const char *qid, size_t len)
{
	TgQuerySub **link;
	TgQuerySub *sub = conn_find_sub(c, qid, len, &link);

	if (sub == NULL)
		return;
	*link = sub->next;
	c->nqueries--;
	c->slot_dirty = true;
	tg_watch_drop_query_id(c, sub->query_id);
	sub_free(sub);
}

void
tg_query_handle_unsub(TgConn *c, TgStr query_id)
{
	conn_drop_sub(c, query_id.p, query_id.len);
}

void
tg_query_conn_gone(TgConn *c)
{
	while (c->queries)
	{
		TgQuerySub *s = c->queries;

		c->queries = s->next;
		sub_free(s);
	}
	c->nqueries = 0;
}

/* ------------------------------------------------------------ evaluation */

static void
put_str(MpBuf *b, const char *s, size_t len)
{
	mp_put_strn(b, s, len);
}

static void
send_update(TgQuerySub *sub, const char *key, size_t keylen, const MpNode *node, Jsonb *jb,
			bool remove)
{
	MpBuf	   *b = tg_buf_begin();

	mp_put_map_header(b, 2);
	mp_put_str(b, "type");
	mp_put_str(b, "QUERY_UPDATE");
	mp_put_str(b, "payload");
	mp_put_map_header(b, 4);
	mp_put_str(b, "queryId");
	mp_put_str(b, sub->query_id);
	mp_put_str(b, "key");
	put_str(b, key, keylen);
	mp_put_str(b, "value");
	if (remove)
		mp_put_nil(b);
	else if (jb)
		tg_put_jsonb(b, jb);
	else
		mp_put_node(b, node);
	mp_put_str(b, "type");
	mp_put_str(b, remove ? "REMOVE" : "UPDATE");
	tg_buf_send(sub->conn, b);
	tg_stat_add(TG_STAT_QUERY_UPDATES, 1);
}

static void
drop_for_limit(TgQuerySub *sub)
{
	TgConn	   *c = sub->conn;

	c->limit_hits++;
	c->slot_dirty = true;
	tg_stat_add(TG_STAT_LIMIT_REACHED, 1);
	tg_send_error(c, 413, psprintf("Query %s exceeds topgun.max_query_results (%d); subscription dropped",
								   sub->query_id, tg_max_query_results));
	conn_drop_sub(c, sub->query_id, strlen(sub->query_id));
}

void
tg_query_on_change(const char *map, size_t maplen, const char *key, size_t keylen,
				   const MpNode *value)
{
	TgMapSubs  *ms = map_lookup(map, maplen, false);
	TgQuerySub *sub,
			   *next;

	if (ms == NULL)
		return;
	for (sub = ms->head; sub; sub = next)
	{
		bool		in,
					match;

		next = sub->map_next;
		if (sub->conn->closed || sub->conn->closing)
			continue;
		if (sub->loading)
		{
			/* its first page is being read: refresh it once it is there */
			sub->dirty = true;
			continue;
		}
		in = tg_ks_has(&sub->keys, key, keylen);
		match = tg_query_match(sub->q, value);
		if (!in && !match)
			continue;
		if (sub->rerun)
		{
			Pending    *p = pending_find(sub);

			if (p == NULL)
			{
				p = calloc(1, sizeof(Pending));
				if (p == NULL)
					continue;
				p->sub = sub;
				p->next = pending;
				pending = p;
			}
			if (p->nchanged >= 0 && p->nchanged < MAX_CHANGED)
			{
				p->changed[p->nchanged] = malloc(keylen + 1);
				if (p->changed[p->nchanged])
				{
					memcpy(p->changed[p->nchanged], key, keylen);
					p->changed_len[p->nchanged] = keylen;
					p->nchanged++;
				}
			}
			else if (p->nchanged >= 0)
			{
				for (int i = 0; i < p->nchanged; i++)
					free(p->changed[i]);
				p->nchanged = -1;
			}
			continue;
		}
		if (match)
		{
			if (!in && sub->keys.n >= (uint32) tg_max_query_results)
			{
				drop_for_limit(sub);
				continue;
			}
			if (!in && !tg_ks_add(&sub->keys, key, keylen))
				continue;
			send_update(sub, key, keylen, value, NULL, false);
		}
		else
		{
			tg_ks_del(&sub->keys, key, keylen);
			send_update(sub, key, keylen, NULL, NULL, true);
		}
	}
}

/* ------------------------------------------------------------ pages from a reader */

/* The rows of a TG_REP_ROWS reply: {rows: [[key, value], ...], total}. */
typedef struct QPage
{
	int			n;
	int64		total;
	const MpNode **keys;
	const MpNode **values;
} QPage;

static bool
page_decode(MpArena *arena, const char *msg, Size len, QPage *pg)
{
	TgRecIter	it;
	TgRec		rec;
	const char *p;
	MpLimits	lim;
	char		err[128];
	const MpNode *root = NULL;
	const MpNode *rows;
	const MpNode *total;

	tg_rec_iter_init(&it, msg, len);
	while (tg_rec_next(&it, &rec, &p))
		if (rec.kind == TG_REP_ROWS)
		{
			lim.max_depth = 64;
			lim.max_nodes = (uint32) Min((Size) UINT32_MAX - 1, (Size) rec.len + 1);
			lim.max_str = (uint32) Min((Size) UINT32_MAX - 1, Max((Size) rec.len, 1));
			root = mp_decode(arena, (const uint8_t *) p, rec.len, &lim, err, sizeof(err));
			break;
		}
	if (root == NULL || (rows = mp_map_get(root, "rows")) == NULL || rows->type != MP_ARRAY ||
		(total = mp_map_get(root, "total")) == NULL)
		return false;
	pg->n = (int) rows->len;
	pg->total = (int64) mp_number_as_double(total);
	pg->keys = palloc(sizeof(MpNode *) * Max(1, pg->n));
	pg->values = palloc(sizeof(MpNode *) * Max(1, pg->n));
	for (int i = 0; i < pg->n; i++)
	{
		const MpNode *row = &rows->v.items[i];

		if (row->type != MP_ARRAY || row->len != 2 || row->v.items[0].type != MP_STR)
			return false;
		pg->keys[i] = &row->v.items[0];
		pg->values[i] = &row->v.items[1];
	}
	return true;
}

static void fetch_done(TgConn *c, void *arg, const char *msg, Size len,
					   const TgRecError *err);

/* Ask a reader for the subscription's current page. */
static void
submit_fetch(TgQuerySub *sub, bool holds_conn, int64 cursor_ttl_ms)
{
	MpBuf		b;

	mp_buf_init(&b, (size_t) 1 << 30);
	mp_put_map_header(&b, 4);
	mp_put_str(&b, "m");
	mp_put_strn(&b, sub->ms->key.name, sub->ms->key.len);
	mp_put_str(&b, "q");
	if (sub->qraw)
		mp_put_raw(&b, sub->qraw, sub->qraw_len);
	else
		mp_put_nil(&b);
	mp_put_str(&b, "c");
	if (sub->cursor)
		mp_put_str(&b, sub->cursor);
	else
		mp_put_nil(&b);
	mp_put_str(&b, "t");
	mp_put_int(&b, cursor_ttl_ms);
	sub->inflight = true;
	if (!mp_buf_ok(&b))
	{
		TgRecError	err = {500, "Server out of memory"};

		mp_buf_free(&b);
		fetch_done(sub->conn, sub, NULL, 0, &err);
		return;
	}
	tg_readers_submit(sub->conn, holds_conn, TG_REQ_FETCH, b.data, b.len, fetch_done, sub);
	mp_buf_free(&b);
}

static bool
changed_key(Pending *p, const char *key, size_t keylen)
{
	if (p == NULL || p->nchanged < 0)
		return true;
	for (int j = 0; j < p->nchanged; j++)
		if (p->changed_len[j] == keylen && memcmp(p->changed[j], key, keylen) == 0)
			return true;
	return false;
}

/* A re-read page: send what left, entered or changed. */
static void
apply_rerun(TgQuerySub *sub, const QPage *pg, Pending *p)
{
	TgKeySet	fresh = {0};

	for (int i = 0; i < pg->n; i++)
		tg_ks_add(&fresh, pg->keys[i]->v.s, pg->keys[i]->len);
	for (uint32 i = 0; i < sub->keys.cap; i++)
	{
		char	   *e = sub->keys.slots[i];

		if (e == NULL || e == TG_KEYSET_DEAD)
			continue;
		if (!tg_ks_has(&fresh, e + 4, tg_ks_len(e)))
			send_update(sub, e + 4, tg_ks_len(e), NULL, NULL, true);
	}
	for (int i = 0; i < pg->n; i++)
	{
		const char *k = pg->keys[i]->v.s;
		size_t		kl = pg->keys[i]->len;

		if (!tg_ks_has(&sub->keys, k, kl) || changed_key(p, k, kl))
			send_update(sub, k, kl, pg->values[i], NULL, false);
	}
	tg_ks_free(&sub->keys);
	sub->keys = fresh;
}

/* The first page: QUERY_RESP, then the subscription is live. */
static void
apply_first(TgQuerySub *sub, const QPage *pg)
{
	TgConn	   *c = sub->conn;
	int64		limit = tg_query_limit(sub->q);
	bool		has_more;
	char		next_cursor[16384];
	MpBuf	   *b;
	TgStr		map;
	TgStr		qid;

	if (pg->n > tg_max_query_results)
	{
		c->limit_hits++;
		c->slot_dirty = true;
		tg_stat_add(TG_STAT_LIMIT_REACHED, 1);
		tg_send_error(c, 413, psprintf("Query result has %d records, more than topgun.max_query_results (%d); add a limit",
									   pg->n, tg_max_query_results));
		conn_drop_sub(c, sub->query_id, strlen(sub->query_id));
		return;
	}
	has_more = limit >= 0 && pg->total > limit;
	next_cursor[0] = '\0';
	if (has_more && pg->n > 0)
		tg_query_cursor_make(sub->q, pg->keys[pg->n - 1]->v.s, pg->keys[pg->n - 1]->len,
							 pg->values[pg->n - 1], tg_now_ms(), next_cursor, sizeof(next_cursor));

	b = tg_buf_begin();
	mp_put_map_header(b, 2);
	mp_put_str(b, "type");
	mp_put_str(b, "QUERY_RESP");
	mp_put_str(b, "payload");
	mp_put_map_header(b, 3 + (limit >= 0 ? 1 : 0) + (next_cursor[0] ? 1 : 0));
	mp_put_str(b, "queryId");
	mp_put_str(b, sub->query_id);
	mp_put_str(b, "results");
	mp_put_array_header(b, pg->n);
	for (int i = 0; i < pg->n; i++)
	{
		mp_put_map_header(b, 2);
		mp_put_str(b, "key");
		put_str(b, pg->keys[i]->v.s, pg->keys[i]->len);
		mp_put_str(b, "value");
		mp_put_node(b, pg->values[i]);
	}
	if (limit >= 0)
	{
		mp_put_str(b, "hasMore");
		mp_put_bool(b, has_more);
	}
	if (next_cursor[0])
	{
		mp_put_str(b, "nextCursor");
		mp_put_str(b, next_cursor);
	}
	mp_put_str(b, "cursorStatus");
	mp_put_str(b, sub->cursor_status);
	tg_buf_send(c, b);

	for (int i = 0; i < pg->n; i++)
		tg_ks_add(&sub->keys, pg->keys[i]->v.s, pg->keys[i]->len);
	sub->loading = false;
	if (!sub->cursor_valid)
	{
		/* re-reads start from a cursor only if it was valid */
		free(sub->cursor);
		sub->cursor = NULL;
	}
	map.p = sub->ms->key.name;
	map.len = sub->ms->key.len;
	qid.p = sub->query_id;
	qid.len = (uint32) strlen(sub->query_id);
	tg_watch_add_query(c, map, qid);
	c->slot_dirty = true;
	if (sub->dirty)
	{
		/* changes committed while the page was read: refresh once */
		Pending    *p = calloc(1, sizeof(Pending));

		sub->dirty = false;
		if (p)
		{
			p->sub = sub;
			p->nchanged = -1;
			p->next = pending;
			pending = p;
		}
	}
}

static void
fetch_done(TgConn *c, void *arg, const char *msg, Size len, const TgRecError *err)
{
	TgQuerySub *sub = arg;
	Pending    *p = sub->running;
	MpArena		arena;
	QPage		pg;

	sub->inflight = false;
	sub->running = NULL;
	if (c == NULL)
		goto out;
	mp_arena_init(&arena);
	if (msg == NULL || !page_decode(&arena, msg, len, &pg))
	{
		if (sub->loading)
		{
			tg_send_error(c, err ? err->code : 500, err ? err->message : "Malformed reply from a reader");
			conn_drop_sub(c, sub->query_id, strlen(sub->query_id));
		}
		else
			ereport(LOG, (errmsg("topgun: could not refresh query %s: %s", sub->query_id,
								 err ? err->message : "malformed reply")));
	}
	else if (sub->loading)
		apply_first(sub, &pg);
	else
		apply_rerun(sub, &pg, p);
	mp_arena_free(&arena);
out:
	if (p)
	{
		for (int i = 0; i < p->nchanged; i++)
			free(p->changed[i]);
		free(p);
	}
}

/* Re-read limited/cursor subscriptions touched by changes (readers do the reading). */
void
tg_query_run_pending(void)
{
	Pending   **pp = &pending;

	while (*pp)
	{
		Pending    *p = *pp;
		TgQuerySub *sub = p->sub;

		if (sub->inflight || sub->loading)
		{
			pp = &p->next;		/* after the read that is out */
			continue;
		}
		*pp = p->next;
		if (sub->conn->closed || sub->conn->closing)
		{
			for (int i = 0; i < p->nchanged; i++)
				free(p->changed[i]);
			free(p);
			continue;
		}
		tg_stat_add(TG_STAT_QUERY_RERUNS, 1);
		sub->running = p;
		submit_fetch(sub, false, INT64CONST(1) << 52);
	}
}

/*
 * QUERY_SUB (session executor; READ already checked).  Registers the
 * subscription (loading) and asks a reader for the first page; returns
 * false when it was answered at once (refused).
 */
bool
tg_query_handle_sub(TgConn *c, TgMessage *m)
{
	TgStr		qid = m->u.query_sub.query_id;
	TgStr		map = m->u.query_sub.map_name;
	const MpNode *query = m->u.query_sub.query;
	const MpNode *cursor_node = query ? mp_map_get(query, "cursor") : NULL;
	char		err[256];
	TgQuery    *q;
	TgCursor	cur;
	const char *cursor_status = "none";
	bool		cursor_valid = false;
	TgQuerySub *sub;
	MpBuf		qb;

	/* a re-sent queryId replaces the old subscription */
	conn_drop_sub(c, qid.p, qid.len);
	if (c->nqueries + c->ncounters >= tg_max_subscriptions_per_connection)
	{
		c->limit_hits++;
		c->slot_dirty = true;
		tg_stat_add(TG_STAT_LIMIT_REACHED, 1);
		tg_send_error(c, 400, "Subscription limit reached");
		return false;
	}
	if (map.len > TG_WIRE_MAX_MAP_BYTES)
	{
		tg_send_error(c, 400, "Invalid query: map name too long");
		return false;
	}
	q = tg_query_compile(query, err, sizeof(err));
	if (q == NULL)
	{
		tg_send_error(c, 400, psprintf("Invalid query: %s", err));
		return false;
	}
	if (cursor_node && cursor_node->type == MP_STR)
	{
		cursor_status = tg_query_cursor_check(q, cursor_node->v.s, cursor_node->len, tg_now_ms(),
											  CURSOR_TTL_MS, &cur);
		cursor_valid = cur.valid;
		tg_query_cursor_free(&cur);
	}
	mp_buf_init(&qb, (size_t) tg_max_message_bytes + 1024);
	if (query)
		mp_put_node(&qb, query);
	sub = calloc(1, sizeof(TgQuerySub));
	if (sub == NULL || !mp_buf_ok(&qb) || (sub->query_id = malloc(qid.len + 1)) == NULL)
	{
		free(sub);
		mp_buf_free(&qb);
		tg_query_free(q);
		tg_send_error(c, 500, "Server out of memory");
		return false;
	}
	memcpy(sub->query_id, qid.p, qid.len);
	sub->query_id[qid.len] = '\0';
	sub->conn = c;
	sub->q = q;
	sub->loading = true;
	sub->cursor_status = cursor_status;
	if (query)
		sub->qraw = (char *) mp_buf_steal(&qb, &sub->qraw_len);
	mp_buf_free(&qb);
	sub->rerun = tg_query_limit(q) >= 0 || cursor_valid;
	sub->cursor_valid = cursor_valid;
	if (cursor_node && cursor_node->type == MP_STR)
		sub->cursor = strndup(cursor_node->v.s, cursor_node->len);
	sub->ms = map_lookup(map.p, map.len, true);
	sub->map_next = sub->ms->head;
	if (sub->ms->head)
		sub->ms->head->map_prev = sub;
	sub->ms->head = sub;
	sub->ms->n++;
	sub->next = c->queries;
	c->queries = sub;
	c->nqueries++;
	c->slot_dirty = true;
	submit_fetch(sub, true, CURSOR_TTL_MS);
	return true;
}

/* Policies changed: drop the subscriptions of c whose map is no longer readable. */
void
tg_query_recheck_conn(TgConn *c)
{
	TgQuerySub *s = c->queries;

	while (s)
	{
		TgQuerySub *n = s->next;

		if (!tg_acl_allowed(c, s->ms->key.name, s->ms->key.len, TG_ACT_READ))
		{
			tg_send_error(c, 403, psprintf("Access denied for %.*s", (int) s->ms->key.len,
										   s->ms->key.name));
			conn_drop_sub(c, s->query_id, strlen(s->query_id));
		}
		s = n;
	}
}
