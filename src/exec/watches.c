/*
 * watches.c — the maps a connection watches (it receives their events):
 * one per SYNC_INIT / ORMAP_SYNC_INIT map, one per live query.  Owned here;
 * query subscriptions add and drop theirs through tg_watch_*.
 */
#include "postgres.h"

#include "exec/exec.h"

bool
tg_watches_map(TgConn *c, const char *map, size_t len)
{
	for (TgWatch *w = c->watches; w; w = w->next)
		if (strlen(w->map) == len && memcmp(w->map, map, len) == 0)
			return true;
	return false;
}

void
tg_watch_add(TgConn *c, TgStr map, TgStr *query_id)
{
	TgWatch    *w;

	if (query_id == NULL && tg_watches_map(c, map.p, map.len))
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

void
tg_watch_drop_query(TgConn *c, TgStr query_id)
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

void
tg_watch_drop_query_id(TgConn *c, const char *query_id)
{
	TgStr		q;

	q.p = query_id;
	q.len = (uint32) strlen(query_id);
	tg_watch_drop_query(c, q);
}

/* Policies changed: forget the map watches (SYNC_INIT) of c that lost READ. */
void
tg_watches_recheck_conn(TgConn *c)
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

/* Called by queries.c once the subscription is live. */
void
tg_watch_add_query(TgConn *c, TgStr map, TgStr query_id)
{
	tg_watch_add(c, map, &query_id);
}
