/*
 * trigger.c — row triggers that feed the Merkle deltas.
 *
 * The triggers are ENABLE ALWAYS, so every path that changes the storage
 * tables — the topgun functions, direct DML by an operator, TTL expiry, and
 * the logical-replication apply worker — keeps the tree in step with the rows.
 */
#include "topgun.h"
#include "merkle/merkle.h"
#include "merkle/fnv.h"
#include "changes/changes.h"

#include "access/htup_details.h"
#include "commands/trigger.h"
#include "utils/builtins.h"
#include "utils/rel.h"

PG_FUNCTION_INFO_V1(tg_lww_merkle_trigger);
PG_FUNCTION_INFO_V1(tg_or_merkle_trigger);
PG_FUNCTION_INFO_V1(tg_counter_change_trigger);

/* Column numbers fixed by src/sql/10_storage.sql (topgun.lww, topgun.ormap). */
#define LWW_ATT_MAP		1
#define LWW_ATT_KEY		2
#define LWW_ATT_TS		5
#define OR_ATT_MAP		1
#define OR_ATT_KEY		2
#define OR_ATT_TAG		4
#define CNT_ATT_NAME	1

static text *
get_text(HeapTuple tup, TupleDesc desc, int att)
{
	bool		isnull;
	Datum		d = heap_getattr(tup, att, desc, &isnull);

	if (isnull)
		elog(ERROR, "topgun: unexpected NULL in storage row");
	return DatumGetTextPP(d);
}

static void
lww_row_delta(HeapTuple tup, TupleDesc desc, bool add)
{
	text	   *map = get_text(tup, desc, LWW_ATT_MAP);
	text	   *key = get_text(tup, desc, LWW_ATT_KEY);
	bool		isnull;
	TgHlc	   *ts = DatumGetTgHlcP(heap_getattr(tup, LWW_ATT_TS, desc, &isnull));
	uint32		item;
	int			leaf;

	leaf = tg_leaf_of_hash(tg_hash_string(VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key)));
	item = tg_lww_item_hash(VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key), ts);
	tg_merkle_add_delta(VARDATA_ANY(map), VARSIZE_ANY_EXHDR(map), leaf,
						add ? item : (uint32) 0 - item);
}

static void
check_trigger(FunctionCallInfo fcinfo, const char *name)
{
	TriggerData *td = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s must be called as a trigger", name)));
	if (!TRIGGER_FIRED_AFTER(td->tg_event) || !TRIGGER_FIRED_FOR_ROW(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s must be an AFTER ... FOR EACH ROW trigger", name)));
}

Datum
tg_lww_merkle_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	TupleDesc	desc;

	check_trigger(fcinfo, "topgun._lww_merkle_trigger");
	desc = RelationGetDescr(td->tg_relation);
	if (TRIGGER_FIRED_BY_UPDATE(td->tg_event) || TRIGGER_FIRED_BY_DELETE(td->tg_event))
		lww_row_delta(td->tg_trigtuple, desc, false);
	if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
	{
		text	   *was = get_text(td->tg_trigtuple, desc, LWW_ATT_MAP);
		text	   *now = get_text(td->tg_newtuple, desc, LWW_ATT_MAP);

		lww_row_delta(td->tg_newtuple, desc, true);
		/* an entry that moved to another map (direct DML) */
		if (VARSIZE_ANY_EXHDR(was) != VARSIZE_ANY_EXHDR(now) ||
			memcmp(VARDATA_ANY(was), VARDATA_ANY(now), VARSIZE_ANY_EXHDR(now)) != 0)
		{
			tg_merkle_count_entry(VARDATA_ANY(was), VARSIZE_ANY_EXHDR(was), -1);
			tg_merkle_count_entry(VARDATA_ANY(now), VARSIZE_ANY_EXHDR(now), 1);
		}
	}
	else
	{
		text	   *map = get_text(td->tg_trigtuple, desc, LWW_ATT_MAP);

		if (TRIGGER_FIRED_BY_INSERT(td->tg_event))
			lww_row_delta(td->tg_trigtuple, desc, true);
		/* entries of a map without a stored tree are counted (modes.c) */
		tg_merkle_count_entry(VARDATA_ANY(map), VARSIZE_ANY_EXHDR(map),
							  TRIGGER_FIRED_BY_INSERT(td->tg_event) ? 1 : -1);
	}
	/* a new record (tombstones included) is a change clients must see */
	if (!TRIGGER_FIRED_BY_DELETE(td->tg_event))
	{
		HeapTuple	t = TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? td->tg_newtuple : td->tg_trigtuple;
		text	   *map = get_text(t, desc, LWW_ATT_MAP);
		text	   *key = get_text(t, desc, LWW_ATT_KEY);

		tg_changes_capture(TG_CHANGE_LWW, VARDATA_ANY(map), VARSIZE_ANY_EXHDR(map),
						   VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key), NULL, 0, NULL, 0);
	}
	return PointerGetDatum(NULL);
}

/*
 * Any change to a tag row (add, update, tombstone, delete) can change the
 * entry hash of the key it belongs to; tombstones that never had a key
 * belong to none.
 */
static void
or_row_mark(HeapTuple tup, TupleDesc desc)
{
	text	   *map = get_text(tup, desc, OR_ATT_MAP);
	bool		isnull;
	Datum		k = heap_getattr(tup, OR_ATT_KEY, desc, &isnull);
	text	   *key;

	if (isnull)
		return;
	key = DatumGetTextPP(k);
	tg_merkle_mark_or_key(VARDATA_ANY(map), VARSIZE_ANY_EXHDR(map),
						  VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key));
}

static void
or_row_event(HeapTuple tup, TupleDesc desc, TgChangeKind kind)
{
	text	   *map = get_text(tup, desc, OR_ATT_MAP);
	text	   *key = get_text(tup, desc, OR_ATT_KEY);
	text	   *tag = get_text(tup, desc, OR_ATT_TAG);

	tg_changes_capture(kind, VARDATA_ANY(map), VARSIZE_ANY_EXHDR(map),
					   VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key),
					   VARDATA_ANY(tag), VARSIZE_ANY_EXHDR(tag), NULL, 0);
}

Datum
tg_or_merkle_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	TupleDesc	desc;

	check_trigger(fcinfo, "topgun._or_merkle_trigger");
	desc = RelationGetDescr(td->tg_relation);
	or_row_mark(td->tg_trigtuple, desc);
	if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
		or_row_mark(td->tg_newtuple, desc);
	or_row_event(td->tg_trigtuple, desc, !TRIGGER_FIRED_BY_DELETE(td->tg_event) ? TG_CHANGE_OR_ADD : TG_CHANGE_OR_REMOVE);
	return PointerGetDatum(NULL);
}

/* PN counters: any change of a counter's state is pushed to its subscribers. */
Datum
tg_counter_change_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	HeapTuple	t;
	text	   *name;

	check_trigger(fcinfo, "topgun._counter_change_trigger");
	t = TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? td->tg_newtuple : td->tg_trigtuple;
	name = get_text(t, RelationGetDescr(td->tg_relation), CNT_ATT_NAME);
	tg_changes_capture(TG_CHANGE_COUNTER, VARDATA_ANY(name), VARSIZE_ANY_EXHDR(name),
					   NULL, 0, NULL, 0, NULL, 0);
	return PointerGetDatum(NULL);
}
