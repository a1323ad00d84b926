/*
 * worker_query.c — live query subscriptions (QUERY_SUB / QUERY_UNSUB,
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

#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "worker/worker_live.h"

#define CURSOR_TTL_MS	(10 * 60 * 1000)
#define MAX_CHANGED		64

/* ------------------------------------------------------------ key sets */

static char keyset_dead;

#define KS_DEAD (&keyset_dead)

static uint32
ks_hash(const char *k, size_t len)
{
	return hash_bytes((const unsigned char *) k, (int) len);
}

/* Stored keys carry their length in the first 4 bytes. */
static size_t
ks_len(const char *e)
{
	uint32		l;

	memcpy(&l, e, 4);
	return l;
}

static int
ks_find(const TgKeySet *ks, const char *k, size_t len)
{
	uint32		i;

	if (ks->cap == 0)
		return -1;
	i = ks_hash(k, len) & (ks->cap - 1);
	for (;;)
	{
		char	   *e = ks->slots[i];

		if (e == NULL)
			return -1;
		if (e != KS_DEAD && ks_len(e) == len && memcmp(e + 4, k, len) == 0)
			return (int) i;
		i = (i + 1) & (ks->cap - 1);
	}
}

static bool
ks_has(const TgKeySet *ks, const char *k, size_t len)
{
	return ks_find(ks, k, len) >= 0;
}

static bool ks_add(TgKeySet *ks, const char *k, size_t len);

static bool
ks_grow(TgKeySet *ks)
{
	TgKeySet	n;

	n.cap = ks->cap ? ks->cap * 2 : 16;
	while (n.cap < 2 * (ks->n + 1))
		n.cap *= 2;
	n.slots = calloc(n.cap, sizeof(char *));
	n.n = n.used = 0;
	if (n.slots == NULL)
		return false;
	for (uint32 i = 0; i < ks->cap; i++)
	{
		char	   *e = ks->slots[i];
		uint32		j;

		if (e == NULL || e == KS_DEAD)
			continue;
		j = ks_hash(e + 4, ks_len(e)) & (n.cap - 1);
		while (n.slots[j] != NULL)
			j = (j + 1) & (n.cap - 1);
		n.slots[j] = e;
		n.n++;
		n.used++;
	}
	free(ks->slots);
	*ks = n;
	return true;
}

static bool
ks_add(TgKeySet *ks, const char *k, size_t len)
{
	uint32		i;
	char	   *e;
	uint32		l = (uint32) len;

	if (ks_has(ks, k, len))
		return true;
	if ((ks->used + 1) * 4 >= ks->cap * 3 && !ks_grow(ks))
		return false;
	e = malloc(len + 4);
	if (e == NULL)
		return false;
	memcpy(e, &l, 4);
	memcpy(e + 4, k, len);
	i = ks_hash(k, len) & (ks->cap - 1);
	while (ks->slots[i] != NULL && ks->slots[i] != KS_DEAD)
		i = (i + 1) & (ks->cap - 1);
	if (ks->slots[i] == NULL)
		ks->used++;
	ks->slots[i] = e;
	ks->n++;
	return true;
}

static void
ks_del(TgKeySet *ks, const char *k, size_t len)
{
	int			i = ks_find(ks, k, len);

	if (i < 0)
		return;
	free(ks->slots[i]);
	ks->slots[i] = KS_DEAD;
	ks->n--;
}

static void
ks_free(TgKeySet *ks)
{
	for (uint32 i = 0; i < ks->cap; i++)
		if (ks->slots[i] != NULL && ks->slots[i] != KS_DEAD)
			free(ks->slots[i]);
	free(ks->slots);
	memset(ks, 0, sizeof(*ks));
}

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
	ks_free(&sub->keys);
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
	tg_proto_drop_query_watch(c, sub->query_id);
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

typedef struct Row
{
	char	   *key;
	size_t		keylen;
	Jsonb	   *jb;
	MpNode	   *node;
} Row;

static const TgQuery *sort_query;

static int
row_cmp(const void *a, const void *b)
{
	const Row  *x = a;
	const Row  *y = b;

	return tg_query_compare(sort_query, x->key, x->keylen, x->node, y->key, y->keylen, y->node);
}

static int	plan_lww_entries = -1;
static int	plan_or_entries = -1;
static int	plan_kind = -1;

/*
 * Every current record of the map that matches, sorted, after the cursor
 * (if valid).  Returns the rows (palloc'd in the caller's context) and their
 * number; *total is the number before the limit.  Needs SPI.
 */
static Row *
fetch_page(const TgQuery *q, const char *map, TgCursor *cur, MpArena *arena, int *nrows,
		   int64 *total)
{
	Oid			t = TEXTOID;
	Datum		arg = CStringGetTextDatum(map);
	bool		isnull;
	Datum		d;
	bool		is_or = false;
	int			n,
				m = 0;
	Row		   *rows;
	MemoryContext cxt = CurrentMemoryContext;

	n = SPI_execute_plan(tg_live_plan(&plan_kind, "SELECT topgun.map_kind($1)", 1, &t),
						 &arg, NULL, true, 1);
	if (n == SPI_OK_SELECT && SPI_processed == 1)
	{
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		is_or = !isnull && strcmp(TextDatumGetCString(d), "or") == 0;
	}
	if (is_or)
		n = SPI_execute_plan(tg_live_plan(&plan_or_entries,
										  "SELECT key, pg_catalog.jsonb_agg(value ORDER BY tag) "
										  "FROM topgun.or_entries WHERE map = $1 GROUP BY key",
										  1, &t), &arg, NULL, true, 0);
	else
		n = SPI_execute_plan(tg_live_plan(&plan_lww_entries,
										  "SELECT key, value FROM topgun.lww_entries WHERE map = $1",
										  1, &t), &arg, NULL, true, 0);
	if (n != SPI_OK_SELECT)
		elog(ERROR, "topgun: could not read map \"%s\"", map);
	rows = MemoryContextAlloc(cxt, sizeof(Row) * Max(1, SPI_processed));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		Jsonb	   *jb;
		MpNode	   *node;
		text	   *k;

		d = SPI_getbinval(tup, SPI_tuptable->tupdesc, 2, &isnull);
		if (isnull)
			continue;
		jb = DatumGetJsonbPCopy(d);
		node = tg_jsonb_to_node(arena, jb);
		if (node == NULL || !tg_query_match(q, node))
			continue;
		k = DatumGetTextPCopy(SPI_getbinval(tup, SPI_tuptable->tupdesc, 1, &isnull));
		rows[m].key = VARDATA_ANY(k);
		rows[m].keylen = VARSIZE_ANY_EXHDR(k);
		rows[m].jb = jb;
		rows[m].node = node;
		if (cur && cur->valid && !tg_query_after(q, cur, rows[m].key, rows[m].keylen, node))
			continue;
		m++;
	}
	sort_query = q;
	qsort(rows, m, sizeof(Row), row_cmp);
	*total = m;
	if (tg_query_limit(q) >= 0 && m > tg_query_limit(q))
		m = (int) tg_query_limit(q);
	*nrows = m;
	return rows;
}

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
		in = ks_has(&sub->keys, key, keylen);
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
			if (!in && !ks_add(&sub->keys, key, keylen))
				continue;
			send_update(sub, key, keylen, value, NULL, false);
		}
		else
		{
			ks_del(&sub->keys, key, keylen);
			send_update(sub, key, keylen, NULL, NULL, true);
		}
	}
}

/* Re-run limited/cursor subscriptions touched by changes (needs SPI). */
void
tg_query_run_pending(void)
{
	while (pending)
	{
		Pending    *p = pending;
		TgQuerySub *sub = p->sub;
		MpArena		arena;
		TgCursor	cur;
		int			n;
		int64		total;
		Row		   *rows;
		TgKeySet	fresh = {0};
		volatile bool have_cur = false;

		pending = p->next;
		if (sub->conn->closed || sub->conn->closing)
			goto next;
		tg_stat_add(TG_STAT_QUERY_RERUNS, 1);
		mp_arena_init(&arena);
		if (sub->cursor)
		{
			tg_query_cursor_check(sub->q, sub->cursor, strlen(sub->cursor), tg_now_ms(),
								  INT64CONST(1) << 52, &cur);
			have_cur = true;
		}
		PG_TRY();
		{
			rows = fetch_page(sub->q, sub->ms->key.name, have_cur ? &cur : NULL, &arena, &n, &total);
			for (int i = 0; i < n; i++)
				ks_add(&fresh, rows[i].key, rows[i].keylen);
			/* leaving keys */
			for (uint32 i = 0; i < sub->keys.cap; i++)
			{
				char	   *e = sub->keys.slots[i];

				if (e == NULL || e == KS_DEAD)
					continue;
				if (!ks_has(&fresh, e + 4, ks_len(e)))
					send_update(sub, e + 4, ks_len(e), NULL, NULL, true);
			}
			/* entering keys, and changed keys still in the page */
			for (int i = 0; i < n; i++)
			{
				bool		changed = !ks_has(&sub->keys, rows[i].key, rows[i].keylen) ||
					p->nchanged < 0;

				for (int j = 0; !changed && j < p->nchanged; j++)
					if (p->changed_len[j] == rows[i].keylen &&
						memcmp(p->changed[j], rows[i].key, rows[i].keylen) == 0)
						changed = true;
				if (changed)
					send_update(sub, rows[i].key, rows[i].keylen, NULL, rows[i].jb, false);
			}
			ks_free(&sub->keys);
			sub->keys = fresh;
		}
		PG_CATCH();
		{
			ks_free(&fresh);
			if (have_cur)
				tg_query_cursor_free(&cur);
			mp_arena_free(&arena);
			for (int i = 0; i < p->nchanged; i++)
				free(p->changed[i]);
			free(p);
			PG_RE_THROW();
		}
		PG_END_TRY();
		if (have_cur)
			tg_query_cursor_free(&cur);
		mp_arena_free(&arena);
next:
		for (int i = 0; i < p->nchanged; i++)
			free(p->changed[i]);
		free(p);
	}
}

/* QUERY_SUB (inside a transaction, SPI connected). */
void
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
	volatile bool have_cur = false;
	MpArena		arena;
	Row		   *rows;
	int			n;
	int64		total;
	TgQuerySub *sub;
	MpBuf	   *b;
	char	   *cmap;
	char		next_cursor[16384];
	bool		has_more;

	/* a re-sent queryId replaces the old subscription */
	conn_drop_sub(c, qid.p, qid.len);
	if (c->nqueries + c->ncounters >= tg_max_subscriptions_per_connection)
	{
		c->limit_hits++;
		c->slot_dirty = true;
		tg_stat_add(TG_STAT_LIMIT_REACHED, 1);
		tg_send_error(c, 400, "Subscription limit reached");
		return;
	}
	q = tg_query_compile(query, err, sizeof(err));
	if (q == NULL)
	{
		tg_send_error(c, 400, psprintf("Invalid query: %s", err));
		return;
	}
	if (cursor_node && cursor_node->type == MP_STR)
	{
		cursor_status = tg_query_cursor_check(q, cursor_node->v.s, cursor_node->len, tg_now_ms(),
											  CURSOR_TTL_MS, &cur);
		have_cur = true;
	}
	cmap = pnstrdup(map.p, map.len);
	mp_arena_init(&arena);
	PG_TRY();
	{
		rows = fetch_page(q, cmap, have_cur ? &cur : NULL, &arena, &n, &total);
	}
	PG_CATCH();
	{
		tg_query_free(q);
		if (have_cur)
			tg_query_cursor_free(&cur);
		mp_arena_free(&arena);
		PG_RE_THROW();
	}
	PG_END_TRY();
	if (n > tg_max_query_results)
	{
		c->limit_hits++;
		c->slot_dirty = true;
		tg_stat_add(TG_STAT_LIMIT_REACHED, 1);
		tg_send_error(c, 413, psprintf("Query result has %d records, more than topgun.max_query_results (%d); add a limit",
									   n, tg_max_query_results));
		tg_query_free(q);
		if (have_cur)
			tg_query_cursor_free(&cur);
		mp_arena_free(&arena);
		return;
	}
	has_more = tg_query_limit(q) >= 0 && total > tg_query_limit(q);
	next_cursor[0] = '\0';
	if (has_more && n > 0)
		tg_query_cursor_make(q, rows[n - 1].key, rows[n - 1].keylen, rows[n - 1].node,
							 tg_now_ms(), next_cursor, sizeof(next_cursor));

	b = tg_buf_begin();
	mp_put_map_header(b, 2);
	mp_put_str(b, "type");
	mp_put_str(b, "QUERY_RESP");
	mp_put_str(b, "payload");
	mp_put_map_header(b, 3 + (tg_query_limit(q) >= 0 ? 1 : 0) + (next_cursor[0] ? 1 : 0));
	mp_put_str(b, "queryId");
	put_str(b, qid.p, qid.len);
	mp_put_str(b, "results");
	mp_put_array_header(b, n);
	for (int i = 0; i < n; i++)
	{
		mp_put_map_header(b, 2);
		mp_put_str(b, "key");
		put_str(b, rows[i].key, rows[i].keylen);
		mp_put_str(b, "value");
		tg_put_jsonb(b, rows[i].jb);
	}
	if (tg_query_limit(q) >= 0)
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
	mp_put_str(b, cursor_status);
	tg_buf_send(c, b);

	/* register */
	sub = calloc(1, sizeof(TgQuerySub));
	if (sub == NULL || (sub->query_id = malloc(qid.len + 1)) == NULL)
	{
		free(sub);
		tg_query_free(q);
		if (have_cur)
			tg_query_cursor_free(&cur);
		mp_arena_free(&arena);
		tg_send_error(c, 500, "Server out of memory");
		return;
	}
	memcpy(sub->query_id, qid.p, qid.len);
	sub->query_id[qid.len] = '\0';
	sub->conn = c;
	sub->q = q;
	sub->rerun = tg_query_limit(q) >= 0 || (have_cur && cur.valid);
	if (have_cur && cur.valid)
		sub->cursor = strndup(cursor_node->v.s, cursor_node->len);
	for (int i = 0; i < n; i++)
		ks_add(&sub->keys, rows[i].key, rows[i].keylen);
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
	tg_proto_add_query_watch(c, map, qid);
	if (have_cur)
		tg_query_cursor_free(&cur);
	mp_arena_free(&arena);
}

/* Policies changed: drop subscriptions whose map is no longer readable. */
void
tg_query_recheck_acl(void)
{
	for (TgConn *c = tg_conns; c; c = c->next)
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
}
