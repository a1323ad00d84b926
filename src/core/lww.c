/*
 * lww.c — last-writer-wins maps: lww_put / lww_remove.
 *
 * One row per (map, key) in topgun.lww.  These check a client write, let
 * the node clock observe its timestamp and hand it to the merge
 * (lww_merge.c).  The Merkle tree is maintained by the row trigger on
 * topgun.lww (src/merkle/trigger.c).
 */
#include "topgun.h"
#include "core/hlc.h"
#include "core/lww_merge.h"
#include "core/storage.h"

#include "utils/builtins.h"
#include "utils/jsonb.h"

PG_FUNCTION_INFO_V1(lww_put);
PG_FUNCTION_INFO_V1(lww_remove);

/*
 * The shared write path.  value == NULL means a tombstone.
 */
static bool
lww_write(text *map, text *key, Jsonb *value, Datum ts, bool has_ttl, int64 ttl)
{
	tg_check_map_name(map);
	tg_check_key(key);
	if (value != NULL)
		tg_check_value(value);
	if (has_ttl)
		tg_check_ttl(ttl);
	tg_require_map_kind(map, TG_KIND_LWW);
	/* Remote timestamps advance the node clock (and face the drift check). */
	tg_clock_observe(DatumGetTgHlcP(ts));
	return tg_lww_merge_one(map, key, value, ts, has_ttl, ttl);
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
