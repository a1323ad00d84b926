/*
 * resolvers.c — the built-in conflict resolvers on the jv model.  Each is
 * the reference's JavaScript transcribed, TypeErrors included (they become
 * TG_RES_THROW, which the chain skips).  Differences: `owner_only` and
 * `server_only` read the authenticated identity and roles (the reference
 * passes no auth, so owner_only rejects every change to an owned entry and
 * server_only only looks at the connection id).
 */
#include "logic/resolvers.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static void
answer(TgResOut *o, TgResAction act, Jv *value, const char *reason)
{
	o->action = act;
	o->value = value;
	o->reason = reason;
}

static Jv *
member(Jv *v, const char *k, size_t klen)
{
	Jv		   *m = v && v->t == JV_OBJ ? jv_obj_get(v, k, klen) : NULL;

	return m;					/* NULL: undefined */
}

static void
numeric(JvArena *a, const TgResCtx *c, TgResOut *o, bool max)
{
	double		l = JV_IS_NULLISH(c->local) ? (max ? -INFINITY : INFINITY) : jv_to_number(a, c->local);
	double		r = jv_to_number(a, c->remote);
	double		v;

	if (isnan(l) || isnan(r))
		v = NAN;
	else if (max)
		v = (l > r || (l == r && !signbit(l))) ? l : r;
	else
		v = (l < r || (l == r && signbit(l))) ? l : r;
	answer(o, TG_RES_MERGE, jv_num(a, v), NULL);
}

/* SameValueZero on primitives, identity on objects (a JavaScript Set). */
static bool
same_value_zero(const Jv *x, const Jv *y)
{
	if (x->t == JV_NUM && y->t == JV_NUM && isnan(x->num) && isnan(y->num))
		return true;
	if (x->t == JV_ARR || x->t == JV_OBJ)
		return x == y;
	return jv_strict_equal(x, y);
}

/* [...v]: arrays and strings are iterable, undefined/null become [] here. */
static bool
iterate_into(JvArena *a, Jv *out, Jv *v)
{
	for (size_t i = 0; i < v->len; i++)
	{
		Jv		   *it = v->t == JV_ARR ? v->items[i] : jv_str(a, v->s + i, 1);
		bool		seen = false;

		if (it == NULL)
			return false;
		if (it->t == JV_HOLE)
			it = jv_new(a, JV_UNDEF);
		for (size_t j = 0; j < out->len && !seen; j++)
			seen = same_value_zero(out->items[j], it);
		if (!seen && !jv_arr_push(a, out, it))
			return false;
	}
	return true;
}

static void
array_union(JvArena *a, const TgResCtx *c, TgResOut *o)
{
	Jv		   *out = jv_new(a, JV_ARR);

	if (!JV_IS_NULLISH(c->local) && c->local->t != JV_ARR && c->local->t != JV_STR)
		return answer(o, TG_RES_THROW, NULL, "local is not iterable");
	if (!JV_IS_NULLISH(c->remote) && c->remote->t != JV_ARR && c->remote->t != JV_STR)
		return answer(o, TG_RES_THROW, NULL, "remote is not iterable");
	if (out == NULL ||
		(!JV_IS_NULLISH(c->local) && !iterate_into(a, out, c->local)) ||
		(!JV_IS_NULLISH(c->remote) && !iterate_into(a, out, c->remote)))
		return answer(o, TG_RES_THROW, NULL, "out of memory");
	answer(o, TG_RES_MERGE, out, NULL);
}

static Jv *
deep_merge(JvArena *a, const Jv *target, const Jv *source, int depth, const char **err)
{
	Jv		   *res = jv_new(a, JV_OBJ);

	if (JV_IS_NULLISH(source))
	{
		*err = "Cannot convert undefined or null to object";
		return NULL;
	}
	if (res == NULL || depth > 64 || !jv_spread(a, res, target))
	{
		*err = depth > 64 ? "nested too deeply" : "out of memory";
		return NULL;
	}
	if (source->t == JV_OBJ)
		for (size_t i = 0; i < source->len; i++)
		{
			const JvMember *m = &source->members[i];
			Jv		   *v = m->val;

			if (v->t == JV_OBJ)
				v = deep_merge(a, jv_obj_get(res, m->key, m->klen), v, depth + 1, err);
			if (v == NULL || !jv_obj_set(a, res, m->key, m->klen, v))
				return NULL;
		}
	else if (!jv_spread(a, res, source))
		return NULL;
	return res;
}

static void
version_increment(JvArena *a, const TgResCtx *c, TgResOut *o)
{
	Jv		   *lv = member(c->local, "version", 7);
	Jv		   *rv = member(c->remote, "version", 7);
	Jv		   *expected = jv_add(a, JV_IS_NULLISH(lv) ? jv_num(a, 0) : lv, jv_num(a, 1));
	Jv		   *got = JV_IS_NULLISH(rv) ? jv_num(a, 0) : rv;
	Jv		   *es,
			   *gs;
	char	   *msg;
	size_t		n;

	if (expected == NULL || got == NULL)
		return answer(o, TG_RES_THROW, NULL, "out of memory");
	if (rv != NULL && jv_strict_equal(rv, expected))
		return answer(o, TG_RES_ACCEPT, c->remote, NULL);
	es = jv_to_string(a, expected);
	gs = jv_to_string(a, got);
	n = (es ? es->len : 0) + (gs ? gs->len : 0) + 40;
	msg = jv_alloc(a, n);
	if (msg == NULL || es == NULL || gs == NULL)
		return answer(o, TG_RES_THROW, NULL, "out of memory");
	snprintf(msg, n, "Version conflict: expected %.*s, got %.*s", (int) es->len, es->s, (int) gs->len, gs->s);
	answer(o, TG_RES_REJECT, NULL, msg);
}

static void
owner_only(JvArena *a, const TgResCtx *c, TgResOut *o)
{
	Jv		   *owner = JV_IS_NULLISH(c->local) ? NULL : member(c->local, "ownerId", 7);

	if (owner != NULL && jv_truthy(owner) &&
		!(owner->t == JV_STR && c->user_id != NULL && owner->len == c->user_id_len &&
		  memcmp(owner->s, c->user_id, owner->len) == 0))
		return answer(o, TG_RES_REJECT, NULL, "Only owner can modify this entry");
	answer(o, TG_RES_ACCEPT, c->remote, NULL);
}

/*
 * reads: which values a resolver looks into (beyond whether a local value
 * exists); the others may be given a placeholder (tg_res_reads).
 */
#define R_LOCAL 1
#define R_REMOTE 2

static const struct
{
	const char *name;
	int			priority;
	int			reads;
}			builtins[TG_RES_COUNT] = {
	{"builtin:lww", 0, 0},
	{"builtin:first_write_wins", 100, 0},
	{"builtin:numeric_min", 50, R_LOCAL | R_REMOTE},
	{"builtin:numeric_max", 50, R_LOCAL | R_REMOTE},
	{"builtin:non_negative", 90, R_REMOTE},
	{"builtin:array_union", 50, R_LOCAL | R_REMOTE},
	{"builtin:deep_merge", 50, R_LOCAL | R_REMOTE},
	{"builtin:server_only", 100, 0},
	{"builtin:owner_only", 95, R_LOCAL},
	{"builtin:immutable", 100, 0},
	{"builtin:version_increment", 90, R_LOCAL | R_REMOTE},
};

void
tg_res_reads(int id, bool *local, bool *remote)
{
	int			r = id >= 0 && id < TG_RES_COUNT ? builtins[id].reads : R_LOCAL | R_REMOTE;

	*local = (r & R_LOCAL) != 0;
	*remote = (r & R_REMOTE) != 0;
}

int
tg_res_find(const char *name, size_t len)
{
	for (int i = 0; i < TG_RES_COUNT; i++)
		if (strlen(builtins[i].name) == len && memcmp(builtins[i].name, name, len) == 0)
			return i;
	return -1;
}

const char *
tg_res_name(int id)
{
	return id >= 0 && id < TG_RES_COUNT ? builtins[id].name : NULL;
}

int
tg_res_default_priority(int id)
{
	return id >= 0 && id < TG_RES_COUNT ? builtins[id].priority : 50;
}

void
tg_res_run(int id, JvArena *a, const TgResCtx *c, TgResOut *o)
{
	const char *err = NULL;
	Jv		   *v;
	bool		has_local = c->local != NULL && c->local->t != JV_UNDEF;

	switch (id)
	{
		case 0:					/* lww */
			if (!c->has_local_ts || c->remote_vs_local > 0)
				return answer(o, TG_RES_ACCEPT, c->remote, NULL);
			return answer(o, TG_RES_LOCAL, NULL, NULL);
		case 1:					/* first_write_wins */
			if (has_local)
				return answer(o, TG_RES_REJECT, NULL, "Entry already exists");
			return answer(o, TG_RES_ACCEPT, c->remote, NULL);
		case 2:
		case 3:
			return numeric(a, c, o, id == 3);
		case 4:					/* non_negative */
			if (c->remote == NULL || c->remote->t != JV_NUM || c->remote->num < 0)
				return answer(o, TG_RES_REJECT, NULL, "Value cannot be negative");
			return answer(o, TG_RES_ACCEPT, c->remote, NULL);
		case 5:
			return array_union(a, c, o);
		case 6:
			v = deep_merge(a, c->local, c->remote, 0, &err);
			if (v == NULL)
				return answer(o, TG_RES_THROW, NULL, err ? err : "out of memory");
			return answer(o, TG_RES_MERGE, v, NULL);
		case 7:					/* server_only */
			if (c->is_server)
				return answer(o, TG_RES_ACCEPT, c->remote, NULL);
			return answer(o, TG_RES_REJECT, NULL, "Only server can write to this entry");
		case 8:
			return owner_only(a, c, o);
		case 9:					/* immutable */
			if (has_local)
				return answer(o, TG_RES_REJECT, NULL, "Entry is immutable");
			return answer(o, TG_RES_ACCEPT, c->remote, NULL);
		case 10:
			return version_increment(a, c, o);
		default:
			return answer(o, TG_RES_THROW, NULL, "unknown resolver");
	}
}

bool
tg_res_glob(const char *p, size_t plen, const char *s, size_t slen)
{
	size_t		pi = 0,
				si = 0,
				star = (size_t) -1,
				mark = 0;

	/* iterative wildcard match with one backtrack point (linear in practice) */
	while (si < slen)
	{
		if (pi < plen && p[pi] == '*')
		{
			star = pi++;
			mark = si;
		}
		else if (pi < plen && (p[pi] == '?' || p[pi] == s[si]))
		{
			/* `?` is one character: skip a whole UTF-8 sequence */
			if (p[pi] == '?')
				while (si + 1 < slen && ((unsigned char) s[si + 1] & 0xC0) == 0x80)
					si++;
			pi++;
			si++;
		}
		else if (star != (size_t) -1)
		{
			pi = star + 1;
			si = ++mark;
		}
		else
			return false;
	}
	while (pi < plen && p[pi] == '*')
		pi++;
	return pi == plen;
}
