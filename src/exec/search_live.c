/*
 * search_live.c — live search (SEARCH_SUB / SEARCH_UPDATE / SEARCH_UNSUB,
 * PROTOCOL-ADDENDUM §A1.7, docs/search.md) in the session executor.
 *
 * A subscription keeps its members (key, score).  Its snapshot is the
 * SEARCH_RESP of a reader (read_msgs.c).  Every committed change of its map
 * (events.c calls tg_search_changed for client writes, SQL writes, entry
 * processors, TTL expiry, replication) queues the key; after the loop
 * iteration a reader re-scores the queued keys with the current statistics
 * (topgun.search_score_keys) and the session decides per key: ENTER, UPDATE
 * or LEAVE.  Unlike the reference, limit and minScore hold for live
 * results too (a full subscription admits a key only by pushing out its
 * lowest member), and a burst of more than 256 changed keys re-runs the
 * whole search and sends the difference.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "exec/exec.h"
#include "exec/readers.h"
#include "exec/search_live.h"

#define MAX_PENDING			256
#define MAX_REFRESH_KEYS	2000	/* pending + members re-scored by keys */
#define MAX_SUBS_PER_CONN	100
#define DEFAULT_LIMIT		1000	/* topgun.search_max_results' default */

typedef struct Member
{
	char	   *key;
	double		score;
} Member;

typedef struct SearchSub
{
	struct SearchSub *next;
	TgConn	   *conn;
	char	   *id;
	char	   *map;
	char	   *query;
	char	   *boost;			/* JSON text or NULL */
	int			limit;
	bool		has_min;
	double		min_score;
	Member	   *m;
	int			nm;
	int			cap;
	bool		loading;
	bool		inflight;
	bool		pend_all;
	int			npend;
	char	   *pend[MAX_PENDING];
} SearchSub;

static SearchSub *subs = NULL;
static int	plan_keys = -1;
static int	plan_all = -1;

/* ------------------------------------------------------------ members */

static int
member_find(SearchSub *s, const char *key, size_t len)
{
	for (int i = 0; i < s->nm; i++)
		if (strlen(s->m[i].key) == len && memcmp(s->m[i].key, key, len) == 0)
			return i;
	return -1;
}

static void
member_del(SearchSub *s, int i)
{
	free(s->m[i].key);
	s->m[i] = s->m[--s->nm];
}

static bool
member_add(SearchSub *s, const char *key, size_t len, double score)
{
	if (s->nm == s->cap)
	{
		int			ncap = Max(16, s->cap * 2);
		Member	   *n = realloc(s->m, sizeof(Member) * ncap);

		if (n == NULL)
			return false;
		s->m = n;
		s->cap = ncap;
	}
	if ((s->m[s->nm].key = strndup(key, len)) == NULL)
		return false;
	s->m[s->nm++].score = score;
	return true;
}

static void
sub_free(SearchSub *s)
{
	if (s->inflight)
		tg_readers_forget(s);
	for (int i = 0; i < s->nm; i++)
		free(s->m[i].key);
	for (int i = 0; i < s->npend; i++)
		free(s->pend[i]);
	free(s->m);
	free(s->id);
	free(s->map);
	free(s->query);
	free(s->boost);
	free(s);
}

static void
drop(TgConn *c, const char *id, size_t len)
{
	SearchSub **pp = &subs;

	while (*pp)
	{
		SearchSub  *s = *pp;

		if (s->conn == c && (id == NULL || (strlen(s->id) == len && memcmp(s->id, id, len) == 0)))
		{
			*pp = s->next;
			if (c->nsearches > 0)
				c->nsearches--;
			sub_free(s);
			continue;
		}
		pp = &s->next;
	}
}

/* ------------------------------------------------------------ updates */

static void
send_update(SearchSub *s, const char *key, size_t len, const MpNode *value, double score,
			const MpNode *terms, const char *type)
{
	MpBuf	   *b = tg_buf_begin();

	mp_put_map_header(b, 2);
	mp_put_str(b, "type");
	mp_put_str(b, "SEARCH_UPDATE");
	mp_put_str(b, "payload");
	mp_put_map_header(b, 6);
	mp_put_str(b, "subscriptionId");
	mp_put_str(b, s->id);
	mp_put_str(b, "key");
	mp_put_strn(b, key, len);
	mp_put_str(b, "value");
	if (value)
		mp_put_node(b, value);
	else
		mp_put_nil(b);
	mp_put_str(b, "score");
	mp_put_float64(b, score);
	mp_put_str(b, "matchedTerms");
	if (terms)
		mp_put_node(b, terms);
	else
		mp_put_array_header(b, 0);
	mp_put_str(b, "type");
	mp_put_str(b, type);
	tg_buf_send(s->conn, b);
}

/* rows of a reader's reply: [[key, value, score, matchedTerms], ...] */
static const MpNode *
reply_rows(MpArena *arena, const char *msg, Size len)
{
	TgRecIter	it;
	TgRec		rec;
	const char *p;

	tg_rec_iter_init(&it, msg, len);
	while (tg_rec_next(&it, &rec, &p))
		if (rec.kind == TG_REP_ROWS)
		{
			MpLimits	lim = {64, (uint32) rec.len + 1, (uint32) Max(rec.len, 1)};
			char		err[128];
			const MpNode *root = mp_decode(arena, (const uint8_t *) p, rec.len, &lim, err, sizeof(err));

			return root ? mp_map_get(root, "rows") : NULL;
		}
	return NULL;
}

static int
lowest(SearchSub *s)
{
	int			lo = -1;

	for (int i = 0; i < s->nm; i++)
		if (lo < 0 || s->m[i].score < s->m[lo].score)
			lo = i;
	return lo;
}

/*
 * A key's new score (in = it matches, above minScore): ENTER / UPDATE /
 * LEAVE.  changed: the key itself was written (every write of a member is
 * an UPDATE, as the reference); a member only re-scored because the
 * statistics moved keeps its new score silently unless it enters or leaves.
 */
static void
apply_key(SearchSub *s, const char *key, size_t len, bool in, const MpNode *value, double score,
		  const MpNode *terms, bool changed)
{
	int			i = member_find(s, key, len);

	if (in && i >= 0)
	{
		if (changed)
			send_update(s, key, len, value, score, terms, "UPDATE");
		s->m[i].score = score;
	}
	else if (in)
	{
		if (s->nm >= s->limit)
		{
			int			lo = lowest(s);

			if (lo < 0 || s->m[lo].score >= score)
				return;			/* not among the best `limit` */
			send_update(s, s->m[lo].key, strlen(s->m[lo].key), NULL, 0, NULL, "LEAVE");
			member_del(s, lo);
		}
		if (member_add(s, key, len, score))
			send_update(s, key, len, value, score, terms, "ENTER");
	}
	else if (i >= 0)
	{
		send_update(s, key, len, value, 0, NULL, "LEAVE");
		member_del(s, i);
	}
}

static bool
is_pending(SearchSub *s, const char *key, size_t len)
{
	for (int j = 0; j < s->npend; j++)
		if (strlen(s->pend[j]) == len && memcmp(s->pend[j], key, len) == 0)
			return true;
	return false;
}

static bool
score_moved(SearchSub *s, const char *key, size_t len, double score)
{
	int			i = member_find(s, key, len);

	return i < 0 || fabs(s->m[i].score - score) > 0.0001;
}

static bool
row_in(SearchSub *s, const MpNode *row, double *score)
{
	*score = mp_number_as_double(&row->v.items[2]);
	return *score > 0 && (!s->has_min || *score >= s->min_score);
}

static void
rescored(TgConn *c, void *arg, const char *msg, Size len, const TgRecError *err)
{
	SearchSub  *s = arg;
	MpArena		arena;
	const MpNode *rows;
	bool		all = s->pend_all;

	s->inflight = false;
	if (c == NULL)
		return;
	mp_arena_init(&arena);
	rows = msg ? reply_rows(&arena, msg, len) : NULL;
	if (rows == NULL || rows->type != MP_ARRAY)
	{
		ereport(LOG, (errmsg("topgun: could not refresh search subscription %s: %s", s->id,
							 err ? err->message : "malformed reply")));
		mp_arena_free(&arena);
		return;
	}
	if (all)
	{
		/* the whole result again: members not in it leave */
		for (int i = s->nm - 1; i >= 0; i--)
		{
			bool		found = false;

			for (uint32 r = 0; r < rows->len && !found; r++)
				found = rows->v.items[r].v.items[0].len == strlen(s->m[i].key) &&
					memcmp(rows->v.items[r].v.items[0].v.s, s->m[i].key, strlen(s->m[i].key)) == 0;
			if (!found)
			{
				send_update(s, s->m[i].key, strlen(s->m[i].key), NULL, 0, NULL, "LEAVE");
				member_del(s, i);
			}
		}
	}
	/*
	 * Members first (their scores moved with the statistics), then newcomers.
	 * In a full re-run every key counts as changed only if its score moved.
	 */
	for (int pass = 0; pass < 2; pass++)
		for (uint32 r = 0; r < rows->len; r++)
		{
			const MpNode *row = &rows->v.items[r];
			const MpNode *key = &row->v.items[0];
			double		score;
			bool		in = row_in(s, row, &score);

			if ((member_find(s, key->v.s, key->len) >= 0) != (pass == 0))
				continue;
			apply_key(s, key->v.s, key->len, in, &row->v.items[1], score, &row->v.items[3],
					  all ? score_moved(s, key->v.s, key->len, score) : is_pending(s, key->v.s, key->len));
		}
	if (!all)
	{
		/* queued keys without a row do not match any more */
		for (int j = 0; j < s->npend; j++)
		{
			bool		found = false;

			for (uint32 r = 0; r < rows->len && !found; r++)
				found = rows->v.items[r].v.items[0].len == strlen(s->pend[j]) &&
					memcmp(rows->v.items[r].v.items[0].v.s, s->pend[j], strlen(s->pend[j])) == 0;
			if (!found)
				apply_key(s, s->pend[j], strlen(s->pend[j]), false, NULL, 0, NULL, false);
		}
	}
	for (int j = 0; j < s->npend; j++)
		free(s->pend[j]);
	s->npend = 0;
	s->pend_all = false;
	mp_arena_free(&arena);
}

/* ------------------------------------------------------------ the session's side */

/* Does a live search subscribe to `map`? */
bool
tg_search_map_has_subs(const char *map, size_t maplen)
{
	for (SearchSub *s = subs; s; s = s->next)
		if (strlen(s->map) == maplen && memcmp(s->map, map, maplen) == 0)
			return true;
	return false;
}

void
tg_search_changed(const char *map, size_t maplen, const char *key, size_t keylen)
{
	for (SearchSub *s = subs; s; s = s->next)
	{
		bool		dup = false;

		if (strlen(s->map) != maplen || memcmp(s->map, map, maplen) != 0 || s->pend_all)
			continue;
		for (int j = 0; j < s->npend && !dup; j++)
			dup = strlen(s->pend[j]) == keylen && memcmp(s->pend[j], key, keylen) == 0;
		if (dup)
			continue;
		if (s->npend == MAX_PENDING || (s->pend[s->npend] = strndup(key, keylen)) == NULL)
		{
			s->pend_all = true;
			continue;
		}
		s->npend++;
	}
}

/* After each loop iteration: a reader re-scores what changed. */
void
tg_search_run_pending(void)
{
	for (SearchSub *s = subs; s; s = s->next)
	{
		MpBuf		b;

		if (s->loading || s->inflight || (s->npend == 0 && !s->pend_all) || s->conn->closed)
			continue;
		mp_buf_init(&b, (size_t) 1 << 30);
		mp_put_map_header(&b, 6);
		mp_put_str(&b, "m");
		mp_put_str(&b, s->map);
		mp_put_str(&b, "q");
		mp_put_str(&b, s->query);
		mp_put_str(&b, "b");
		if (s->boost)
			mp_put_str(&b, s->boost);
		else
			mp_put_nil(&b);
		mp_put_str(&b, "l");
		mp_put_int(&b, s->limit);
		mp_put_str(&b, "n");
		if (s->has_min)
			mp_put_float64(&b, s->min_score);
		else
			mp_put_nil(&b);
		/*
		 * A full subscription compares a newcomer with its lowest member:
		 * re-score the members too (their scores moved with the statistics),
		 * or the whole search when that is too many keys.
		 */
		if (s->nm >= s->limit && s->npend + s->nm > MAX_REFRESH_KEYS)
			s->pend_all = true;
		mp_put_str(&b, "k");
		if (s->pend_all)
			mp_put_nil(&b);
		else
		{
			int			extra = 0;

			if (s->nm >= s->limit)
				for (int i = 0; i < s->nm; i++)
					if (!is_pending(s, s->m[i].key, strlen(s->m[i].key)))
						extra++;
			mp_put_array_header(&b, s->npend + extra);
			for (int j = 0; j < s->npend; j++)
				mp_put_str(&b, s->pend[j]);
			if (extra > 0)
				for (int i = 0; i < s->nm; i++)
					if (!is_pending(s, s->m[i].key, strlen(s->m[i].key)))
						mp_put_str(&b, s->m[i].key);
		}
		if (mp_buf_ok(&b))
		{
			s->inflight = true;
			tg_readers_submit(s->conn, false, TG_REQ_SEARCH_KEYS, b.data, b.len, rescored, s);
		}
		mp_buf_free(&b);
	}
}

/* The snapshot came back: forward it, and its results are the members. */
static void
snapshot_done(TgConn *c, void *arg, const char *msg, Size len, const TgRecError *err)
{
	SearchSub  *s = arg;
	TgRecIter	it;
	TgRec		rec;
	const char *p;

	s->inflight = false;
	if (c == NULL)
		return;
	if (msg == NULL)
	{
		tg_send_typed_failure(c, TG_MSG_SEARCH_SUB, s->id, strlen(s->id), err->message);
		drop(c, s->id, strlen(s->id));
		return;
	}
	tg_rec_iter_init(&it, msg, len);
	while (tg_rec_next(&it, &rec, &p))
	{
		MpArena		arena;
		MpLimits	lim = {64, (uint32) rec.len + 1, (uint32) Max(rec.len, 1)};
		char		e[128];
		const MpNode *root,
				   *payload,
				   *results,
				   *error;

		if (rec.kind != TG_REP_FRAME)
			continue;
		tg_conn_send(c, (const unsigned char *) p, rec.len);
		mp_arena_init(&arena);
		root = mp_decode(&arena, (const uint8_t *) p, rec.len, &lim, e, sizeof(e));
		payload = root ? mp_map_get(root, "payload") : NULL;
		results = payload ? mp_map_get(payload, "results") : NULL;
		error = payload ? mp_map_get(payload, "error") : NULL;
		if (error && error->type == MP_STR)
		{
			mp_arena_free(&arena);
			drop(c, s->id, strlen(s->id));	/* not enabled, denied ...: nothing to keep live */
			return;
		}
		for (uint32 i = 0; results && results->type == MP_ARRAY && i < results->len; i++)
		{
			const MpNode *k = mp_map_get(&results->v.items[i], "key");
			const MpNode *sc = mp_map_get(&results->v.items[i], "score");

			if (k && k->type == MP_STR && sc)
				member_add(s, k->v.s, k->len, mp_number_as_double(sc));
		}
		mp_arena_free(&arena);
	}
	s->loading = false;
}

static char *
json_text(const MpNode *n)
{
	MpBuf		b;
	char		err[64];
	char	   *out = NULL;

	if (n == NULL)
		return NULL;
	mp_buf_init(&b, (size_t) 1 << 20);
	if (mp_value_to_json(n, &b, err, sizeof(err)))
		out = strndup((const char *) b.data, b.len);
	mp_buf_free(&b);
	return out;
}

/* SEARCH_SUB (READ checked here): the snapshot from a reader, then live. */
bool
tg_search_sub(TgConn *c, TgInMsg *in, TgMessage *m)
{
	TgStr		id = m->u.search.id;
	TgSearchOptions *o = &m->u.search.options;
	SearchSub  *s;

	if (!tg_acl_allowed(c, m->u.search.map_name.p, m->u.search.map_name.len, TG_ACT_READ))
	{
		c->denied++;
		tg_stat_add(TG_STAT_ACCESS_DENIED, 1);
		tg_send_typed_failure(c, m->type, id.p, id.len,
							  psprintf("Access denied for map: %.*s", (int) m->u.search.map_name.len,
									   m->u.search.map_name.p));
		return false;
	}
	drop(c, id.p, id.len);		/* a second SEARCH_SUB with the same id replaces the first */
	if (c->nsearches >= MAX_SUBS_PER_CONN)
	{
		c->limit_hits++;
		tg_stat_add(TG_STAT_LIMIT_REACHED, 1);
		tg_send_typed_failure(c, m->type, id.p, id.len, "Search subscription limit reached");
		return false;
	}
	s = calloc(1, sizeof(SearchSub));
	if (s == NULL)
	{
		tg_send_typed_failure(c, m->type, id.p, id.len, "Server out of memory");
		return false;
	}
	s->conn = c;
	s->id = strndup(id.p, id.len);
	s->map = strndup(m->u.search.map_name.p, m->u.search.map_name.len);
	s->query = strndup(m->u.search.query.p, m->u.search.query.len);
	s->boost = json_text(o->boost);
	s->limit = (o->has_limit && o->limit >= 1) ? (int) Min(o->limit, (double) DEFAULT_LIMIT) : DEFAULT_LIMIT;
	s->has_min = o->has_min_score;
	s->min_score = o->min_score;
	s->loading = true;
	s->inflight = true;
	s->next = subs;
	subs = s;
	c->nsearches++;
	c->slot_dirty = true;
	tg_readers_submit(c, true, TG_REQ_MESSAGE, in->data, in->len, snapshot_done, s);
	return true;
}

void
tg_search_unsub(TgConn *c, TgMessage *m)
{
	drop(c, m->u.search_unsub.subscription_id.p, m->u.search_unsub.subscription_id.len);
	c->slot_dirty = true;
}

void
tg_search_conn_gone(TgConn *c)
{
	drop(c, NULL, 0);
}

/*
 * Reader side of TG_REQ_SEARCH_KEYS {m, q, b, l, n, k}: the current scores
 * of the keys k (or, k nil, the whole result with limit l and minScore n)
 * as TG_REP_ROWS {rows: [[key, value, score, matchedTerms], ...]}.
 */
void
tg_read_search_keys(TgConn *c, const char *payload, size_t len)
{
	MpArena		arena;
	MpLimits	lim = {16, (uint32) len + 1, (uint32) Max(len, 1)};
	char		err[128];
	const MpNode *req,
			   *k,
			   *bn,
			   *nn;
	Datum		args[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
	MpBuf		b;
	int			rc;

	mp_arena_init(&arena);
	req = mp_decode(&arena, (const uint8_t *) payload, len, &lim, err, sizeof(err));
	if (req == NULL)
		elog(ERROR, "topgun: malformed search refresh request");
	k = mp_map_get(req, "k");
	bn = mp_map_get(req, "b");
	nn = mp_map_get(req, "n");
	args[0] = PointerGetDatum(cstring_to_text_with_len(mp_map_get(req, "m")->v.s, mp_map_get(req, "m")->len));
	args[1] = PointerGetDatum(cstring_to_text_with_len(mp_map_get(req, "q")->v.s, mp_map_get(req, "q")->len));
	if (bn && bn->type == MP_STR)
		args[2] = PointerGetDatum(cstring_to_text_with_len(bn->v.s, bn->len));
	else
		nulls[2] = 'n';
	if (k && k->type == MP_ARRAY)
	{
		Datum	   *keys = palloc(sizeof(Datum) * Max(1, k->len));
		Datum		a3[4];
		char		n3[4] = {' ', ' ', ' ', nulls[2]};
		Oid			t4[4] = {TEXTOID, TEXTOID, TEXTARRAYOID, TEXTOID};

		for (uint32 i = 0; i < k->len; i++)
			keys[i] = PointerGetDatum(cstring_to_text_with_len(k->v.items[i].v.s, k->v.items[i].len));
		a3[0] = args[0];
		a3[1] = args[1];
		a3[2] = PointerGetDatum(construct_array(keys, (int) k->len, TEXTOID, -1, false, TYPALIGN_INT));
		a3[3] = args[2];
		rc = SPI_execute_plan(tg_live_plan(&plan_keys,
										   "SELECT key, value, score, matched_terms FROM topgun.search_score_keys($1, $2, $3, $4::jsonb)",
										   4, t4), a3, n3, true, 0);
	}
	else
	{
		Oid			t5[5] = {TEXTOID, TEXTOID, TEXTOID, INT4OID, FLOAT8OID};

		args[3] = Int32GetDatum((int32) mp_number_as_double(mp_map_get(req, "l")));
		if (nn && nn->type != MP_NIL)
			args[4] = Float8GetDatum(mp_number_as_double(nn));
		else
			nulls[4] = 'n';
		rc = SPI_execute_plan(tg_live_plan(&plan_all,
										   "SELECT key, value, score, matched_terms FROM topgun.search($1, $2, $4, $5, $3::jsonb)",
										   5, t5), args, nulls, true, 0);
	}
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "topgun: search refresh failed");
	mp_buf_init(&b, (size_t) 1 << 30);
	mp_put_map_header(&b, 1);
	mp_put_str(&b, "rows");
	mp_put_array_header(&b, (uint32) SPI_processed);
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		HeapTuple	t = SPI_tuptable->vals[r];
		bool		isnull;
		char	   *key = SPI_getvalue(t, SPI_tuptable->tupdesc, 1);
		Datum		v = SPI_getbinval(t, SPI_tuptable->tupdesc, 2, &isnull);
		bool		tnull;
		Datum		terms;

		mp_put_array_header(&b, 4);
		mp_put_str(&b, key ? key : "");
		if (isnull)
			mp_put_nil(&b);
		else
			tg_put_jsonb(&b, DatumGetJsonbP(v));
		mp_put_float64(&b, DatumGetFloat8(SPI_getbinval(t, SPI_tuptable->tupdesc, 3, &isnull)));
		terms = SPI_getbinval(t, SPI_tuptable->tupdesc, 4, &tnull);
		if (tnull)
			mp_put_array_header(&b, 0);
		else
		{
			ArrayType  *a = DatumGetArrayTypeP(terms);
			Datum	   *el;
			bool	   *en;
			int			ne;

			deconstruct_array(a, TEXTOID, -1, false, TYPALIGN_INT, &el, &en, &ne);
			mp_put_array_header(&b, ne);
			for (int i = 0; i < ne; i++)
				mp_put_str(&b, en[i] ? "" : TextDatumGetCString(el[i]));
		}
	}
	if (!mp_buf_ok(&b))
		ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED), errmsg("search refresh too large")));
	tg_ipc_put(tg_exec_out, TG_REP_ROWS, c->id, b.data, b.len);
	mp_buf_free(&b);
	mp_arena_free(&arena);
}
