/*
 * watches.c — the maps a connection watches (it receives their events):
 * one per SYNC_INIT / ORMAP_SYNC_INIT map, one per live query.  Owned here;
 * query subscriptions add and drop theirs through tg_watch_*.
 *
 * Every watch is also counted per map name (watch_counts), so the change
 * feed can ask "does any connection watch this map?" in O(1) and skip the
 * re-read of records nobody will receive (feed.c: SQL writes and entry
 * processors to maps no client watches cost no session work).
 */
#include "postgres.h"

#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "exec/exec.h"

typedef struct WatchCount
{
	char		map[TG_MAX_MAP_BYTES + 1];	/* dynahash key (NUL-terminated) */
	int			n;				/* watches of every connection on the map */
} WatchCount;

static HTAB *watch_counts = NULL;

static WatchCount *
count_entry(const char *map, size_t len, HASHACTION action, bool *found)
{
	char		key[TG_MAX_MAP_BYTES + 1];

	if (watch_counts == NULL)
	{
		HASHCTL		ctl;

		if (action != HASH_ENTER_NULL)
			return NULL;
		ctl.keysize = sizeof(key);
		ctl.entrysize = sizeof(WatchCount);
		ctl.hcxt = TopMemoryContext;
		watch_counts = hash_create("topgun map watches", 256, &ctl, HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	}
	/* map names are validated to fit (TG_MAX_MAP_BYTES) before any watch */
	len = Min(len, TG_MAX_MAP_BYTES);
	memset(key, 0, sizeof(key));
	memcpy(key, map, len);
	return hash_search(watch_counts, key, action, found);
}

/*
 * A watch of `map` is added (+1) or freed (-1).  False: out of memory for a
 * new entry (nothing counted; the caller does not add the watch).
 */
static bool
count_watch(const char *map, int delta)
{
	bool		found;
	WatchCount *wc = count_entry(map, strlen(map), delta > 0 ? HASH_ENTER_NULL : HASH_FIND, &found);

	TG_ASSERT(delta > 0 || (wc != NULL && wc->n > 0));
	if (wc == NULL)
		return false;
	if (delta > 0 && !found)
		wc->n = 0;
	wc->n += delta;
	if (wc->n <= 0)
		(void) count_entry(map, strlen(map), HASH_REMOVE, NULL);
	return true;
}

/* Does any connection watch `map` (SYNC_INIT or a live query)? */
bool
tg_map_watched(const char *map, size_t len)
{
	WatchCount *wc = count_entry(map, len, HASH_FIND, NULL);

	return wc != NULL && wc->n > 0;
}

static void
watch_free(TgWatch *w)
{
	count_watch(w->map, -1);
	free(w->query_id);
	free(w);
}

/* The connection is gone: free its watches. */
void
tg_watches_free_conn(TgConn *c)
{
	while (c->watches)
	{
		TgWatch    *w = c->watches->next;

		watch_free(c->watches);
		c->watches = w;
	}
	c->nwatches = 0;
}

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
	if (!count_watch(w->map, +1))
	{
		free(w->query_id);
		free(w);
		return;
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
			watch_free(w);
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
			watch_free(w);
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
