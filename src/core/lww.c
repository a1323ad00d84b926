/*
 * lww.c — last-writer-wins maps: lww_put / lww_remove.
 *
 * One row per (map, key) in topgun.lww.  A write wins only with a strictly
 * newer timestamp, decided inside a single INSERT ... ON CONFLICT DO UPDATE
 * ... WHERE so concurrent writers to one key serialise on that row and the
 * newest timestamp wins regardless of arrival order.  The Merkle tree is
 * maintained by the row trigger on topgun.lww (src/merkle/trigger.c).
 */
#include "topgun.h"
#include "core/hlc.h"
#include "core/storage.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "utils/syscache.h"

PG_FUNCTION_INFO_V1(lww_put);
PG_FUNCTION_INFO_V1(lww_remove);

static SPIPlanPtr upsert_plan = NULL;
static Oid	upsert_plan_hlc = InvalidOid;
static bool upsert_plan_check = false;

/*
 * Called on any pg_type invalidation.  If the extension was dropped and
 * re-created in this session, topgun.hlc has a new OID and the kept plan's
 * parameter type no longer exists; get_upsert_plan() then prepares a new one.
 */
void
tg_lww_reset_plans(void)
{
	upsert_plan_check = true;
}

static Oid
hlc_type_oid(void)
{
	return GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid, CStringGetDatum("hlc"),
						   ObjectIdGetDatum(get_namespace_oid("topgun", false)));
}

static SPIPlanPtr
get_upsert_plan(void)
{
	if (upsert_plan != NULL && upsert_plan_check)
	{
		upsert_plan_check = false;
		if (hlc_type_oid() != upsert_plan_hlc)
		{
			/* not freed: an outer call could still be executing it */
			upsert_plan = NULL;
		}
	}
	if (upsert_plan == NULL)
	{
		Oid			types[5];
		SPIPlanPtr	p;

		types[0] = TEXTOID;
		types[1] = TEXTOID;
		types[2] = JSONBOID;
		types[3] = hlc_type_oid();
		types[4] = INT8OID;
		p = SPI_prepare("INSERT INTO topgun.lww AS t (map, key, value, ts, ttl_ms) "
						"VALUES ($1, $2, $3, $4, $5) "
						"ON CONFLICT (map, leaf, key) DO UPDATE "
						"SET value = excluded.value, ts = excluded.ts, ttl_ms = excluded.ttl_ms "
						"WHERE t.ts OPERATOR(topgun.<) excluded.ts",
						5, types);
		if (p == NULL || SPI_keepplan(p) != 0)
			elog(ERROR, "could not prepare topgun.lww upsert: %s", SPI_result_code_string(SPI_result));
		upsert_plan = p;
		upsert_plan_hlc = types[3];
		upsert_plan_check = false;
	}
	return upsert_plan;
}

/*
 * The shared write path.  value == NULL means a tombstone.
 */
static bool
lww_write(text *map, text *key, Jsonb *value, Datum ts, bool has_ttl, int64 ttl)
{
	Datum		args[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
	bool		won;

	tg_check_map_name(map);
	tg_check_key(key);
	if (value != NULL)
		tg_check_value(value);
	if (has_ttl)
		tg_check_ttl(ttl);
	tg_require_map_kind(map, TG_KIND_LWW);
	/* Remote timestamps advance the node clock (and face the drift check). */
	tg_clock_observe(DatumGetTgHlcP(ts));

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
	if (SPI_execute_plan(get_upsert_plan(), args, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "topgun.lww upsert failed");
	won = SPI_processed > 0;
	SPI_finish();
	return won;
}

static void
require_arg(FunctionCallInfo fcinfo, int n, const char *what)
{
	if (PG_ARGISNULL(n))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be NULL", what)));
}

/* lww_put(map, key, value jsonb, ts hlc, ttl_ms bigint) → boolean */
Datum
lww_put(PG_FUNCTION_ARGS)
{
	Jsonb	   *value;

	require_arg(fcinfo, 0, "map name");
	require_arg(fcinfo, 1, "key");
	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("value must not be NULL"),
				 errhint("Use topgun.lww_remove() to delete a key.")));
	require_arg(fcinfo, 3, "timestamp");
	value = PG_GETARG_JSONB_P(2);
	/* TopGun's wire format: a record whose value is null is a tombstone. */
	if (tg_jsonb_is_null(value))
		value = NULL;
	PG_RETURN_BOOL(lww_write(PG_GETARG_TEXT_PP(0), PG_GETARG_TEXT_PP(1), value,
							 PG_GETARG_DATUM(3), !PG_ARGISNULL(4),
							 PG_ARGISNULL(4) ? 0 : PG_GETARG_INT64(4)));
}

/* lww_remove(map, key, ts hlc) → boolean */
Datum
lww_remove(PG_FUNCTION_ARGS)
{
	require_arg(fcinfo, 0, "map name");
	require_arg(fcinfo, 1, "key");
	require_arg(fcinfo, 2, "timestamp");
	PG_RETURN_BOOL(lww_write(PG_GETARG_TEXT_PP(0), PG_GETARG_TEXT_PP(1), NULL,
							 PG_GETARG_DATUM(2), false, 0));
}
