/*
 * pg_builtins.c — the native built-ins on jsonb values: one processor run
 * (tg_logic_run_builtin, used by pg_execute.c), one built-in resolver step
 * (tg_logic_resolve_builtin, chained by pg_resolve.c), the glob used for
 * key/map patterns, and the module's settings.
 */
#include "postgres.h"

#include "core/storage.h"
#include "logic/lock_shm.h"
#include "logic/logic_pg.h"
#include "logic/processors.h"
#include "logic/resolvers.h"

#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

PG_FUNCTION_INFO_V1(tg_glob_match);
PG_FUNCTION_INFO_V1(tg_is_builtin);


static bool sql_write_resolvers = true;

/* Module initialisation (from _PG_init): settings and the lock table. */
void
tg_logic_init(void)
{
	DefineCustomBoolVariable("topgun.sql_write_resolvers",
							 "Run the conflict resolvers registered with apply_to_sql on LWW writes made from SQL.",
							 "The sync server turns this off in its own sessions: it resolves client writes "
							 "with topgun.resolve_ops before applying them.",
							 &sql_write_resolvers, true, PGC_USERSET, 0, NULL, NULL, NULL);
	tg_lock_shm_init();
}

static void *
arena_palloc(size_t n)
{
	return palloc_extended(n, MCXT_ALLOC_NO_OOM);
}

static void
arena_pfree(void *p)
{
	pfree(p);
}

/* one jsonb scalar as jv (NULL on arena failure) */
static Jv *
jsonb_scalar_jv(JvArena *a, const JsonbValue *v)
{
	switch (v->type)
	{
		case jbvNull:
			return jv_new(a, JV_NULL);
		case jbvBool:
			return jv_bool(a, v->val.boolean);
		case jbvString:
			return jv_str(a, v->val.string.val, (size_t) v->val.string.len);
		case jbvNumeric:
			{
				char	   *txt = DatumGetCString(DirectFunctionCall1(numeric_out,
																	  NumericGetDatum(v->val.numeric)));
				size_t		n = strlen(txt);
				char	   *keep = jv_alloc(a, n + 1);
				Jv		   *x = jv_new(a, JV_NUM);

				if (keep == NULL || x == NULL)
					return NULL;
				memcpy(keep, txt, n + 1);
				pfree(txt);
				x->numtxt = keep;
				x->numlen = n;
				x->num = strtod(keep, NULL);
				return x;
			}
		default:
			elog(ERROR, "unexpected jsonb value type %d", (int) v->type);
	}
	return NULL;
}

/* processors and resolvers see values nested at most this deep */
#define JV_MAX_DEPTH 1000

static void
jv_from_jsonb_fail(const char *why)
{
	ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					errmsg("value too large or too deeply nested for a processor: %s", why)));
}

/*
 * jsonb → jv; NULL datum → undefined.  Walks the stored value directly: the
 * same document as printing it (JsonbToCString) and parsing the text with
 * jv_parse, which it replaces (that round trip was most of a resolver's
 * reading of the stored record).  Members come in jsonb's storage order,
 * which is the order the text had; a number keeps numeric_out's text and is
 * read with strtod, as the parser does; the depth limit is the parser's.
 */
static Jv *
jv_from_jsonb(JvArena *a, Jsonb *jb)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	Jv		   *stack[JV_MAX_DEPTH];	/* the open containers */
	int			depth = 0;
	Jv		   *root = NULL;
	const char *key = NULL;
	size_t		klen = 0;

	if (jb == NULL)
		return jv_new(a, JV_UNDEF);
	if (JB_ROOT_IS_SCALAR(jb))
	{
		if (!JsonbExtractScalar(&jb->root, &v))
			elog(ERROR, "a scalar jsonb without its scalar");
		return jsonb_scalar_jv(a, &v);
	}
	it = JsonbIteratorInit(&jb->root);
	while ((tok = JsonbIteratorNext(&it, &v, false)) != WJB_DONE)
	{
		Jv		   *x;

		switch (tok)
		{
			case WJB_KEY:
				key = v.val.string.val;
				klen = v.val.string.len;
				continue;
			case WJB_END_ARRAY:
			case WJB_END_OBJECT:
				depth--;
				continue;
			case WJB_BEGIN_ARRAY:
			case WJB_BEGIN_OBJECT:
				x = jv_new(a, tok == WJB_BEGIN_ARRAY ? JV_ARR : JV_OBJ);
				break;
			default:			/* WJB_VALUE, WJB_ELEM */
				x = jsonb_scalar_jv(a, &v);
				break;
		}
		if (x == NULL)
			jv_from_jsonb_fail("out of memory");
		if (depth == 0)
			root = x;
		else if (stack[depth - 1]->t == JV_ARR ? !jv_arr_push(a, stack[depth - 1], x)
				 : !jv_obj_set(a, stack[depth - 1], key, klen, x))
			jv_from_jsonb_fail("out of memory");
		if (tok == WJB_BEGIN_ARRAY || tok == WJB_BEGIN_OBJECT)
		{
			if (depth >= JV_MAX_DEPTH)
				jv_from_jsonb_fail("nested too deeply");
			stack[depth++] = x;
		}
	}
	return root;
}

/* jv → jsonb (storage form); NULL when it cannot be stored (NaN, ±Infinity). */
static Datum
jv_to_jsonb(JvArena *a, const Jv *v, bool *ok)
{
	JvBuf		b;

	jv_buf_init(&b, a);
	*ok = jv_stringify(&b, v, true);
	if (!*ok)
		return (Datum) 0;
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(b.data));
}

static size_t
arena_limit(void)
{
	return (size_t) tg_max_value_bytes * 16 + 1024 * 1024;
}

/*
 * Run built-in `id` on the current value (NULL: absent) and args; the
 * response object {success, result?, newValue?, error?} and what to write.
 */
Jsonb *
tg_logic_run_builtin(int id, Jsonb *cur, Jsonb *args, bool args_absent, TgWrite *write, Jsonb **new_value)
{
	JvArena		a;
	TgProcOut	out;
	JsonbParseState *st = NULL;
	JsonbValue	k,
				v;
	JsonbValue *res;
	bool		ok_res = true,
				ok_new = true;
	Datum		rj = (Datum) 0,
				nj = (Datum) 0;

	*write = TG_WRITE_NONE;
	*new_value = NULL;
	jv_arena_init(&a, arena_palloc, arena_pfree, arena_limit());
	tg_proc_run(id, &a, jv_from_jsonb(&a, cur), args_absent ? jv_new(&a, JV_UNDEF) : jv_from_jsonb(&a, args), &out);
	if (out.success)
	{
		if (out.result->t != JV_UNDEF && out.result->t != JV_HOLE)
			rj = jv_to_jsonb(&a, out.result, &ok_res);
		if (out.new_value == out.result && rj != (Datum) 0)
			nj = rj, ok_new = ok_res;	/* the same value (the arithmetic built-ins): stored once */
		else if (out.new_value->t != JV_UNDEF && out.new_value->t != JV_HOLE)
			nj = jv_to_jsonb(&a, out.new_value, &ok_new);
		if (!ok_res || !ok_new)
		{
			out.success = false;
			out.error = "the processor's result is not a finite number (NaN and Infinity cannot be stored as JSON)";
		}
		else if (nj != (Datum) 0 && !tg_jsonb_is_null(DatumGetJsonbP(nj)))
		{
			*write = TG_WRITE_SET;
			*new_value = DatumGetJsonbP(nj);
		}
		else if (cur != NULL)
			*write = TG_WRITE_REMOVE;
	}
	pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
	k.type = jbvString;
#define PUT_KEY(s) (k.val.string.val = (s), k.val.string.len = strlen(s), pushJsonbValue(&st, WJB_KEY, &k))
#define PUT_JSONB(d) (v.type = jbvBinary, v.val.binary.data = &DatumGetJsonbP(d)->root, \
		v.val.binary.len = VARSIZE(DatumGetJsonbP(d)) - VARHDRSZ, pushJsonbValue(&st, WJB_VALUE, &v))
	PUT_KEY("success");
	v.type = jbvBool;
	v.val.boolean = out.success;
	pushJsonbValue(&st, WJB_VALUE, &v);
	if (out.success && rj != (Datum) 0)
	{
		PUT_KEY("result");
		PUT_JSONB(rj);
	}
	if (out.success && nj != (Datum) 0)
	{
		PUT_KEY("newValue");
		PUT_JSONB(nj);
	}
	if (!out.success)
	{
		PUT_KEY("error");
		v.type = jbvString;
		v.val.string.val = (char *) out.error;
		v.val.string.len = strlen(out.error);
		pushJsonbValue(&st, WJB_VALUE, &v);
	}
	res = pushJsonbValue(&st, WJB_END_OBJECT, NULL);
#undef PUT_KEY
#undef PUT_JSONB
	return JsonbValueToJsonb(res);
}

/*
 * One built-in resolver step on stored/incoming jsonb (local NULL: absent;
 * remote NULL: a delete).  Returns the action; *value is the merged value
 * (merge only: accept means the op's own value), *reason is set for reject
 * and for a skipped (failed) resolver.  A merged value that is not finite
 * counts as failed.  Values a resolver does not read are not converted.
 */
TgResAction
tg_logic_resolve_builtin(int id, Jsonb *local, bool has_local_ts, Jsonb *remote, int remote_vs_local,
						 text *key, text *identity, bool is_server, Jsonb **value, const char **reason)
{
	JvArena		a;
	TgResCtx	ctx;
	TgResOut	out;
	bool		need_local,
				need_remote;

	*value = NULL;
	*reason = NULL;
	jv_arena_init(&a, arena_palloc, arena_pfree, arena_limit());
	memset(&ctx, 0, sizeof(ctx));
	tg_res_reads(id, &need_local, &need_remote);
	/* values the resolver does not look into are not converted (placeholders) */
	ctx.local = local == NULL ? jv_new(&a, JV_UNDEF) : need_local ? jv_from_jsonb(&a, local) : jv_new(&a, JV_NULL);
	ctx.has_local_ts = has_local_ts;
	ctx.remote = remote && need_remote ? jv_from_jsonb(&a, remote) : jv_new(&a, JV_NULL);
	ctx.remote_vs_local = remote_vs_local;
	ctx.key = VARDATA_ANY(key);
	ctx.key_len = VARSIZE_ANY_EXHDR(key);
	if (identity)
	{
		ctx.user_id = VARDATA_ANY(identity);
		ctx.user_id_len = VARSIZE_ANY_EXHDR(identity);
	}
	ctx.is_server = is_server;
	tg_res_run(id, &a, &ctx, &out);
	/* accept means the op's own value: only a merged value is converted */
	if (out.action == TG_RES_MERGE &&
		out.value != NULL && out.value->t != JV_UNDEF && out.value->t != JV_HOLE)
	{
		bool		ok;
		Datum		d = jv_to_jsonb(&a, out.value, &ok);

		if (!ok)
		{
			out.action = TG_RES_THROW;
			out.reason = "the merged value is not a finite number";
		}
		else
			*value = DatumGetJsonbP(d);
	}
	if (out.reason)
		*reason = pstrdup(out.reason);
	jv_arena_free(&a);
	return out.action;
}

/* topgun._glob(pattern text, s text): `*` any run, `?` one character, anchored. */
Datum
tg_glob_match(PG_FUNCTION_ARGS)
{
	text	   *p = PG_GETARG_TEXT_PP(0);
	text	   *s = PG_GETARG_TEXT_PP(1);

	PG_RETURN_BOOL(tg_res_glob(VARDATA_ANY(p), VARSIZE_ANY_EXHDR(p), VARDATA_ANY(s), VARSIZE_ANY_EXHDR(s)));
}

/* topgun._is_builtin(kind 'processor'|'resolver', name text) */
Datum
tg_is_builtin(PG_FUNCTION_ARGS)
{
	text	   *kind = PG_GETARG_TEXT_PP(0);
	text	   *name = PG_GETARG_TEXT_PP(1);
	bool		proc = VARSIZE_ANY_EXHDR(kind) == 9 && memcmp(VARDATA_ANY(kind), "processor", 9) == 0;

	PG_RETURN_BOOL(proc ? tg_proc_find(VARDATA_ANY(name), VARSIZE_ANY_EXHDR(name)) >= 0
				   : tg_res_find(VARDATA_ANY(name), VARSIZE_ANY_EXHDR(name)) >= 0);
}
