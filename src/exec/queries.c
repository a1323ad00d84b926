/*
 * queries.c — live query subscriptions (QUERY_SUB / QUERY_UNSUB,
 * QUERY_RESP, QUERY_UPDATE; PROTOCOL.md §7, docs/live.md "Cost of a write").
 *
 * Each subscription holds its compiled query (src/query, JS semantics) and
 * the keys the client holds; query_subs.c finds the subscriptions a write
 * can affect, and each decides from the new record alone:
 *
 *   no limit/cursor: matches now -> UPDATE; held but no longer matching ->
 *                    REMOVE.  O(1).
 *   limit:           after a full page's last row -> nothing; a page holding
 *                    every match changes in place; a member that stays
 *                    before the last row is updated in place; a member that
 *                    leaves is replaced by the row after the last one (a
 *                    one-row keyset read); anything else re-reads the page.
 *   cursor:          re-reads the page.
 * Pages are read by reader executors (query_fetch.c) and diffed here.
 * Bounds: topgun.max_subscriptions_per_connection (queries + counters),
 * topgun.max_query_results keys tracked per subscription.
 */
#include "postgres.h"

#include "utils/builtins.h"
#include "utils/memutils.h"

#include "exec/exec.h"
#include "exec/queries.h"
#include "exec/readers.h"
#include "ipc/ipc.h"

#define CURSOR_TTL_MS	(10 * 60 * 1000)

/* ------------------------------------------------------------ pending re-runs */

Pending    *tg_qpending = NULL;

Pending *
tg_qpending_find(TgQuerySub *sub)
{
	for (Pending *p = tg_qpending; p; p = p->next)
		if (p->sub == sub)
			return p;
	return NULL;
}

static void
pending_drop_sub(TgQuerySub *sub)
{
	Pending   **pp = &tg_qpending;

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
	return tg_qpending != NULL;
}

/* ------------------------------------------------------------ subscriptions */

static void
sub_free(TgQuerySub *sub)
{
	tg_qsubs_account(sub, true);
	tg_stat_sub(TG_STAT_QUERY_SUBS, 1);
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
	tg_qsubs_remove(sub);
	tg_query_free(sub->q);
	tg_ks_free(&sub->keys);
	free(sub->bkey);
	free(sub->bval);
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

void
tg_qsend_update(TgQuerySub *sub, const char *key, size_t keylen, const MpNode *node, Jsonb *jb,
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

void
tg_qdrop_for_limit(TgQuerySub *sub)
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
tg_qkey_enter(TgQuerySub *sub, const char *key, size_t keylen)
{
	(void) tg_ks_add(&sub->keys, key, keylen);
	tg_qsubs_hold(sub, key, keylen);
	tg_qsubs_account(sub, false);
}

void
tg_qkey_leave(TgQuerySub *sub, const char *key, size_t keylen)
{
	tg_ks_del(&sub->keys, key, keylen);
	tg_qsubs_release(sub, key, keylen);
	tg_qsubs_account(sub, false);
}

/* ------------------------------------------------------------ pages from a reader */

static void fetch_done(TgConn *c, void *arg, const char *msg, Size len,
					   const TgRecError *err);

/* Ask a reader for the subscription's current page. */
static void
submit_fetch(TgQuerySub *sub, bool holds_conn, int64 cursor_ttl_ms, const char *cursor, int64 limit)
{
	MpBuf		b;

	if (cursor == NULL)
		cursor = sub->cursor;
	mp_buf_init(&b, (size_t) 1 << 30);
	mp_put_map_header(&b, limit >= 0 ? 5 : 4);
	if (limit >= 0)
	{
		mp_put_str(&b, "l");
		mp_put_int(&b, limit);
	}
	mp_put_str(&b, "m");
	{
		size_t		mlen;
		const char *mname = tg_qsubs_map_name(sub->ms, &mlen);

		mp_put_strn(&b, mname, mlen);
	}
	mp_put_str(&b, "q");
	if (sub->qraw)
		mp_put_raw(&b, sub->qraw, sub->qraw_len);
	else
		mp_put_nil(&b);
	mp_put_str(&b, "c");
	if (cursor)
		mp_put_str(&b, cursor);
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
apply_rerun(TgQuerySub *sub, const TgQPage *pg, Pending *p)
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
			tg_qsend_update(sub, e + 4, tg_ks_len(e), NULL, NULL, true);
	}
	for (int i = 0; i < pg->n; i++)
	{
		const char *k = pg->keys[i]->v.s;
		size_t		kl = pg->keys[i]->len;

		if (!tg_ks_has(&sub->keys, k, kl) || changed_key(p, k, kl))
			tg_qsend_update(sub, k, kl, pg->values[i], NULL, false);
	}
	tg_qsubs_release_all(sub);
	tg_ks_free(&sub->keys);
	sub->keys = fresh;
	for (int i = 0; i < pg->n; i++)
		tg_qsubs_hold(sub, pg->keys[i]->v.s, pg->keys[i]->len);
	if (pg->n > 0)
		tg_qsubs_set_boundary(sub, pg->keys[pg->n - 1]->v.s, pg->keys[pg->n - 1]->len, pg->sorts[pg->n - 1]);
	else
		tg_qsubs_set_boundary(sub, NULL, 0, NULL);
}

/* The first page: QUERY_RESP, then the subscription is live. */
static void
apply_first(TgQuerySub *sub, const TgQPage *pg)
{
	TgConn	   *c = sub->conn;
	int64		limit = tg_query_limit(sub->q);
	bool		has_more;
	char		next_cursor[16384];
	MpBuf	   *b;
	TgStr		map;
	size_t		map_len;
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
							 pg->sorts[pg->n - 1], tg_now_ms(), next_cursor, sizeof(next_cursor));

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
		tg_qkey_enter(sub, pg->keys[i]->v.s, pg->keys[i]->len);
	sub->loading = false;
	if (!sub->cursor_valid)
	{
		/* re-reads start from a cursor only if it was valid */
		free(sub->cursor);
		sub->cursor = NULL;
	}
	if (pg->n > 0)
		tg_qsubs_set_boundary(sub, pg->keys[pg->n - 1]->v.s, pg->keys[pg->n - 1]->len, pg->sorts[pg->n - 1]);
	map.p = tg_qsubs_map_name(sub->ms, &map_len);
	map.len = (uint32) map_len;
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
			p->next = tg_qpending;
			tg_qpending = p;
		}
	}
}

/* The row after the page's last one (if any) joins the page and becomes its last. */
static void
apply_refill(TgQuerySub *sub, const TgQPage *pg)
{
	for (int i = 0; i < pg->n; i++)
	{
		const char *k = pg->keys[i]->v.s;
		size_t		kl = pg->keys[i]->len;

		if (!tg_ks_has(&sub->keys, k, kl))
		{
			tg_qkey_enter(sub, k, kl);
			tg_qsend_update(sub, k, kl, pg->values[i], NULL, false);
		}
		tg_qsubs_set_boundary(sub, k, kl, pg->sorts[i]);
	}
	/* none: the old last row still separates the page from every other match */
}

static void
fetch_done(TgConn *c, void *arg, const char *msg, Size len, const TgRecError *err)
{
	TgQuerySub *sub = arg;
	Pending    *p = sub->running;
	MpArena		arena;
	TgQPage		pg;

	bool		refill = sub->refilling;

	sub->inflight = false;
	sub->running = NULL;
	sub->refilling = false;
	if (c == NULL)
		goto out;
	mp_arena_init(&arena);
	if (msg == NULL || !tg_query_page_decode(&arena, msg, len, &pg))
	{
		if (refill)
		{
			/* the page is one short: read it whole next time anything touches it */
			tg_qsubs_set_boundary(sub, NULL, 0, NULL);
			ereport(LOG, (errmsg("topgun: could not refill query %s: %s", sub->query_id,
								 err ? err->message : "malformed reply")));
		}
		else if (sub->loading)
		{
			tg_send_error(c, err ? err->code : 500, err ? err->message : "Malformed reply from a reader");
			conn_drop_sub(c, sub->query_id, strlen(sub->query_id));
		}
		else
			ereport(LOG, (errmsg("topgun: could not refresh query %s: %s", sub->query_id,
								 err ? err->message : "malformed reply")));
	}
	else if (refill)
		apply_refill(sub, &pg);
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
	Pending   **pp = &tg_qpending;
	char		cur[16384];

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
		if (p->refill && tg_qsubs_boundary_cursor(sub, cur, sizeof(cur)))
		{
			sub->refilling = true;
			submit_fetch(sub, false, INT64CONST(1) << 52, cur, 1);
		}
		else
			submit_fetch(sub, false, INT64CONST(1) << 52, NULL, -1);
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
	tg_qsubs_add(tg_qsubs_map(map.p, map.len, true), sub);
	tg_stat_add(TG_STAT_QUERY_SUBS, 1);
	tg_qsubs_account(sub, false);
	sub->next = c->queries;
	c->queries = sub;
	c->nqueries++;
	c->slot_dirty = true;
	submit_fetch(sub, true, CURSOR_TTL_MS, NULL, -1);
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

		size_t		mlen;
		const char *mname = tg_qsubs_map_name(s->ms, &mlen);

		if (!tg_acl_allowed(c, mname, mlen, TG_ACT_READ))
		{
			tg_send_error(c, 403, psprintf("Access denied for %.*s", (int) mlen, mname));
			conn_drop_sub(c, s->query_id, strlen(s->query_id));
		}
		s = n;
	}
}
