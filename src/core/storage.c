/*
 * storage.c — argument validation and the map-kind registry.
 *
 * A map's kind (LWW or OR) is fixed by its first write and recorded in
 * topgun.maps.  Every write checks it; a backend-local cache keeps that check
 * to one hash lookup once the map is known.
 */
#include "topgun.h"
#include "core/storage.h"

#include "access/xact.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/syscache.h"
#include "utils/memutils.h"

int			tg_max_value_bytes = 1024 * 1024;

typedef struct KindEntry
{
	char		name[TG_MAX_MAP_BYTES + 1];
	char		kind;
	bool		tentative;		/* registered by the current, uncommitted xact */
} KindEntry;

static HTAB *kind_cache = NULL;
static bool kind_cache_has_tentative = false;
static bool kind_cache_stale = false;
static SPIPlanPtr kind_insert_plan = NULL;
static SPIPlanPtr kind_select_plan = NULL;

PG_FUNCTION_INFO_V1(tg_check_write);

static void
kind_cache_xact_callback(XactEvent event, void *arg)
{
	HASH_SEQ_STATUS st;
	KindEntry  *e;

	if (!kind_cache_has_tentative || kind_cache == NULL)
		return;
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
	{
		/* The map rows we created are gone: forget them. */
		hash_seq_init(&st, kind_cache);
		while ((e = hash_seq_search(&st)) != NULL)
			if (e->tentative)
				hash_search(kind_cache, e->name, HASH_REMOVE, NULL);
		kind_cache_has_tentative = false;
	}
	else if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT ||
			 event == XACT_EVENT_PREPARE)
	{
		hash_seq_init(&st, kind_cache);
		while ((e = hash_seq_search(&st)) != NULL)
			e->tentative = false;
		kind_cache_has_tentative = false;
	}
}

/*
 * DROP EXTENSION (or anything that invalidates relation caches wholesale)
 * makes the cached kinds and plans stale: forget them.  Plans re-prepare on
 * next use; kinds are re-read from topgun.maps.
 */
static void
storage_relcache_cb(Datum arg, Oid relid)
{
	/*
	 * Only mark: invalidations are processed in the middle of SPI calls made
	 * while an entry of the cache is being looked up or filled, so the table
	 * must not go away here.  It is emptied at the next lookup.
	 */
	kind_cache_stale = true;
}

void
tg_storage_init(void)
{
	DefineCustomIntVariable("topgun.max_value_bytes",
							"Largest record value accepted by the CRDT write functions.",
							NULL, &tg_max_value_bytes, 1024 * 1024, 16, MaxAllocSize / 2,
							PGC_SUSET, GUC_UNIT_BYTE, NULL, NULL, NULL);
	RegisterXactCallback(kind_cache_xact_callback, NULL);
	CacheRegisterRelcacheCallback(storage_relcache_cb, (Datum) 0);
}

static void
check_len(text *t, const char *what, int minlen, int maxlen)
{
	int			len = VARSIZE_ANY_EXHDR(t);

	if (len < minlen)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be empty", what)));
	if (len > maxlen)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%s is too long (%d bytes)", what, len),
				 errdetail("The maximum is %d bytes.", maxlen)));
}

void
tg_check_map_name(text *map)
{
	check_len(map, "map name", 1, TG_MAX_MAP_BYTES);
}

void
tg_check_key(text *key)
{
	check_len(key, "key", 0, TG_MAX_KEY_BYTES);
}

void
tg_check_tag(text *tag)
{
	check_len(tag, "tag", 1, TG_MAX_TAG_BYTES);
}

void
tg_check_value(Jsonb *value)
{
	if (VARSIZE(value) > (Size) tg_max_value_bytes)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("value is too large (%zu bytes)", (size_t) VARSIZE(value)),
				 errdetail("topgun.max_value_bytes is %d.", tg_max_value_bytes)));
}

void
tg_check_ttl(int64 ttl)
{
	if (ttl <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ttl_ms must be positive, got " INT64_FORMAT, ttl)));
}

bool
tg_jsonb_is_null(Jsonb *jb)
{
	JsonbValue	v;

	return JB_ROOT_IS_SCALAR(jb) && JsonbExtractScalar(&jb->root, &v) && v.type == jbvNull;
}

static const char *
kind_name(char kind)
{
	return kind == TG_KIND_LWW ? "LWW" : "OR";
}

/*
 * The kind of a map, registering it with `kind` on first use.  INSERT ... ON
 * CONFLICT DO NOTHING waits for a concurrent first writer, so two sessions
 * racing to create a map with different kinds cannot both win.
 */
TgMapKind
tg_map_kind_register(text *map, TgMapKind kind)
{
	char		name[TG_MAX_MAP_BYTES + 1];
	int			len = VARSIZE_ANY_EXHDR(map);
	KindEntry  *e;
	bool		found;
	char		stored;
	bool		inserted;
	Datum		args[2];
	char		kindstr[2] = {(char) kind, '\0'};

	if (kind_cache == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = TG_MAX_MAP_BYTES + 1;
		ctl.entrysize = sizeof(KindEntry);
		ctl.hcxt = TopMemoryContext;
		kind_cache = hash_create("topgun map kinds", 64, &ctl,
								 HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	}
	if (kind_cache_stale && !kind_cache_has_tentative)
	{
		HASH_SEQ_STATUS st;
		KindEntry  *old;

		hash_seq_init(&st, kind_cache);
		while ((old = hash_seq_search(&st)) != NULL)
			hash_search(kind_cache, old->name, HASH_REMOVE, NULL);
		kind_cache_stale = false;
	}
	memset(name, 0, sizeof(name));
	memcpy(name, VARDATA_ANY(map), len);
	e = hash_search(kind_cache, name, HASH_FIND, &found);
	if (found)
		stored = e->kind;
	else
	{
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		if (kind_insert_plan == NULL)
		{
			Oid			types[2] = {TEXTOID, TEXTOID};
			SPIPlanPtr	p;

			p = SPI_prepare("INSERT INTO topgun.maps (name, kind) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
							2, types);
			if (p == NULL || SPI_keepplan(p) != 0)
				elog(ERROR, "could not prepare map registration");
			kind_insert_plan = p;
			p = SPI_prepare("SELECT kind FROM topgun.maps WHERE name = $1", 1, types);
			if (p == NULL || SPI_keepplan(p) != 0)
				elog(ERROR, "could not prepare map lookup");
			kind_select_plan = p;
		}
		args[0] = PointerGetDatum(map);
		args[1] = CStringGetTextDatum(kind == TG_KIND_LWW ? "lww" : "or");
		if (SPI_execute_plan(kind_insert_plan, args, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "map registration failed");
		inserted = SPI_processed > 0;
		if (SPI_execute_plan(kind_select_plan, args, NULL, false, 1) != SPI_OK_SELECT ||
			SPI_processed != 1)
			elog(ERROR, "map lookup failed");
		{
			char	   *k = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

			stored = (k != NULL && strcmp(k, "or") == 0) ? TG_KIND_OR : TG_KIND_LWW;
		}
		SPI_finish();
		e = hash_search(kind_cache, name, HASH_ENTER, NULL);
		e->kind = stored;
		e->tentative = inserted;
		if (inserted)
			kind_cache_has_tentative = true;
	}
	(void) kindstr;
	return (TgMapKind) stored;
}

/* Message for a kind mismatch (shared by the raising and reporting paths). */
char *
tg_kind_mismatch_message(text *map, TgMapKind stored, TgMapKind wanted)
{
	return psprintf("map \"%s\" is an %s map, not an %s map", text_to_cstring(map),
					kind_name((char) stored), kind_name((char) wanted));
}

/* Ensure the map exists with the given kind; raise wrong_object_type if not. */
void
tg_require_map_kind(text *map, TgMapKind kind)
{
	TgMapKind	stored = tg_map_kind_register(map, kind);

	if (stored != kind)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg_internal("%s", tg_kind_mismatch_message(map, stored, kind)),
				 errdetail("A map's kind is fixed by its first write.")));
}

/*
 * topgun._check_write(kind, map, key, value, ts, ttl_ms): the checks every
 * write path shares, for the PL/pgSQL functions (OR maps).  Observes ts into
 * the node clock, so strict drift rejection happens before anything changes.
 */
#include "core/hlc.h"

Datum
tg_check_write(PG_FUNCTION_ARGS)
{
	text	   *kind;
	text	   *map;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("map name must not be NULL")));
	kind = PG_GETARG_TEXT_PP(0);
	map = PG_GETARG_TEXT_PP(1);
	tg_check_map_name(map);
	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("key must not be NULL")));
	tg_check_key(PG_GETARG_TEXT_PP(2));
	if (PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("value must not be NULL"),
				 errhint("Use JSON 'null' for a null value.")));
	tg_check_value(PG_GETARG_JSONB_P(3));
	if (PG_ARGISNULL(4))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("timestamp must not be NULL")));
	if (!PG_ARGISNULL(5))
		tg_check_ttl(PG_GETARG_INT64(5));
	tg_require_map_kind(map, strcmp(text_to_cstring(kind), "or") == 0 ? TG_KIND_OR : TG_KIND_LWW);
	tg_clock_observe(PG_GETARG_HLC_P(4));
	PG_RETURN_VOID();
}

/*
 * The row a BEFORE INSERT OR UPDATE ... FOR EACH ROW trigger function may
 * change and return (the new row of an UPDATE); any other calling context
 * is an error.  Shared by the triggers that keep derived storage columns
 * (_fill_leaf, _fill_expiry).
 */
HeapTuple
tg_before_row_tuple(FunctionCallInfo fcinfo, const char *trigger_function)
{
	TriggerData *td = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(td->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(td->tg_event) || TRIGGER_FIRED_BY_DELETE(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s must be a BEFORE INSERT OR UPDATE ... FOR EACH ROW trigger", trigger_function)));
	return TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? td->tg_newtuple : td->tg_trigtuple;
}

/*
 * topgun._invalidate_cache(): an AFTER ... FOR EACH STATEMENT trigger on a
 * small settings table (topgun.resolvers, topgun.journal_maps) whose rows
 * backends cache.  It sends a relcache invalidation of the table, which every
 * backend receives when the change commits (at its next transaction start),
 * so a cache is dropped exactly when its table changed — by the SQL API or by
 * direct DML — and never polled.
 */
PG_FUNCTION_INFO_V1(tg_invalidate_cache);
Datum
tg_invalidate_cache(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(td->tg_event) ||
		!TRIGGER_FIRED_FOR_STATEMENT(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("_invalidate_cache must be an AFTER ... FOR EACH STATEMENT trigger")));
	CacheInvalidateRelcache(td->tg_relation);
	return PointerGetDatum(NULL);
}
