/*
 * pg_execute.c — topgun.execute_on_key / topgun.execute_on_keys
 * (ENTRY_PROCESS, ENTRY_PROCESS_BATCH; docs/processors.md).
 *
 * Each key: its processor locks (tg_lock_keys, below; topgun.restamp takes
 * the same through topgun._lock_key, and they also cover keys that do not
 * exist yet), read the live value, run the processor, write the new value
 * through topgun.lww_put / lww_remove with a fresh HLC.  Built-ins run natively
 * (tg_logic_run_builtin); registered SQL processors through
 * topgun._execute_user.  The statements are prepared once per session.
 */
#include "postgres.h"

#include "core/hlc.h"
#include "logic/logic_pg.h"
#include "logic/processors.h"

#include "access/detoast.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

PG_FUNCTION_INFO_V1(tg_execute_on_key);
PG_FUNCTION_INFO_V1(tg_execute_on_keys);
PG_FUNCTION_INFO_V1(tg_lock_key_sql);

#define MAX_BATCH_KEYS 1000
#define MAX_ARGS_BYTES TG_PROCESSOR_MAX_ARGS_BYTES

enum
{
	PLAN_READ,
	PLAN_FIND,
	PLAN_USER,
	PLAN_READ_MANY,
	PLAN_PUT_MANY,
	NPLANS
};

static SPIPlanPtr plans[NPLANS];

static SPIPlanPtr
plan(int which)
{
	static const char *sql[NPLANS] = {
		("SELECT l.value FROM topgun.lww l WHERE l.map = $1 AND l.leaf = topgun.key_leaf($2) AND l.key = $2 "
		 "AND l.value IS NOT NULL AND (l.ttl_ms IS NULL OR topgun.hlc_millis(l.ts) + l.ttl_ms >= topgun.now_ms())"),
		"SELECT p.fn::oid FROM topgun.processors p WHERE p.name = $1",
		"SELECT topgun._execute_user($1, $2, $3::oid::regprocedure, $4, $5)",
		/*
		 * LATERAL: one primary-key probe per key, whatever the statistics
		 * say (OFFSET 0 keeps the planner from flattening it into a join,
		 * which a kept plan made on a small map turned into a scan of the
		 * whole map per batch)
		 */
		("SELECT l.value FROM unnest($2) WITH ORDINALITY u(k, i) LEFT JOIN LATERAL "
		 "(SELECT x.value FROM topgun.lww x WHERE x.map = $1 AND x.leaf = topgun.key_leaf(u.k) AND x.key = u.k "
		 "AND x.value IS NOT NULL AND (x.ttl_ms IS NULL OR topgun.hlc_millis(x.ts) + x.ttl_ms >= topgun.now_ms()) "
		 "OFFSET 0) l ON true ORDER BY u.i"),
		("SELECT p.ord, p.error FROM topgun.lww_put_many(array_fill($1, ARRAY[cardinality($2)]), $2, $3, "
		 "(SELECT array_agg(topgun.hlc_now()) FROM generate_series(1, cardinality($2)))) p WHERE p.error IS NOT NULL"),
	};
	static const int nargs[NPLANS] = {2, 1, 5, 2, 3};
	Oid			types[5] = {TEXTOID, TEXTOID, JSONBOID, TEXTOID, TEXTOID};

	if (plans[which] == NULL)
	{
		SPIPlanPtr	p;

		if (which == PLAN_USER)
		{
			types[2] = OIDOID;
			types[3] = JSONBOID;
			types[4] = JSONBOID;
		}
		else if (which == PLAN_READ_MANY || which == PLAN_PUT_MANY)
		{
			types[1] = TEXTARRAYOID;
			types[2] = JSONBARRAYOID;
		}
		p = SPI_prepare(sql[which], nargs[which], types);
		if (p == NULL || SPI_keepplan(p) != 0)
			elog(ERROR, "could not prepare \"%s\": %s", sql[which], SPI_result_code_string(SPI_result));
		plans[which] = p;
	}
	return plans[which];
}

/*
 * The transaction locks that serialise processors (and topgun.restamp) on a
 * key, also when the key does not exist yet, as intention locks:
 *   - a bucket lock, one of KEY_LOCK_BUCKETS per map (an int8 advisory
 *     lock, bucket_id);
 *   - the key's own lock (an (int4, int4) advisory lock: another lock space).
 * One key (execute_on_key, a shared reader transaction's keys, restamp)
 * takes its bucket SHARED, then the key EXCLUSIVE: different keys never wait
 * for each other.  execute_on_keys takes its buckets EXCLUSIVE instead,
 * which covers every key in them, so a batch of any size holds at most
 * KEY_LOCK_BUCKETS entries of the shared lock table.  Order (no deadlock):
 * buckets ascending, then keys ascending.
 */
#define KEY_LOCK_BUCKETS 128

static void
key_hashes(text *map, text *key, uint32 *mh, uint32 *kh)
{
	*mh = DatumGetUInt32(hash_any((unsigned char *) VARDATA_ANY(map), VARSIZE_ANY_EXHDR(map)));
	*kh = DatumGetUInt32(hash_any((unsigned char *) VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key)));
}

/* The int8 advisory lock id of the key's bucket (compared as uint64: the lock order). */
static uint64
bucket_id(uint32 mh, uint32 kh)
{
	return ((uint64) mh << 32) | (kh % KEY_LOCK_BUCKETS);
}

static int
cmp_uint64(const void *a, const void *b)
{
	uint64		x = *(const uint64 *) a,
				y = *(const uint64 *) b;

	return (x > y) - (x < y);
}

void
tg_lock_keys(text **maps, text **keys, int n)
{
	uint64	   *buckets = palloc(sizeof(uint64) * Max(n, 1));
	uint64	   *own = palloc(sizeof(uint64) * Max(n, 1));

	for (int i = 0; i < n; i++)
	{
		uint32		mh,
					kh;

		key_hashes(maps[i], keys[i], &mh, &kh);
		buckets[i] = bucket_id(mh, kh);
		own[i] = ((uint64) mh << 32) | kh;
	}
	qsort(buckets, n, sizeof(uint64), cmp_uint64);
	qsort(own, n, sizeof(uint64), cmp_uint64);
	for (int i = 0; i < n; i++)
		if (i == 0 || buckets[i] != buckets[i - 1])
			DirectFunctionCall1(pg_advisory_xact_lock_shared_int8, Int64GetDatum((int64) buckets[i]));
	for (int i = 0; i < n; i++)
		if (i == 0 || own[i] != own[i - 1])
			DirectFunctionCall2(pg_advisory_xact_lock_int4, Int32GetDatum((int32) (own[i] >> 32)),
								Int32GetDatum((int32) (uint32) own[i]));
	pfree(buckets);
	pfree(own);
}

static void
lock_key(text *map, text *key)
{
	tg_lock_keys(&map, &key, 1);
}

/* topgun._lock_key(map, key): the same lock, for SQL callers. */
Datum
tg_lock_key_sql(PG_FUNCTION_ARGS)
{
	lock_key(PG_GETARG_TEXT_PP(0), PG_GETARG_TEXT_PP(1));
	PG_RETURN_VOID();
}

/* One SPI statement returning at most one datum; *isnull when no row or NULL. */
static Datum
run1(int which, Datum *args, const char *nulls, bool *isnull)
{
	int			rc = SPI_execute_plan(plan(which), args, nulls, false, 1);

	if (rc != SPI_OK_SELECT)
		elog(ERROR, "topgun processor statement failed: %s", SPI_result_code_string(rc));
	if (SPI_processed == 0)
	{
		*isnull = true;
		return (Datum) 0;
	}
	return SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, isnull);
}

/*
 * The LWW write path itself (src/core/lww.c), called directly rather than
 * through a statement: the processor's write is the hot key's critical
 * section.  A fresh node timestamp; value NULL writes a tombstone.
 */
extern Datum lww_put(PG_FUNCTION_ARGS);
extern Datum lww_remove(PG_FUNCTION_ARGS);

static void
write_key(text *map, text *key, Jsonb *value)
{
	LOCAL_FCINFO(fc, 5);

	InitFunctionCallInfoData(*fc, NULL, value ? 5 : 3, InvalidOid, NULL, NULL);
	for (int i = 0; i < 5; i++)
		fc->args[i].isnull = false;
	fc->args[0].value = PointerGetDatum(map);
	fc->args[1].value = PointerGetDatum(key);
	if (value)
	{
		fc->args[2].value = PointerGetDatum(value);
		fc->args[3].value = PointerGetDatum(tg_clock_now());
		fc->args[4].isnull = true;	/* no TTL */
		lww_put(fc);
	}
	else
	{
		fc->args[2].value = PointerGetDatum(tg_clock_now());
		lww_remove(fc);
	}
}

typedef struct Proc
{
	int			builtin;		/* >= 0: a built-in */
	Oid			fn;				/* else a registered function */
} Proc;

/* Resolve the processor name once; false: unknown (never runs anything). */
static bool
find_processor(text *name, Proc *p)
{
	Datum		arg = PointerGetDatum(name);
	bool		isnull;
	Datum		d;

	p->builtin = tg_proc_find(VARDATA_ANY(name), VARSIZE_ANY_EXHDR(name));
	p->fn = InvalidOid;
	if (p->builtin >= 0)
		return true;
	d = run1(PLAN_FIND, &arg, NULL, &isnull);
	if (isnull)
		return false;
	p->fn = DatumGetObjectId(d);
	return true;
}

static Jsonb *
unknown_processor(text *name)
{
	StringInfoData s;
	text	   *shown = name;
	char	   *esc;

	if (VARSIZE_ANY_EXHDR(name) > 100)
		shown = cstring_to_text_with_len(VARDATA_ANY(name), 100);
	initStringInfo(&s);
	appendStringInfoString(&s, "{\"success\": false, \"error\": ");
	esc = psprintf("Unknown processor \"%s\": only built-in processors and those registered with "
				   "topgun.register_processor run (client code is never executed)", text_to_cstring(shown));
	escape_json(&s, esc);
	appendStringInfoChar(&s, '}');
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(s.data)));
}

/* Process one key (its lock is taken here; re-taking a held one is cheap). */
static Jsonb *
process_key(text *map, text *key, const Proc *p, Jsonb *args)
{
	Datum		a[5];
	char		n[5] = {' ', ' ', ' ', ' ', ' '};
	bool		isnull;
	Datum		d;
	Jsonb	   *cur = NULL;
	Jsonb	   *resp;
	Jsonb	   *nv;
	TgWrite		w;

	lock_key(map, key);
	a[0] = PointerGetDatum(map);
	a[1] = PointerGetDatum(key);
	if (p->builtin < 0)
	{
		a[2] = ObjectIdGetDatum(p->fn);
		a[3] = (Datum) 0;
		n[3] = 'n';				/* the function reads the current value itself, under the lock */
		a[4] = PointerGetDatum(args);
		n[4] = args ? ' ' : 'n';
		d = run1(PLAN_USER, a, n, &isnull);
		return DatumGetJsonbPCopy(d);
	}
	d = run1(PLAN_READ, a, NULL, &isnull);
	if (!isnull)
		cur = DatumGetJsonbPCopy(d);
	resp = tg_logic_run_builtin(p->builtin, cur, args, args == NULL, &w, &nv);
	if (w != TG_WRITE_NONE)
		write_key(map, key, w == TG_WRITE_SET ? nv : NULL);
	return resp;
}

static void
check_args(FunctionCallInfo fcinfo)
{
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						errmsg("map, key(s) and processor must not be NULL")));
	if (!PG_ARGISNULL(3) && toast_raw_datum_size(PG_GETARG_DATUM(3)) > MAX_ARGS_BYTES)
		ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						errmsg("processor args exceed %d bytes", MAX_ARGS_BYTES)));
}

/* topgun.execute_on_key(map, key, processor, args jsonb DEFAULT NULL) → jsonb */
Datum
tg_execute_on_key(PG_FUNCTION_ARGS)
{
	text	   *map,
			   *key,
			   *name;
	Jsonb	   *args;
	Proc		p;
	Jsonb	   *res;
	MemoryContext outer = CurrentMemoryContext;

	check_args(fcinfo);
	map = PG_GETARG_TEXT_PP(0);
	key = PG_GETARG_TEXT_PP(1);
	name = PG_GETARG_TEXT_PP(2);
	args = PG_ARGISNULL(3) ? NULL : PG_GETARG_JSONB_P(3);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (!find_processor(name, &p))
		res = unknown_processor(name);
	else
		res = process_key(map, key, &p, args);
	res = (Jsonb *) SPI_datumTransfer(PointerGetDatum(res), false, -1);
	SPI_finish();
	MemoryContextSwitchTo(outer);
	PG_RETURN_JSONB_P(res);
}


static int
cmp_text(const void *a, const void *b)
{
	text	   *x = *(text *const *) a,
			   *y = *(text *const *) b;
	size_t		lx = VARSIZE_ANY_EXHDR(x),
				ly = VARSIZE_ANY_EXHDR(y);
	int			c = memcmp(VARDATA_ANY(x), VARDATA_ANY(y), Min(lx, ly));

	return c ? c : (lx > ly) - (lx < ly);
}

/*
 * A built-in over a batch (locks already held, SPI connected; also the
 * reader's shared processor transactions, src/exec/reader_batch.c): one read of every distinct
 * key, the keys in order on the values as they evolve (a duplicate sees its
 * predecessor's result), one lww_put_many of the final state of every key
 * that changed.  responses[i] is key i's response.
 */
void
tg_execute_builtin_keys(text *map, text **ordered, int nk, int id, Jsonb *args, Jsonb **responses)
{
	text	  **uniq = palloc(sizeof(text *) * nk);
	Jsonb	  **cur = palloc0(sizeof(Jsonb *) * nk);
	bool	   *dirty = palloc0(sizeof(bool) * nk);
	int			nu = 0,
				nd = 0;
	Datum	   *ud,
			   *dk,
			   *dv;
	bool	   *dvn;
	Datum		a[3];
	int			rc;

	memcpy(uniq, ordered, sizeof(text *) * nk);
	qsort(uniq, nk, sizeof(text *), cmp_text);
	for (int i = 0; i < nk; i++)
		if (nu == 0 || cmp_text(&uniq[nu - 1], &uniq[i]) != 0)
			uniq[nu++] = uniq[i];
	ud = palloc(sizeof(Datum) * nu);
	for (int u = 0; u < nu; u++)
		ud[u] = PointerGetDatum(uniq[u]);
	a[0] = PointerGetDatum(map);
	a[1] = PointerGetDatum(construct_array(ud, nu, TEXTOID, -1, false, TYPALIGN_INT));
	rc = SPI_execute_plan(plan(PLAN_READ_MANY), a, NULL, false, 0);
	if (rc != SPI_OK_SELECT || SPI_processed != (uint64) nu)
		elog(ERROR, "reading the batch's records failed: %s", SPI_result_code_string(rc));
	for (int u = 0; u < nu; u++)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[u], SPI_tuptable->tupdesc, 1, &isnull);

		cur[u] = isnull ? NULL : DatumGetJsonbPCopy(d);
	}
	SPI_freetuptable(SPI_tuptable);
	for (int i = 0; i < nk; i++)
	{
		text	  **hit = bsearch(&ordered[i], uniq, nu, sizeof(text *), cmp_text);
		int			u = (int) (hit - uniq);
		TgWrite		w;
		Jsonb	   *nv;

		responses[i] = tg_logic_run_builtin(id, cur[u], args, args == NULL, &w, &nv);
		if (w == TG_WRITE_SET)
			cur[u] = nv, dirty[u] = true;
		else if (w == TG_WRITE_REMOVE)
			cur[u] = NULL, dirty[u] = true;
	}
	dk = palloc(sizeof(Datum) * nu);
	dv = palloc(sizeof(Datum) * nu);
	dvn = palloc(sizeof(bool) * nu);
	for (int u = 0; u < nu; u++)
		if (dirty[u])
		{
			dk[nd] = PointerGetDatum(uniq[u]);
			dv[nd] = PointerGetDatum(cur[u]);
			dvn[nd++] = cur[u] == NULL;		/* NULL: a tombstone */
		}
	if (nd == 0)
		return;
	{
		int			dims[1] = {nd};
		int			lbs[1] = {1};

		a[1] = PointerGetDatum(construct_array(dk, nd, TEXTOID, -1, false, TYPALIGN_INT));
		a[2] = PointerGetDatum(construct_md_array(dv, dvn, 1, dims, lbs, JSONBOID, -1, false, TYPALIGN_INT));
	}
	rc = SPI_execute_plan(plan(PLAN_PUT_MANY), a, NULL, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "writing the batch failed: %s", SPI_result_code_string(rc));
	if (SPI_processed > 0)
	{
		bool		isnull;
		int			ord = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		char	   *err = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
		text	   *bad = ord >= 1 && ord <= nd ? DatumGetTextPP(dk[ord - 1]) : map;

		ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
						errmsg("processor batch on map \"%s\": key \"%s\" could not be written: %s",
							   text_to_cstring(map), text_to_cstring(bad), err),
						errdetail("A batch is all or nothing.")));
	}
}

/*
 * topgun.execute_on_keys(map, keys text[], processor, args) → {key: response}.
 * All keys in the caller's transaction; their bucket locks first, in lock
 * order (two batches never deadlock); then the keys in the given order, a
 * duplicate running twice with the last response kept.
 */
Datum
tg_execute_on_keys(PG_FUNCTION_ARGS)
{
	text	   *map,
			   *name;
	ArrayType  *keys;
	Jsonb	   *args;
	Datum	   *kd;
	bool	   *kn;
	int			nk;
	Proc		p;
	JsonbParseState *st = NULL;
	JsonbValue *res;
	JsonbValue	k,
				v;
	text	  **ordered;
	Jsonb	   *out;
	MemoryContext outer = CurrentMemoryContext;

	check_args(fcinfo);
	map = PG_GETARG_TEXT_PP(0);
	keys = PG_GETARG_ARRAYTYPE_P(1);
	name = PG_GETARG_TEXT_PP(2);
	args = PG_ARGISNULL(3) ? NULL : PG_GETARG_JSONB_P(3);
	if (ARR_NDIM(keys) > 1)
		ereport(ERROR, (errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR), errmsg("keys must be a one-dimensional array")));
	deconstruct_array(keys, TEXTOID, -1, false, TYPALIGN_INT, &kd, &kn, &nk);
	if (nk > MAX_BATCH_KEYS)
		ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						errmsg("at most %d keys per batch", MAX_BATCH_KEYS)));
	ordered = palloc(sizeof(text *) * Max(nk, 1));
	for (int i = 0; i < nk; i++)
	{
		if (kn[i])
			ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("keys must not contain NULL")));
		ordered[i] = DatumGetTextPP(kd[i]);
	}
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (!find_processor(name, &p))
	{
		Jsonb	   *unk = unknown_processor(name);

		for (int i = 0; i < nk; i++)
			kd[i] = PointerGetDatum(unk);
	}
	else
	{
		MemoryContext keep = CurrentMemoryContext;
		MemoryContext perkey = AllocSetContextCreate(keep, "topgun execute_on_keys key", ALLOCSET_DEFAULT_SIZES);

		uint64	   *ids = palloc(sizeof(uint64) * Max(nk, 1));

		/* the buckets in tg_lock_keys' order (unsigned), or the two could deadlock */
		for (int i = 0; i < nk; i++)
		{
			uint32		mh,
						kh;

			key_hashes(map, ordered[i], &mh, &kh);
			ids[i] = bucket_id(mh, kh);
		}
		qsort(ids, nk, sizeof(uint64), cmp_uint64);
		for (int i = 0; i < nk; i++)
			if (i == 0 || ids[i - 1] != ids[i])
				DirectFunctionCall1(pg_advisory_xact_lock_int8, Int64GetDatum((int64) ids[i]));
		if (p.builtin >= 0)
		{
			Jsonb	  **resp = palloc(sizeof(Jsonb *) * Max(nk, 1));

			tg_execute_builtin_keys(map, ordered, nk, p.builtin, args, resp);
			for (int i = 0; i < nk; i++)
				kd[i] = PointerGetDatum(resp[i]);
		}
		else
		{
			MemoryContextSwitchTo(perkey);
			for (int i = 0; i < nk; i++)
			{
				Jsonb	   *r = process_key(map, ordered[i], &p, args);
				MemoryContext old = MemoryContextSwitchTo(keep);

				kd[i] = PointerGetDatum(DatumGetJsonbPCopy(PointerGetDatum(r)));
				MemoryContextSwitchTo(old);
				MemoryContextReset(perkey);
			}
			MemoryContextSwitchTo(keep);
		}
	}
	pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
	for (int i = 0; i < nk; i++)
	{
		Jsonb	   *r = DatumGetJsonbP(kd[i]);

		k.type = jbvString;
		k.val.string.val = VARDATA_ANY(ordered[i]);
		k.val.string.len = VARSIZE_ANY_EXHDR(ordered[i]);
		pushJsonbValue(&st, WJB_KEY, &k);
		v.type = jbvBinary;
		v.val.binary.data = &r->root;
		v.val.binary.len = VARSIZE(r) - VARHDRSZ;
		pushJsonbValue(&st, WJB_VALUE, &v);
	}
	res = pushJsonbValue(&st, WJB_END_OBJECT, NULL);
	out = JsonbValueToJsonb(res);
	out = (Jsonb *) SPI_datumTransfer(PointerGetDatum(out), false, -1);
	SPI_finish();
	MemoryContextSwitchTo(outer);
	PG_RETURN_JSONB_P(out);
}
