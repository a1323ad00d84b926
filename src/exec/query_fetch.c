/*
 * query_fetch.c — a query page read by a reader executor (TG_REQ_FETCH):
 * every current record of the map that matches the compiled query (JS
 * semantics, src/query), sorted, after the cursor, up to the limit, with
 * the count before the limit.  The session executor turns it into a
 * QUERY_RESP or diffs it against a live query's keys (queries.c).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "exec/exec.h"
#include "ipc/ipc.h"

#define CURSOR_TTL_MS	(10 * 60 * 1000)

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
	const MpNode *m, *qn, *cn, *tn;
	TgQuery    *volatile q = NULL;
	TgCursor	cur;
	volatile bool have_cur = false;
	Row		   *rows;
	int			n;
	int64		total;
	MpBuf		b;
	char	   *map;

	mp_arena_init(&arena);
	lim.max_depth = 64;
	lim.max_nodes = (uint32) len + 1;
	lim.max_str = (uint32) Max(len, 1);
	req = mp_decode(&arena, (const uint8_t *) payload, len, &lim, err, sizeof(err));
	if (req == NULL || (m = mp_map_get(req, "m")) == NULL || m->type != MP_STR)
		elog(ERROR, "topgun: malformed fetch request");
	qn = mp_map_get(req, "q");
	cn = mp_map_get(req, "c");
	tn = mp_map_get(req, "t");
	q = tg_query_compile(qn && qn->type != MP_NIL ? qn : NULL, err, sizeof(err));
	if (q == NULL)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("Invalid query: %s", err)));
	map = pnstrdup(m->v.s, m->len);
	PG_TRY();
	{
		if (cn && cn->type == MP_STR)
		{
			tg_query_cursor_check(q, cn->v.s, cn->len, tg_now_ms(),
								  tn ? (int64) mp_number_as_double(tn) : CURSOR_TTL_MS, &cur);
			have_cur = true;
		}
		rows = fetch_page(q, map, have_cur ? &cur : NULL, &arena, &n, &total);
		mp_buf_init(&b, (size_t) 1 << 30);
		mp_put_map_header(&b, 2);
		mp_put_str(&b, "rows");
		mp_put_array_header(&b, n);
		for (int i = 0; i < n; i++)
		{
			mp_put_array_header(&b, 2);
			mp_put_strn(&b, rows[i].key, rows[i].keylen);
			tg_put_jsonb(&b, rows[i].jb);
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
	}
	PG_END_TRY();
}

