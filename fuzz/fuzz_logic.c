/*
 * fuzz_logic.c — libFuzzer target for the jv JSON parser and every built-in
 * entry processor and conflict resolver (client-controlled args and values).
 * Input: first byte picks the processor/resolver, the rest splits at the
 * first NUL into the current value and the args / remote value (JSON text).
 * Checks that accepted JSON re-stringifies to JSON the parser accepts, and
 * that no processor or resolver crashes or escapes the arena limit.
 */
#include <stdlib.h>
#include <string.h>

#include "logic/jv.h"
#include "logic/processors.h"
#include "logic/resolvers.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void *
fz_malloc(size_t n)
{
	return malloc(n);
}

static Jv *
parse_or_undef(JvArena *a, const char *s, size_t n)
{
	const char *err;
	Jv		   *v = jv_parse(a, s, n, 200, false, &err);

	return v ? v : jv_new(a, JV_UNDEF);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	JvArena		a;
	const char *s = (const char *) data + 1;
	size_t		n = size ? size - 1 : 0;
	const char *nul = memchr(s, '\0', n);
	size_t		n1 = nul ? (size_t) (nul - s) : n;
	Jv		   *cur,
			   *arg;
	TgProcOut	out;
	TgResOut	ro;
	TgResCtx	ctx;
	JvBuf		b;

	if (size == 0)
		return 0;
	jv_arena_init(&a, fz_malloc, free, 1 << 20);
	cur = parse_or_undef(&a, s, n1);
	arg = nul ? parse_or_undef(&a, nul + 1, n - n1 - 1) : jv_new(&a, JV_UNDEF);
	if (cur == NULL || arg == NULL)
	{
		jv_arena_free(&a);
		return 0;
	}
	/* round trip: stringify(parse(x)) parses again */
	jv_buf_init(&b, &a);
	if (cur->t != JV_UNDEF && jv_stringify(&b, cur, true))
	{
		const char *err;

		if (jv_parse(&a, b.data, b.len, 201, false, &err) == NULL && !a.failed)
			abort();
	}
	if (data[0] & 0x80)
	{
		memset(&ctx, 0, sizeof(ctx));
		ctx.local = cur;
		ctx.has_local_ts = cur->t != JV_UNDEF;
		ctx.remote = arg->t == JV_UNDEF ? jv_new(&a, JV_NULL) : arg;
		ctx.remote_vs_local = (data[0] & 1) ? 1 : -1;
		ctx.user_id = "u1";
		ctx.user_id_len = 2;
		if (ctx.remote != NULL)
			tg_res_run((data[0] & 0x7f) % TG_RES_COUNT, &a, &ctx, &ro);
	}
	else
		tg_proc_run(data[0] % TG_PROC_COUNT, &a, cur, arg, &out);
	if (a.limit && a.used > a.limit)
		abort();
	jv_arena_free(&a);
	return 0;
}
