/*
 * lww_merge.c — the one definition of the LWW newer-wins merge.
 *
 * A write wins only with a strictly newer timestamp, decided inside a single
 * INSERT ... ON CONFLICT DO UPDATE ... WHERE, so concurrent writers of one key
 * serialise on its row and the newest timestamp wins whatever the arrival
 * order.  Every LWW write goes through here: lww_put/lww_remove (one row),
 * lww_put_many (a batch) and replication apply (topgun._lww_merge() from the
 * replica trigger in src/sql/30_replication.sql).  Callers validate first;
 * this file only merges.  The Merkle tree and the change feed follow from
 * the row triggers on topgun.lww.
 */
#include "topgun.h"
#include "core/hlc.h"
#include "core/lww_merge.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

PG_FUNCTION_INFO_V1(tg_lww_merge_sql);

/* The merge rule, shared by both statement shapes below. */
#define LWW_MERGE_RULE \
	"ON CONFLICT (map, leaf, key) DO UPDATE " \
	"SET value = excluded.value, ts = excluded.ts, ttl_ms = excluded.ttl_ms " \
	"WHERE t.ts OPERATOR(topgun.<) excluded.ts "

typedef enum
{
	PLAN_ONE,					/* VALUES ($1 .. $5): one row */
	PLAN_MANY,					/* unnest of five parallel arrays */
	PLAN_COUNT
} PlanKind;

static SPIPlanPtr plans[PLAN_COUNT];
static Oid	plans_hlc = InvalidOid;
static bool plans_check = false;

static Oid
hlc_oid(void)
{
	return GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid, CStringGetDatum("hlc"),
						   ObjectIdGetDatum(get_namespace_oid("topgun", false)));
}

/*
 * A type changed: if the extension was dropped and re-created in this
 * session, topgun.hlc has a new OID and the kept plans' parameter type no
 * longer exists.  Only mark here; the next use compares the OID.
 */
static void
type_cb(Datum arg, int cacheid, uint32 hashvalue)
{
	plans_check = true;
}

void
tg_lww_merge_init(void)
{
	CacheRegisterSyscacheCallback(TYPEOID, type_cb, (Datum) 0);
}

Oid
tg_lww_hlc_type(void)
{
	if (plans_hlc == InvalidOid || plans_check)
	{
		Oid			hlc = hlc_oid();

		plans_check = false;
		if (hlc != plans_hlc)
		{
			/* not freed: an outer call could still be executing one */
			memset(plans, 0, sizeof(plans));
			plans_hlc = hlc;
		}
	}
	return plans_hlc;
}

static SPIPlanPtr
get_plan(PlanKind kind)
{
	Oid			hlc = tg_lww_hlc_type();

	if (plans[kind] == NULL)
	{
		Oid			one[5] = {TEXTOID, TEXTOID, JSONBOID, hlc, INT8OID};
		Oid			many[5] = {TEXTARRAYOID, TEXTARRAYOID, JSONBARRAYOID, get_array_type(hlc), INT8ARRAYOID};
		SPIPlanPtr	p;

		if (kind == PLAN_ONE)
			p = SPI_prepare("INSERT INTO topgun.lww AS t (map, key, value, ts, ttl_ms) "
							"VALUES ($1, $2, $3, $4, $5) " LWW_MERGE_RULE, 5, one);
		else
			p = SPI_prepare("INSERT INTO topgun.lww AS t (map, key, value, ts, ttl_ms) "
							"SELECT * FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), "
							"pg_catalog.unnest($3), pg_catalog.unnest($4), pg_catalog.unnest($5)) "
							LWW_MERGE_RULE "RETURNING map, key", 5, many);
		if (p == NULL || SPI_keepplan(p) != 0)
			elog(ERROR, "could not prepare the topgun.lww merge: %s", SPI_result_code_string(SPI_result));
		plans[kind] = p;
	}
	return plans[kind];
}

bool
tg_lww_merge_one(text *map, text *key, Jsonb *value, Datum ts, bool has_ttl, int64 ttl)
{
	Datum		args[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
	bool		won;

	args[0] = PointerGetDatum(map);
	args[1] = PointerGetDatum(key);
	args[2] = PointerGetDatum(value);
	if (value == NULL)
		nulls[2] = 'n';
	args[3] = ts;
	args[4] = Int64GetDatum(ttl);
	if (!has_ttl || value == NULL)
		nulls[4] = 'n';
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_plan(get_plan(PLAN_ONE), args, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "topgun.lww merge failed");
	won = SPI_processed > 0;
	SPI_finish();
	return won;
}

void
tg_lww_merge_many(int n, const TgLwwRow *rows, void (*on_won) (text *map, text *key, void *arg), void *arg)
{
	Oid			hlc = tg_lww_hlc_type();
	int16		hlen;
	bool		hbyval;
	char		halign;
	Datum	   *am = palloc(sizeof(Datum) * n),
			   *ak = palloc(sizeof(Datum) * n),
			   *av = palloc(sizeof(Datum) * n),
			   *at = palloc(sizeof(Datum) * n),
			   *att = palloc(sizeof(Datum) * n);
	bool	   *avn = palloc(sizeof(bool) * n),
			   *attn = palloc(sizeof(bool) * n);
	int			dims[1] = {n};
	int			lbs[1] = {1};
	Datum		args[5];
	uint64		r;

	get_typlenbyvalalign(hlc, &hlen, &hbyval, &halign);
	for (int i = 0; i < n; i++)
	{
		am[i] = PointerGetDatum(rows[i].map);
		ak[i] = PointerGetDatum(rows[i].key);
		av[i] = PointerGetDatum(rows[i].value);
		avn[i] = rows[i].value == NULL;
		at[i] = PointerGetDatum(rows[i].ts);
		att[i] = Int64GetDatum(rows[i].ttl);
		attn[i] = !rows[i].has_ttl || rows[i].value == NULL;
	}
	args[0] = PointerGetDatum(construct_array(am, n, TEXTOID, -1, false, TYPALIGN_INT));
	args[1] = PointerGetDatum(construct_array(ak, n, TEXTOID, -1, false, TYPALIGN_INT));
	args[2] = PointerGetDatum(construct_md_array(av, avn, 1, dims, lbs, JSONBOID, -1, false, TYPALIGN_INT));
	args[3] = PointerGetDatum(construct_array(at, n, hlc, hlen, hbyval, halign));
	args[4] = PointerGetDatum(construct_md_array(att, attn, 1, dims, lbs, INT8OID, 8,
												 FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_plan(get_plan(PLAN_MANY), args, NULL, false, 0) != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "topgun.lww batch merge failed");
	for (r = 0; r < SPI_processed; r++)
	{
		bool		isnull;

		on_won(DatumGetTextPP(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &isnull)),
			   DatumGetTextPP(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 2, &isnull)),
			   arg);
	}
	SPI_finish();
}

/*
 * topgun._lww_merge(map, key, value jsonb, ts hlc, ttl_ms bigint) → boolean:
 * the merge without a client write's checks, for records another node
 * already accepted (replication apply).  NULL value: a tombstone.
 */
Datum
tg_lww_merge_sql(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("topgun._lww_merge: map, key and timestamp must not be NULL")));
	PG_RETURN_BOOL(tg_lww_merge_one(PG_GETARG_TEXT_PP(0), PG_GETARG_TEXT_PP(1),
									PG_ARGISNULL(2) ? NULL : PG_GETARG_JSONB_P(2),
									PG_GETARG_DATUM(3), !PG_ARGISNULL(4),
									PG_ARGISNULL(4) ? 0 : PG_GETARG_INT64(4)));
}
