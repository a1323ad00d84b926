/*
 * processors.c — the built-in entry processors, each one the JavaScript of
 * core/EntryProcessor.ts transcribed onto the jv model, including the
 * TypeErrors V8 raises (their message becomes `error`, as in the reference's
 * fallback sandbox).  One deliberate difference: set_property and
 * delete_property treat every path segment as a literal key, so
 * "__proto__.x" creates a member named "__proto__" instead of polluting a
 * prototype.
 */
#include "logic/processors.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct Ctx
{
	JvArena    *a;
	TgProcOut  *out;
} Ctx;

static Jv	undef_value = {JV_UNDEF};
static Jv	hole_value = {JV_HOLE};

#define UNDEF (&undef_value)

static bool
throw_msg(Ctx *c, const char *fmt, const char *what, size_t wlen)
{
	size_t		n = strlen(fmt) + wlen + 1;
	char	   *m = jv_alloc(c->a, n);

	if (m == NULL)
		return false;
	snprintf(m, n, fmt, (int) wlen, what);
	c->out->success = false;
	c->out->error = m;
	c->out->result = UNDEF;
	c->out->new_value = UNDEF;
	return true;
}

static bool
done(Ctx *c, Jv *value, Jv *result)
{
	if (value == NULL || result == NULL)
		return false;
	c->out->success = true;
	c->out->new_value = value;
	c->out->result = result;
	return true;
}

/*
 * v[key] for any value.  Reading from null/undefined is a TypeError
 * (*thrown = true and out->error set); other primitives have no properties
 * except a string's length and characters.
 */
static Jv *
prop_get(Ctx *c, Jv *v, const char *k, size_t klen, bool *thrown)
{
	uint32_t	idx;

	*thrown = false;
	if (JV_IS_NULLISH(v))
	{
		*thrown = true;
		throw_msg(c, v && v->t == JV_NULL ? "Cannot read properties of null (reading '%.*s')"
				  : "Cannot read properties of undefined (reading '%.*s')", k, klen);
		return NULL;
	}
	if (v->t == JV_OBJ)
	{
		Jv		   *m = jv_obj_get(v, k, klen);

		return m ? m : UNDEF;
	}
	if (v->t == JV_ARR || v->t == JV_STR)
	{
		if (klen == 6 && memcmp(k, "length", 6) == 0)
			return jv_num(c->a, (double) v->len);
		if (jv_array_index(k, klen, &idx) && idx < v->len)
			return v->t == JV_ARR ? v->items[idx] : jv_str(c->a, v->s + idx, 1);
	}
	return UNDEF;
}

/* v[key] = x in sloppy mode: primitives ignore it. */
static bool
prop_set(Ctx *c, Jv *v, const char *k, size_t klen, Jv *x)
{
	uint32_t	idx;

	if (v->t == JV_OBJ)
		return jv_obj_set(c->a, v, k, klen, x);
	if (v->t == JV_ARR && jv_array_index(k, klen, &idx) && idx < 1u << 20)
	{
		while (v->len <= idx)
			if (!jv_arr_push(c->a, v, jv_new(c->a, JV_HOLE)))
				return false;
		v->items[idx] = x;
	}
	return true;
}

static void
prop_delete(Jv *v, const char *k, size_t klen)
{
	uint32_t	idx;

	if (v->t == JV_OBJ)
		jv_obj_delete(v, k, klen);
	else if (v->t == JV_ARR && jv_array_index(k, klen, &idx) && idx < v->len)
		v->items[idx] = &hole_value;
}

static Jv *
or_default(Jv *v, Jv *dflt)
{
	return JV_IS_NULLISH(v) ? dflt : v;
}

static bool
arith(Ctx *c, Jv *value, Jv *args, char op)
{
	JvArena    *a = c->a;
	Jv		   *cur = or_default(value, jv_num(a, op == '*' ? 1 : 0));
	Jv		   *nv;

	if (cur == NULL)
		return false;
	if (op == '+')
		nv = jv_add(a, cur, args);
	else if (op == '*')
		nv = jv_num(a, jv_to_number(a, cur) * jv_to_number(a, args));
	else
		nv = jv_num(a, jv_to_number(a, cur) - jv_to_number(a, args));
	return done(c, nv, nv);
}

static bool
p_increment(Ctx *c, Jv *v, Jv *args)
{
	return arith(c, v, args, '+');
}

static bool
p_decrement(Ctx *c, Jv *v, Jv *args)
{
	return arith(c, v, args, '-');
}

static bool
p_multiply(Ctx *c, Jv *v, Jv *args)
{
	return arith(c, v, args, '*');
}

static bool
p_decrement_floor(Ctx *c, Jv *v, Jv *args)
{
	JvArena    *a = c->a;
	Jv		   *zero = jv_num(a, 0);
	Jv		   *cur = or_default(v, zero);
	double		target,
				nv;
	Jv		   *res = jv_new(a, JV_OBJ);
	Jv		   *nvj;

	if (cur == NULL || res == NULL)
		return false;
	target = jv_to_number(a, cur) - jv_to_number(a, args);
	nv = isnan(target) ? target : (target > 0 ? target : 0);
	nvj = jv_num(a, nv);
	if (!jv_obj_set(a, res, "newValue", 8, nvj) ||
		!jv_obj_set(a, res, "wasFloored", 10, jv_bool(a, target < 0)))
		return false;
	return done(c, nvj, res);
}

static bool
p_put_if_absent(Ctx *c, Jv *v, Jv *args)
{
	if (v->t != JV_UNDEF)
		return done(c, v, jv_bool(c->a, false));
	return done(c, args, jv_bool(c->a, true));
}

static bool
p_replace(Ctx *c, Jv *v, Jv *args)
{
	if (v->t == JV_UNDEF)
		return done(c, UNDEF, UNDEF);
	return done(c, args, v);
}

static bool
p_replace_if_equals(Ctx *c, Jv *v, Jv *args)
{
	bool		thrown;
	Jv		   *expected = prop_get(c, args, "expected", 8, &thrown);

	if (thrown || expected == NULL)
		return thrown;
	if (jv_json_equal(c->a, v, expected))
	{
		Jv		   *nv = prop_get(c, args, "newValue", 8, &thrown);

		return done(c, nv, jv_bool(c->a, true));
	}
	return done(c, v, jv_bool(c->a, false));
}

static bool
p_delete_if_equals(Ctx *c, Jv *v, Jv *args)
{
	if (jv_json_equal(c->a, v, args))
		return done(c, UNDEF, jv_bool(c->a, true));
	return done(c, v, jv_bool(c->a, false));
}

static bool
p_array_push(Ctx *c, Jv *v, Jv *args)
{
	Jv		   *arr = JV_IS_NULLISH(v) ? jv_new(c->a, JV_ARR) : v;

	if (arr == NULL)
		return false;
	if (arr->t != JV_ARR)
		return throw_msg(c, "arr.push is not a function%.*s", "", 0);
	if (!jv_arr_push(c->a, arr, args))
		return false;
	return done(c, arr, jv_num(c->a, (double) arr->len));
}

static bool
p_array_pop(Ctx *c, Jv *v, Jv *args)
{
	bool		thrown;
	Jv		   *len;

	if (!jv_truthy(v))
		return done(c, JV_IS_NULLISH(v) ? jv_new(c->a, JV_ARR) : v, UNDEF);
	len = prop_get(c, v, "length", 6, &thrown);
	if (len == NULL)
		return false;
	if (len->t == JV_NUM && len->num == 0)
		return done(c, v, UNDEF);
	if (v->t != JV_ARR)
		return throw_msg(c, "value.pop is not a function%.*s", "", 0);
	{
		Jv		   *removed = v->items[--v->len];

		return done(c, v, removed->t == JV_HOLE ? UNDEF : removed);
	}
}

static bool
p_array_remove(Ctx *c, Jv *v, Jv *args)
{
	if (!jv_truthy(v))
		return done(c, jv_new(c->a, JV_ARR), jv_bool(c->a, false));
	if (v->t != JV_ARR)
		return throw_msg(c, "value.findIndex is not a function%.*s", "", 0);
	for (size_t i = 0; i < v->len; i++)
		if (jv_json_equal(c->a, v->items[i], args))
		{
			memmove(&v->items[i], &v->items[i + 1], (v->len - i - 1) * sizeof(Jv *));
			v->len--;
			return done(c, v, jv_bool(c->a, true));
		}
	return done(c, v, jv_bool(c->a, false));
}

/* String(x).split('.') requires a string: anything else is the TypeError V8 gives. */
static bool
path_arg(Ctx *c, Jv *path, const char *expr, bool *thrown)
{
	*thrown = false;
	if (path != NULL && path->t == JV_STR)
		return true;
	*thrown = true;
	if (JV_IS_NULLISH(path))
		return throw_msg(c, path && path->t == JV_NULL ? "Cannot read properties of null (reading '%.*s')"
						 : "Cannot read properties of undefined (reading '%.*s')", "split", 5);
	return throw_msg(c, "%.*s.split is not a function", expr, strlen(expr));
}

static bool
p_set_property(Ctx *c, Jv *v, Jv *args)
{
	bool		thrown;
	Jv		   *obj = JV_IS_NULLISH(v) ? jv_new(c->a, JV_OBJ) : v;
	Jv		   *path = prop_get(c, args, "path", 4, &thrown);
	Jv		   *cur = obj;
	const char *seg,
			   *end;

	if (thrown || obj == NULL || path == NULL)
		return thrown;
	if (!path_arg(c, path, "args.path", &thrown))
		return false;
	if (thrown)
		return true;
	seg = path->s;
	end = path->s + path->len;
	for (;;)
	{
		const char *dot = memchr(seg, '.', (size_t) (end - seg));
		size_t		slen = (dot ? dot : end) - seg;
		Jv		   *next;

		if (dot == NULL)
		{
			Jv		   *val = prop_get(c, args, "value", 5, &thrown);

			if (JV_IS_NULLISH(cur) && cur->t != JV_HOLE)
				return throw_msg(c, cur->t == JV_NULL ? "Cannot set properties of null (setting '%.*s')"
								 : "Cannot set properties of undefined (setting '%.*s')", seg, slen);
			if (val == NULL || !prop_set(c, cur, seg, slen, val))
				return false;
			break;
		}
		next = prop_get(c, cur, seg, slen, &thrown);
		if (thrown || next == NULL)
			return thrown;
		if (JV_IS_NULLISH(next))
		{
			next = jv_new(c->a, JV_OBJ);
			if (next == NULL || !prop_set(c, cur, seg, slen, next))
				return false;
			/* a primitive ignored the write: reading it back gives undefined */
			if (cur->t != JV_OBJ && cur->t != JV_ARR)
				next = UNDEF;
		}
		cur = next;
		seg = dot + 1;
	}
	return done(c, obj, obj);
}

static bool
p_delete_property(Ctx *c, Jv *v, Jv *args)
{
	bool		thrown;
	Jv		   *cur = v;
	const char *seg,
			   *end;

	if (!jv_truthy(v))
		return done(c, v, UNDEF);
	if (!path_arg(c, args, "args", &thrown))
		return false;
	if (thrown)
		return true;
	seg = args->s;
	end = args->s + args->len;
	for (;;)
	{
		const char *dot = memchr(seg, '.', (size_t) (end - seg));
		size_t		slen = (dot ? dot : end) - seg;
		Jv		   *next = prop_get(c, cur, seg, slen, &thrown);

		if (thrown || next == NULL)
			return thrown;
		if (dot == NULL)
		{
			prop_delete(cur, seg, slen);
			return done(c, v, next);
		}
		if (!jv_truthy(next))
			return done(c, v, UNDEF);
		cur = next;
		seg = dot + 1;
	}
}

static bool
p_get(Ctx *c, Jv *v, Jv *args)
{
	return done(c, v, v);
}

static Jv *
flags(Ctx *c, bool updated)
{
	Jv		   *r = jv_new(c->a, JV_OBJ);

	if (r == NULL || !jv_obj_set(c->a, r, "updated", 7, jv_bool(c->a, updated)) ||
		!jv_obj_set(c->a, r, "conflict", 8, jv_bool(c->a, !updated)))
		return NULL;
	return r;
}

static bool
p_conditional_update(Ctx *c, Jv *v, Jv *args)
{
	bool		thrown;
	Jv		   *ver,
			   *expected,
			   *data,
			   *upd;

	if (!jv_truthy(v))
	{
		/* `!value ||` short-circuits before args is read */
		return done(c, v, flags(c, false));
	}
	ver = prop_get(c, v, "version", 7, &thrown);
	expected = ver ? prop_get(c, args, "expectedVersion", 15, &thrown) : NULL;
	if (thrown || expected == NULL)
		return thrown;
	if (!jv_strict_equal(ver, expected))
		return done(c, v, flags(c, false));
	data = prop_get(c, args, "newData", 7, &thrown);
	upd = jv_new(c->a, JV_OBJ);
	if (data == NULL || upd == NULL || !jv_spread(c->a, upd, v) || !jv_spread(c->a, upd, data) ||
		!jv_obj_set(c->a, upd, "version", 7, jv_add(c->a, or_default(ver, jv_num(c->a, 0)), jv_num(c->a, 1))))
		return false;
	return done(c, upd, flags(c, true));
}

static bool
p_merge(Ctx *c, Jv *v, Jv *args)
{
	Jv		   *m = jv_new(c->a, JV_OBJ);

	if (m == NULL || !jv_spread(c->a, m, v) || !jv_spread(c->a, m, args))
		return false;
	return done(c, m, m);
}

typedef bool (*ProcFn) (Ctx *c, Jv *v, Jv *args);

static const struct
{
	const char *name;
	ProcFn		fn;
}			procs[TG_PROC_COUNT] = {
	{"builtin:increment", p_increment},
	{"builtin:decrement", p_decrement},
	{"builtin:decrement_floor", p_decrement_floor},
	{"builtin:multiply", p_multiply},
	{"builtin:put_if_absent", p_put_if_absent},
	{"builtin:replace", p_replace},
	{"builtin:replace_if_equals", p_replace_if_equals},
	{"builtin:delete_if_equals", p_delete_if_equals},
	{"builtin:array_push", p_array_push},
	{"builtin:array_pop", p_array_pop},
	{"builtin:array_remove", p_array_remove},
	{"builtin:set_property", p_set_property},
	{"builtin:delete_property", p_delete_property},
	{"builtin:get", p_get},
	{"builtin:conditional_update", p_conditional_update},
	{"builtin:merge", p_merge},
};

int
tg_proc_find(const char *name, size_t len)
{
	for (int i = 0; i < TG_PROC_COUNT; i++)
		if (strlen(procs[i].name) == len && memcmp(procs[i].name, name, len) == 0)
			return i;
	return -1;
}

const char *
tg_proc_name(int id)
{
	return id >= 0 && id < TG_PROC_COUNT ? procs[id].name : NULL;
}

bool
tg_proc_run(int id, JvArena *a, Jv *value, Jv *args, TgProcOut *out)
{
	Ctx			c = {a, out};

	memset(out, 0, sizeof(*out));
	out->result = UNDEF;
	out->new_value = UNDEF;
	if (value == NULL)
		value = UNDEF;
	if (args == NULL)
		args = UNDEF;
	if (id < 0 || id >= TG_PROC_COUNT)
	{
		out->error = "unknown processor";
		return true;
	}
	if (!procs[id].fn(&c, value, args) || a->failed)
	{
		out->success = false;
		out->error = "processor ran out of memory (value too large)";
		out->result = UNDEF;
		out->new_value = UNDEF;
		return false;
	}
	return true;
}
