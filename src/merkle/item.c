/*
 * item.c — LWW item hashes and the SQL-callable hash helpers.
 *
 * TopGun's LWW leaf entry for a key is hashString(key + ":" + millis + ":" +
 * counter + ":" + nodeId); the value is not hashed.
 */
#include "topgun.h"
#include "merkle/merkle.h"
#include "merkle/fnv.h"

#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(tg_key_hash);
PG_FUNCTION_INFO_V1(tg_key_leaf);
PG_FUNCTION_INFO_V1(tg_lww_item_hash_sql);

uint32
tg_lww_item_hash(const char *key, int keylen, const TgHlc *ts)
{
	char		buf[64];
	int			n;
	uint32		h;

	h = tg_fnv_utf8(TG_FNV_OFFSET, key, keylen);
	n = snprintf(buf, sizeof(buf), ":" INT64_FORMAT ":" INT64_FORMAT ":", ts->millis, ts->counter);
	h = tg_fnv_utf8(h, buf, n);
	return tg_fnv_utf8(h, ts->node, TG_HLC_NODE_LEN(ts));
}

Datum
tg_key_hash(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);

	PG_RETURN_INT64((int64) tg_hash_string(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t)));
}

Datum
tg_key_leaf(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);

	PG_RETURN_INT16((int16) tg_leaf_of_hash(tg_hash_string(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t))));
}

Datum
tg_lww_item_hash_sql(PG_FUNCTION_ARGS)
{
	text	   *key = PG_GETARG_TEXT_PP(0);

	PG_RETURN_INT64((int64) tg_lww_item_hash(VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key),
											 PG_GETARG_HLC_P(1)));
}
