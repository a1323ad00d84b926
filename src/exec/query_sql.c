/*
 * query_sql.c — SQL for a query page (issue 13): which field indexes a map
 * has (topgun.field_indexes, created by topgun.create_index), and the
 * prefilter of src/query/query_plan.c as a WHERE clause over them.  The
 * first field of a composite index (A, B) serves like an index of A (the
 * btree's leading column); the pair serves a page of "A === c" read in B
 * order (query_fetch.c).
 *
 * Every constant is a parameter (the map, each path, each jsonb constant),
 * never text in the statement.  The statements are run unsaved
 * (SPI_cursor_open_with_args), so the planner sees the values: the partial
 * predicate map = '<map>' of the map's indexes is proven and
 * value #> '{attr}' matches their expression.
 *
 * jsonb orders types Null < String < Number < Boolean < Array < Object, an
 * empty top-level array below everything.  Every value a client can store
 * is a number in [-2^53 .. 1.8e308] or not a number, so
 *   numbers:      v >= '-1e400' AND v < 'false'
 *   non-numbers:  v IS NULL OR v < '-1e400' OR v >= 'false'
 * and a JS comparison with a number (which converts strings, booleans,
 * null and arrays with ToNumber) keeps every non-number as a candidate.
 */
#include "postgres.h"

#include <locale.h>

#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/pg_locale.h"

#include "exec/exec.h"
#include "exec/query_sql.h"

#define LOW_NUMBER	"'-1e400'::jsonb"
#define HIGH_TYPES	"'false'::jsonb"

static int	plan_indexes = -1;

/*
 * The ready field indexes of a map whose fields are all single-segment
 * (client attributes are top-level keys): first and second field.
 */
void
tg_qsql_load_indexes(TgQSql *s, const char *map)
{
	Oid			t = TEXTOID;
	Datum		arg = CStringGetTextDatum(map);
	int			rc;

	s->nidx = 0;
	rc = SPI_execute_plan(tg_live_plan(&plan_indexes,
									   "SELECT fields[1], kind = 'btree', fields[2] FROM topgun.field_indexes f "
									   "WHERE map = $1 AND state = 'ready' "
									   "AND NOT EXISTS (SELECT FROM unnest(f.fields) u(x) WHERE strpos(u.x, '.') > 0)",
									   1, &t), &arg, NULL, true, 0);
	if (rc != SPI_OK_SELECT)
		return;
	s->idx = palloc(sizeof(TgQIndex) * Max(1, SPI_processed));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);

		if (isnull)
			continue;
		s->idx[s->nidx].field = TextDatumGetCString(d);
		s->idx[s->nidx].ordered = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[i],
															 SPI_tuptable->tupdesc, 2, &isnull));
		d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 3, &isnull);
		s->idx[s->nidx].next = isnull ? NULL : TextDatumGetCString(d);
		s->nidx++;
	}
}

static bool
same(const char *field, const char *attr, size_t len)
{
	return strlen(field) == len && memcmp(field, attr, len) == 0;
}

/* What the map's indexes with first field attr can do (the best of them). */
int
tg_qsql_indexed(const char *attr, size_t len, void *arg)
{
	TgQSql	   *s = arg;
	int			how = TG_PRE_NONE;

	for (int i = 0; i < s->nidx; i++)
		if (same(s->idx[i].field, attr, len))
			how = Max(how, s->idx[i].ordered ? TG_PRE_ORDERED : TG_PRE_EQUALITY);
	return how;
}

/* Is there a btree index (attr, p->next, ...)? */
int
tg_qsql_paired(const char *attr, size_t len, void *arg)
{
	TgQPair    *p = arg;

	for (int i = 0; i < p->s->nidx; i++)
		if (p->s->idx[i].ordered && p->s->idx[i].next && same(p->s->idx[i].field, attr, len) &&
			same(p->s->idx[i].next, p->next, p->nextlen))
			return TG_PRE_ORDERED;
	return TG_PRE_NONE;
}

void
tg_qsql_init(TgQSql *s, const char *map)
{
	memset(s, 0, sizeof(*s));
	initStringInfo(&s->sql);
	tg_qsql_param(s, TEXTOID, CStringGetTextDatum(map));
}

int
tg_qsql_param(TgQSql *s, Oid type, Datum value)
{
	if (s->nargs >= TG_QSQL_MAX_ARGS)
		ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED), errmsg("query too complex to plan")));
	s->types[s->nargs] = type;
	s->values[s->nargs] = value;
	return ++s->nargs;
}

/* $n of the text[] path of a top-level attribute. */
int
tg_qsql_path(TgQSql *s, const char *attr, size_t len)
{
	Datum		elem = PointerGetDatum(cstring_to_text_with_len(attr, (int) len));

	return tg_qsql_param(s, TEXTARRAYOID,
						 PointerGetDatum(construct_array(&elem, 1, TEXTOID, -1, false, TYPALIGN_INT)));
}

/* $n of a constant as jsonb, or 0 when it has no JSON form. */
int
tg_qsql_jsonb(TgQSql *s, const MpNode *v)
{
	MpBuf		b;
	char		err[128];
	int			n = 0;

	mp_buf_init(&b, (size_t) 1 << 20);
	if (mp_value_to_json(v, &b, err, sizeof(err)))
		n = tg_qsql_param(s, JSONBOID, DirectFunctionCall1(jsonb_in, CStringGetDatum((char *) b.data)));
	mp_buf_free(&b);
	return n;
}

/*
 * Strings starting with an ASCII prefix: [prefix, prefix with its last byte
 * + 1).  A range only where jsonb orders strings by their bytes: the C and
 * POSIX collations, and C.UTF-8 (glibc sorts it by code point, which is
 * byte order in UTF-8); under a linguistic collation there is none.
 */
static bool
render_prefix(TgQSql *s, const TgPre *p, StringInfo out)
{
	const char *coll = setlocale(LC_COLLATE, NULL);
	MpNode		lo,
				hi;
	char	   *up;
	int			path,
				a,
				b;

	if (!lc_collate_is_c(DEFAULT_COLLATION_OID) &&
		!(coll && (strcmp(coll, "C.UTF-8") == 0 || strcmp(coll, "C.utf8") == 0)))
		return false;
	memset(&lo, 0, sizeof(lo));
	lo.type = MP_STR;
	lo.v.s = p->value->v.s;
	lo.len = (uint32) p->prefixlen;
	up = pnstrdup(p->value->v.s, p->prefixlen);
	up[p->prefixlen - 1]++;		/* ASCII below 0x7f: stays one byte */
	hi = lo;
	hi.v.s = up;
	path = tg_qsql_path(s, p->attr, p->attrlen);
	a = tg_qsql_jsonb(s, &lo);
	b = tg_qsql_jsonb(s, &hi);
	if (a == 0 || b == 0)
		return false;
	appendStringInfo(out, "((value #> $%d) >= $%d AND (value #> $%d) < $%d)", path, a, path, b);
	return true;
}

static bool
render(TgQSql *s, const TgPre *p, StringInfo out)
{
	static const char *const ops[] = {"=", ">", ">=", "<", "<="};
	int			path,
				c;

	if (p->kind != TG_PRE_CMP)
	{
		StringInfoData sub;
		int			done = 0;

		initStringInfo(&sub);
		appendStringInfoChar(&sub, '(');
		for (int i = 0; i < p->n; i++)
		{
			StringInfoData k;

			initStringInfo(&k);
			if (!render(s, p->kids[i], &k))
			{
				if (p->kind == TG_PRE_OR)
					return false;	/* one unrestricted branch */
				continue;
			}
			if (done++)
				appendStringInfoString(&sub, p->kind == TG_PRE_AND ? " AND " : " OR ");
			appendStringInfoString(&sub, k.data);
		}
		appendStringInfoChar(&sub, ')');
		if (done == 0)
			return false;
		appendStringInfoString(out, sub.data);
		return true;
	}
	if (p->op == TG_PRE_PREFIX)
		return render_prefix(s, p, out);
	path = tg_qsql_path(s, p->attr, p->attrlen);
	c = tg_qsql_jsonb(s, p->value);
	if (c == 0)
		return false;
	appendStringInfo(out, "((value #> $%d) %s $%d", path, ops[p->op], c);
	if (p->op == TG_PRE_GT || p->op == TG_PRE_GTE)
		appendStringInfo(out, " OR (value #> $%d) < " LOW_NUMBER, path);
	else if (p->op == TG_PRE_LT || p->op == TG_PRE_LTE)
		appendStringInfo(out, " OR (value #> $%d) >= " HIGH_TYPES, path);
	appendStringInfoChar(out, ')');
	return true;
}

/* " AND <prefilter>" appended to s->sql (nothing when p is NULL or unusable). */
void
tg_qsql_where(TgQSql *s, const TgPre *p)
{
	StringInfoData w;

	if (p == NULL)
		return;
	initStringInfo(&w);
	if (render(s, p, &w))
		appendStringInfo(&s->sql, " AND %s", w.data);
}

/* " AND v is a number" / " AND v is not a number" for the sort field's path $path. */
void
tg_qsql_numbers(TgQSql *s, int path, bool numbers)
{
	if (numbers)
		appendStringInfo(&s->sql, " AND (value #> $%d) >= " LOW_NUMBER " AND (value #> $%d) < " HIGH_TYPES,
						 path, path);
	else
		appendStringInfo(&s->sql, " AND ((value #> $%d) IS NULL OR (value #> $%d) < " LOW_NUMBER
						 " OR (value #> $%d) >= " HIGH_TYPES ")", path, path, path);
}

/* fast: plan for the first rows (a page read in index order stops early) */
Portal
tg_qsql_open(TgQSql *s, bool fast)
{
	Portal		p = SPI_cursor_open_with_args(NULL, s->sql.data, s->nargs, s->types, s->values, NULL,
											  true, fast ? CURSOR_OPT_FAST_PLAN : 0);

	if (p == NULL)
		elog(ERROR, "topgun: could not open a query page cursor");
	return p;
}
