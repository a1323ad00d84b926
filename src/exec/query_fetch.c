/*
 * query_fetch.c — a query page read by a reader executor (TG_REQ_FETCH):
 * every current record of the map that matches the compiled query (JS
 * semantics, src/query), sorted, after the cursor, up to the limit, with
 * the count before the limit.  The session executor turns it into a
 * QUERY_RESP or diffs it against a live query's keys (queries.c).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "exec/exec.h"
#include "exec/query_sql.h"
#include "ipc/ipc.h"

#define CURSOR_TTL_MS	(10 * 60 * 1000)
#define CHUNK			1000	/* rows per cursor fetch */

/* ------------------------------------------------------------ the best rows */

typedef struct Row
{
	char	   *key;
	size_t		keylen;
	Jsonb	   *jb;
	MpNode	   *node;
} Row;

/*
 * The matches seen so far, keeping the `bound` best under the query's order
 * (a max-heap on the worst once full): memory is bounded by the page, not
 * the map, whatever the read order.  Kept trees live in `keep`, which is
 * compacted when evicted rows make up most of it.
 */
typedef struct Collect
{
	const TgQuery *q;
	const TgCursor *cur;
	int64		bound;
	Row		   *rows;
	int			n;
	bool		heap;
	int64		total;			/* matches after the cursor */
	int64		examined;		/* rows offered: the candidates read */
	MpArena		keep;
	size_t		keep_base;		/* keep.allocated after the last compaction */
	MpArena		scratch;
	bool		or_map;			/* values are OR keys' arrays: matched by their pick */
	bool		elems;			/* OR map rows are single values (read in index order) */
	MpArena		scratch2;		/* an element row's key, read whole */
	text	   *map;			/* for reading an OR key whole */
	HTAB	   *ahead;			/* elems: the chunk's matching keys, read whole (prefetch) */
	MemoryContext ahead_cxt;	/* holds ahead; reset per chunk */
} Collect;

/* a key read whole ahead of its offer: hash of the key -> the key and its values */
typedef struct Ahead
{
	uint64		hash;
	text	   *key;
	Jsonb	   *values;			/* NULL: none left */
} Ahead;

/* OR keys already offered by this page read (malloc'd, reset per read) */
static TgKeySet seen;

static const TgQuery *sort_query;

static int
row_cmp(const void *a, const void *b)
{
	const Row  *x = a;
	const Row  *y = b;

	return tg_query_compare(sort_query, x->key, x->keylen, x->node, y->key, y->keylen, y->node);
}

static int
cmp(Collect *c, const Row *x, const Row *y)
{
	return tg_query_compare(c->q, x->key, x->keylen, x->node, y->key, y->keylen, y->node);
}

static void
sift_down(Collect *c, int i)
{
	for (;;)
	{
		int			l = 2 * i + 1,
					r = l + 1,
					m = i;
		Row			t;

		if (l < c->n && cmp(c, &c->rows[l], &c->rows[m]) > 0)
			m = l;
		if (r < c->n && cmp(c, &c->rows[r], &c->rows[m]) > 0)
			m = r;
		if (m == i)
			return;
		t = c->rows[i];
		c->rows[i] = c->rows[m];
		c->rows[m] = t;
		i = m;
	}
}

static void
collect_init(Collect *c, const TgQuery *q, const TgCursor *cur)
{
	int64		lim = tg_query_limit(q);

	memset(c, 0, sizeof(*c));
	c->q = q;
	c->cur = cur;
	/* one more than the page tells whether there is more; without a limit
	 * one more than topgun.max_query_results tells the session to refuse */
	c->bound = (lim >= 0 ? Min(lim, (int64) tg_max_query_results) : (int64) tg_max_query_results) + 1;
	c->rows = palloc(sizeof(Row) * Min(c->bound, 1024));
	mp_arena_init(&c->keep);
	mp_arena_init(&c->scratch);
	mp_arena_init(&c->scratch2);
	tg_ks_free(&seen);
}

static void
compact(Collect *c)
{
	MpArena		fresh;

	mp_arena_init(&fresh);
	for (int i = 0; i < c->n; i++)
	{
		c->rows[i].node = mp_node_copy(&fresh, c->rows[i].node);
		if (c->rows[i].node == NULL)
			ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	}
	mp_arena_free(&c->keep);
	c->keep = fresh;
	c->keep_base = fresh.allocated;
}

static void
keep_row(Collect *c, Row *dst, text *k, Jsonb *jb, const MpNode *node)
{
	dst->keylen = VARSIZE_ANY_EXHDR(k);
	dst->key = pnstrdup(VARDATA_ANY(k), dst->keylen);
	dst->jb = palloc(VARSIZE(jb));
	memcpy(dst->jb, jb, VARSIZE(jb));
	dst->node = mp_node_copy(&c->keep, node);
	if (dst->node == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
}

/*
 * Offer one key with its value (node: the value's tree, in a scratch
 * arena).  Returns what the key sorts by — the value, or an OR key's pick —
 * when it matches the query and comes after the cursor, else NULL.
 */
static const MpNode *
offer_node(Collect *c, text *k, Jsonb *jb, const MpNode *node)
{
	const MpNode *sortv;
	Row			probe;

	if (node == NULL)
		return NULL;
	if (c->or_map)
		sortv = tg_query_or_pick(c->q, node);
	else
		sortv = tg_query_match(c->q, node) ? node : NULL;
	if (sortv == NULL)
		return NULL;
	if (c->cur && c->cur->valid &&
		!tg_query_after(c->q, c->cur, VARDATA_ANY(k), VARSIZE_ANY_EXHDR(k), sortv))
		return NULL;
	c->total++;
	if (c->n < c->bound)
	{
		if (c->n >= 1024 && (c->n & (c->n - 1)) == 0)
			c->rows = repalloc(c->rows, sizeof(Row) * Min(c->bound, (int64) c->n * 2));
		keep_row(c, &c->rows[c->n++], k, jb, sortv);
		return sortv;
	}
	if (!c->heap)
	{
		for (int i = c->n / 2 - 1; i >= 0; i--)
			sift_down(c, i);
		c->heap = true;
	}
	probe.key = VARDATA_ANY(k);
	probe.keylen = VARSIZE_ANY_EXHDR(k);
	probe.node = (MpNode *) sortv;
	if (cmp(c, &probe, &c->rows[0]) >= 0)
		return sortv;			/* not better than the worst kept */
	pfree(c->rows[0].key);
	pfree(c->rows[0].jb);
	keep_row(c, &c->rows[0], k, jb, sortv);
	sift_down(c, 0);
	if (c->keep.allocated > 2 * c->keep_base + ((size_t) 1 << 20))
		compact(c);
	return sortv;
}

static uint64
key_hash64(text *k)
{
	return hash_bytes_extended((const unsigned char *) VARDATA_ANY(k), (int) VARSIZE_ANY_EXHDR(k), 0);
}

static int	plan_ahead = -1;

/*
 * Element rows: read the keys of a chunk's matching, not yet offered values
 * whole in one statement, instead of one statement per key at its offer.
 * Keys that share a 64-bit hash are read at their offer instead.
 */
static void
prefetch(Collect *c, SPITupleTable *tt, uint64 nrows)
{
	Datum	   *keys;
	int			n = 0;
	Oid			types[2] = {TEXTOID, TEXTARRAYOID};
	Datum		args[2];
	HASHCTL		ctl;
	MemoryContext old;

	/* a key is offered in the chunk that prefetched it: the last chunk's keys can go */
	if (c->ahead_cxt == NULL)
		c->ahead_cxt = AllocSetContextCreate(CurrentMemoryContext, "topgun OR keys ahead",
											 ALLOCSET_DEFAULT_SIZES);
	else
		MemoryContextReset(c->ahead_cxt);
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(uint64);
	ctl.entrysize = sizeof(Ahead);
	ctl.hcxt = c->ahead_cxt;
	c->ahead = hash_create("topgun OR keys ahead", 256, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	keys = MemoryContextAlloc(c->ahead_cxt, sizeof(Datum) * Max(1, nrows));
	for (uint64 i = 0; i < nrows; i++)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(tt->vals[i], tt->tupdesc, 2, &isnull);
		text	   *k;
		MpNode	   *node;
		uint64		h;
		bool		found;
		Ahead	   *a;

		if (isnull)
			continue;
		k = DatumGetTextPP(SPI_getbinval(tt->vals[i], tt->tupdesc, 1, &isnull));
		if (tg_ks_has(&seen, VARDATA_ANY(k), VARSIZE_ANY_EXHDR(k)))
			continue;
		mp_arena_free(&c->scratch);
		node = tg_jsonb_to_node(&c->scratch, DatumGetJsonbP(d));
		if (node == NULL || !tg_query_match_value(c->q, node))
			continue;
		h = key_hash64(k);
		a = hash_search(c->ahead, &h, HASH_ENTER, &found);
		if (found)
			continue;			/* this key, or another with its hash (read at its offer) */
		a->key = NULL;
		a->values = NULL;
		keys[n++] = PointerGetDatum(k);
	}
	mp_arena_free(&c->scratch);
	if (n == 0)
		return;
	args[0] = PointerGetDatum(c->map);
	old = MemoryContextSwitchTo(c->ahead_cxt);
	args[1] = PointerGetDatum(construct_array(keys, n, TEXTOID, -1, false, TYPALIGN_INT));
	MemoryContextSwitchTo(old);
	if (SPI_execute_plan(tg_live_plan(&plan_ahead,
									  "SELECT k, (SELECT pg_catalog.jsonb_agg(v) FROM topgun.or_get($1, k) v) "
									  "FROM pg_catalog.unnest($2) k",
									  2, types), args, NULL, true, 0) != SPI_OK_SELECT)
		return;
	old = MemoryContextSwitchTo(c->ahead_cxt);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		text	   *k = DatumGetTextPCopy(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		Datum		d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull);
		uint64		h = key_hash64(k);
		Ahead	   *a = hash_search(c->ahead, &h, HASH_FIND, NULL);

		if (a == NULL || a->key != NULL)
			continue;
		a->key = k;
		a->values = isnull ? NULL : DatumGetJsonbPCopy(d);
	}
	MemoryContextSwitchTo(old);
	SPI_freetuptable(SPI_tuptable);
}

/* An OR key's values: from the prefetch when it has them, else read now. */
static Jsonb *
values_of(Collect *c, text *k)
{
	uint64		h;
	Ahead	   *a;

	if (c->ahead)
	{
		h = key_hash64(k);
		a = hash_search(c->ahead, &h, HASH_FIND, NULL);
		if (a && a->key && VARSIZE_ANY_EXHDR(a->key) == VARSIZE_ANY_EXHDR(k) &&
			memcmp(VARDATA_ANY(a->key), VARDATA_ANY(k), VARSIZE_ANY_EXHDR(k)) == 0)
			return a->values;
	}
	return tg_or_values(c->map, k);
}

/*
 * Offer one row: (key, value), or with c->elems (key, one of an OR key's
 * values).  Returns the tree of what was read (in
 * scratch, valid until the next offer) when the key was offered and
 * counted, else NULL.  An element row that matches offers its key read
 * whole, once: its first matching value in index order is where it sorts.
 * Runs SPI statements: callers keep their own tuple table.
 */
static const MpNode *
offer(Collect *c, HeapTuple tup, TupleDesc td)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, td, 2, &isnull);
	Jsonb	   *jb;
	MpNode	   *node;
	text	   *k;

	c->examined++;
	if (isnull)
		return NULL;
	jb = DatumGetJsonbP(d);
	mp_arena_free(&c->scratch);
	node = tg_jsonb_to_node(&c->scratch, jb);
	k = DatumGetTextPP(SPI_getbinval(tup, td, 1, &isnull));
	if (!c->elems)
		return offer_node(c, k, jb, node);
	if (node == NULL || !tg_query_match_value(c->q, node) ||
		tg_ks_has(&seen, VARDATA_ANY(k), VARSIZE_ANY_EXHDR(k)))
		return NULL;
	if (!tg_ks_add(&seen, VARDATA_ANY(k), VARSIZE_ANY_EXHDR(k)))
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	jb = values_of(c, k);
	if (jb == NULL)
		return NULL;
	mp_arena_free(&c->scratch2);
	return offer_node(c, k, jb, tg_jsonb_to_node(&c->scratch2, jb)) ? node : NULL;
}

/* Offer every row of an open cursor, CHUNK rows at a time. */
static void
offer_all(Collect *c, Portal portal)
{
	for (;;)
	{
		SPITupleTable *tt;
		uint64		nrows;

		SPI_cursor_fetch(portal, true, CHUNK);
		tt = SPI_tuptable;
		nrows = SPI_processed;
		if (nrows == 0)
			break;
		if (c->elems)
			prefetch(c, tt, nrows);
		for (uint64 i = 0; i < nrows; i++)
			offer(c, tt->vals[i], tt->tupdesc);
		SPI_freetuptable(tt);
		CHECK_FOR_INTERRUPTS();
	}
	SPI_cursor_close(portal);
}

/*
 * Numbers of the sort field in index order, after the cursor, until
 * `bound` matches are kept and the rows tying with the last of them are
 * read: a number in the page can only be one of these.
 */
static void
offer_ordered(Collect *c, Portal portal)
{
	MpArena		barena;
	MpNode	   *boundary = NULL;
	int64		want = c->bound;
	bool		done = false;
	int			chunk = (int) Min(Max(64, 2 * want), CHUNK);

	mp_arena_init(&barena);
	while (!done)
	{
		SPITupleTable *tt;
		uint64		nrows;

		SPI_cursor_fetch(portal, true, chunk);
		tt = SPI_tuptable;
		nrows = SPI_processed;
		if (nrows == 0)
			break;
		if (c->elems)
			prefetch(c, tt, nrows);
		for (uint64 i = 0; i < nrows && !done; i++)
		{
			const MpNode *node;

			if (boundary)
			{
				bool		isnull;
				Datum		d = SPI_getbinval(tt->vals[i], tt->tupdesc, 2, &isnull);
				MpNode	   *v;

				if (isnull)
					continue;
				mp_arena_free(&c->scratch);
				v = tg_jsonb_to_node(&c->scratch, DatumGetJsonbP(d));
				if (v == NULL || !tg_query_sort_tie(c->q, v, boundary))
				{
					done = true;
					break;
				}
			}
			node = offer(c, tt->vals[i], tt->tupdesc);
			if (node && boundary == NULL && c->total >= want)
				boundary = mp_node_copy(&barena, node);
		}
		SPI_freetuptable(tt);
		chunk = CHUNK;
		CHECK_FOR_INTERRUPTS();
	}
	SPI_cursor_close(portal);
	mp_arena_free(&barena);
}

static int	plan_kind = -1;

static bool
map_is_or(const char *map)
{
	Oid			t = TEXTOID;
	Datum		arg = CStringGetTextDatum(map);
	bool		isnull;
	int			n;

	n = SPI_execute_plan(tg_live_plan(&plan_kind, "SELECT topgun.map_kind($1)", 1, &t),
						 &arg, NULL, true, 1);
	if (n == SPI_OK_SELECT && SPI_processed == 1)
	{
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		return !isnull && strcmp(TextDatumGetCString(d), "or") == 0;
	}
	return false;
}

#define LWW_SELECT	"SELECT key, value FROM topgun.lww_entries WHERE map = $1"
/* an OR map's values one per row (c->elems), and its keys read whole (tag order, as or_get) */
#define OR_SELECT	"SELECT key, value FROM topgun.or_entries WHERE map = $1"
#define OR_KEYS		"SELECT key, pg_catalog.jsonb_agg(value ORDER BY tag COLLATE \"C\") " \
					"FROM topgun.or_entries WHERE map = $1"

/*
 * The page: every current record of the map that matches, after the cursor
 * (if valid), sorted, up to the limit; *total counts the matches (at least
 * limit + 1 when there are more).  Field indexes (topgun.create_index) pick
 * the candidates; the exact predicate is applied to each.  An OR key
 * matches when one of its values does (tg_query_or_pick); its values are
 * one row each in topgun.ormap and in the map's index there, so the same
 * SQL picks candidate values, and a candidate's key is read whole.
 * *or_map tells the caller the rows' sort values are picks; the rows'
 * trees are in *keep, which the caller frees.  Needs SPI.
 */
static Row *
fetch_page(const TgQuery *q, const char *map, TgCursor *cur, int *nrows, int64 *total, bool *or_map,
		   MpArena *keep)
{
	Collect		c;
	TgQSql		s;
	MpArena		parena;
	const TgPre *pre = NULL;
	const char *sf;
	size_t		sflen;
	bool		desc;
	int64		lim = tg_query_limit(q);
	TgPre		eq = {.kind = TG_PRE_CMP, .op = TG_PRE_EQ};
	bool		ordered = false;

	collect_init(&c, q, cur);
	mp_arena_init(&parena);
	c.or_map = *or_map = map_is_or(map);
	c.map = cstring_to_text(map);
	tg_qsql_init(&s, map);
	tg_qsql_load_indexes(&s, map);
	if (s.nidx > 0)
		pre = tg_query_prefilter(q, &parena, tg_qsql_indexed, &s);
	if (lim >= 0 && s.nidx > 0 && tg_query_sort_field(q, &sf, &sflen, &desc))
	{
		/*
		 * Read in sort-field order: the equality group A === c of a
		 * composite index (A, sort field) when the query requires one,
		 * else the whole map through an index of the sort field.
		 */
		TgQPair		pair = {&s, sf, sflen};

		if (!tg_query_required_eq(q, tg_qsql_paired, &pair, &eq.attr, &eq.attrlen, &eq.value))
			eq.attr = NULL;
		ordered = eq.attr != NULL || tg_qsql_indexed(sf, sflen, &s) == TG_PRE_ORDERED;
	}
	if (pre != NULL || ordered)
	{
		/*
		 * PostgreSQL ignores the statistics of partial indexes when it
		 * estimates a condition (selfuncs.c), so the type-range and OR
		 * conditions on a field index are guessed at a third of the
		 * table each and planned as a scan of every map.  Every
		 * condition built here has an index of this map behind it: the
		 * scan is never the better plan.  Local to this request's
		 * transaction.
		 */
		(void) set_config_option("enable_seqscan", "off", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_LOCAL, true, 0, false);
	}
	if (ordered)
	{
		/* the numbers in index order, then every non-number */
		int			path = tg_qsql_path(&s, sf, sflen);
		int			base_args;
		size_t		base_len;

		c.elems = c.or_map;
		appendStringInfoString(&s.sql, c.or_map ? OR_SELECT : LWW_SELECT);
		tg_qsql_where(&s, pre);
		if (eq.attr)
			tg_qsql_where(&s, &eq); /* the composite's first column */
		base_len = s.sql.len;
		base_args = s.nargs;
		tg_qsql_numbers(&s, path, true);
		if (cur && cur->valid && cur->sort_value &&
			(cur->sort_value->type == MP_INT || cur->sort_value->type == MP_FLOAT))
		{
			/* keyset: from the cursor's value on (its ties are sorted out in C) */
			int			cp = tg_qsql_jsonb(&s, cur->sort_value);

			if (cp > 0)
				appendStringInfo(&s.sql, " AND (value #> $%d) %s $%d", path, desc ? "<=" : ">=", cp);
		}
		appendStringInfo(&s.sql, " ORDER BY (value #> $%d) %s", path, desc ? "DESC" : "ASC");
		offer_ordered(&c, tg_qsql_open(&s, true));
		/* non-numbers sort after every number: needed unless the page is already full (asc) */
		if (desc || c.total < c.bound)
		{
			s.sql.len = (int) base_len;
			s.sql.data[base_len] = '\0';
			s.nargs = base_args;
			tg_qsql_numbers(&s, path, false);
			offer_all(&c, tg_qsql_open(&s, false));
		}
	}
	else if (c.or_map && pre != NULL)
	{
		/* the keys of the candidate values, each read whole (a primary-key probe) */
		appendStringInfoString(&s.sql, "SELECT k.key, (SELECT pg_catalog.jsonb_agg(v) FROM topgun.or_get($1, k.key) v) "
							   "FROM (SELECT DISTINCT key FROM topgun.or_entries WHERE map = $1");
		tg_qsql_where(&s, pre);
		appendStringInfoString(&s.sql, ") k");
		offer_all(&c, tg_qsql_open(&s, false));
	}
	else
	{
		appendStringInfoString(&s.sql, c.or_map ? OR_KEYS : LWW_SELECT);
		tg_qsql_where(&s, c.or_map ? NULL : pre);
		if (c.or_map)
			appendStringInfoString(&s.sql, " GROUP BY key");
		offer_all(&c, tg_qsql_open(&s, false));
	}
	tg_stat_add(TG_STAT_QUERY_PAGE_ROWS, (uint64) c.examined);
	sort_query = q;
	qsort(c.rows, c.n, sizeof(Row), row_cmp);
	*total = c.total;
	*nrows = lim >= 0 && c.n > lim ? (int) lim : c.n;
	mp_arena_free(&parena);
	mp_arena_free(&c.scratch);
	mp_arena_free(&c.scratch2);
	tg_ks_free(&seen);
	if (c.ahead_cxt)
		MemoryContextDelete(c.ahead_cxt);
	*keep = c.keep;
	return c.rows;
}

/*
 * Reader side of TG_REQ_FETCH: {m: map, q: query, c: cursor, t: cursor ttl}
 * -> TG_REP_ROWS {rows: [[key, value], ...], total}.  In a transaction.
 */
void
tg_read_fetch(TgConn *c, const char *payload, size_t len)
{
	MpArena		arena;
	MpLimits	lim;
	char		err[256];
	const MpNode *req;
	const MpNode *m, *qn, *cn, *tn, *ln;
	TgQuery    *volatile q = NULL;
	TgCursor	cur;
	volatile bool have_cur = false;
	Row		   *rows;
	int			n;
	int64		total;
	MpBuf		b;
	char	   *map;
	bool		or_map = false;
	MpArena		keep;

	mp_arena_init(&arena);
	mp_arena_init(&keep);
	lim.max_depth = 64;
	lim.max_nodes = (uint32) len + 1;
	lim.max_str = (uint32) Max(len, 1);
	req = mp_decode(&arena, (const uint8_t *) payload, len, &lim, err, sizeof(err));
	if (req == NULL || (m = mp_map_get(req, "m")) == NULL || m->type != MP_STR)
		elog(ERROR, "topgun: malformed fetch request");
	ln = mp_map_get(req, "l");
	qn = mp_map_get(req, "q");
	cn = mp_map_get(req, "c");
	tn = mp_map_get(req, "t");
	q = tg_query_compile(qn && qn->type != MP_NIL ? qn : NULL, err, sizeof(err));
	if (q == NULL)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("Invalid query: %s", err)));
	if (ln && (ln->type == MP_INT || ln->type == MP_UINT || ln->type == MP_FLOAT))
		tg_query_set_limit(q, (int64) mp_number_as_double(ln));	/* a refill: one row */
	map = pnstrdup(m->v.s, m->len);
	PG_TRY();
	{
		if (cn && cn->type == MP_STR)
		{
			tg_query_cursor_check(q, cn->v.s, cn->len, tg_now_ms(),
								  tn ? (int64) mp_number_as_double(tn) : CURSOR_TTL_MS, &cur);
			have_cur = true;
		}
		rows = fetch_page(q, map, have_cur ? &cur : NULL, &n, &total, &or_map, &keep);
		mp_buf_init(&b, (size_t) 1 << 30);
		mp_put_map_header(&b, 2);
		mp_put_str(&b, "rows");
		mp_put_array_header(&b, n);
		for (int i = 0; i < n; i++)
		{
			mp_put_array_header(&b, or_map ? 3 : 2);
			mp_put_strn(&b, rows[i].key, rows[i].keylen);
			tg_put_jsonb(&b, rows[i].jb);
			if (or_map)
				mp_put_node(&b, rows[i].node);
		}
		mp_put_str(&b, "total");
		mp_put_int(&b, total);
		if (!mp_buf_ok(&b))
			ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED), errmsg("query page too large")));
		tg_ipc_put(tg_exec_out, TG_REP_ROWS, c->id, b.data, b.len);
		mp_buf_free(&b);
	}
	PG_FINALLY();
	{
		if (have_cur)
			tg_query_cursor_free(&cur);
		tg_query_free(q);
		mp_arena_free(&arena);
		mp_arena_free(&keep);
	}
	PG_END_TRY();
}

/*
 * Session side: the rows of a TG_REP_ROWS reply: {rows: [[key, value], ...],
 * total}; an OR map's rows are [key, values, pick] (what the key sorts by).
 */
bool
tg_query_page_decode(MpArena *arena, const char *msg, Size len, TgQPage *pg)
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
	pg->sorts = palloc(sizeof(MpNode *) * Max(1, pg->n));
	for (int i = 0; i < pg->n; i++)
	{
		const MpNode *row = &rows->v.items[i];

		if (row->type != MP_ARRAY || row->len < 2 || row->len > 3 || row->v.items[0].type != MP_STR)
			return false;
		pg->keys[i] = &row->v.items[0];
		pg->values[i] = &row->v.items[1];
		pg->sorts[i] = &row->v.items[row->len - 1];
	}
	return true;
}
