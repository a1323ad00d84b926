/*
 * message_live.c — QUERY_SUB (the Query and PredicateNode schemas) and
 * COUNTER_SYNC (PN-counter state in either shape).
 */
#include "wire/message_check.h"

/* ----------------------------------------------------------- queries */

static const char *const pred_ops[] = {
	"eq", "neq", "gt", "gte", "lt", "lte", "like", "regex", "and", "or", "not"
};

static bool
check_predicate(V *v, const MpNode *n, const char *path)
{
	const MpNode *op;
	const MpNode *f;
	bool		known = false;
	char		p[PATH_LEN];

	if (n->type != MP_MAP)
		return tgw_err(v, path, "expected a predicate map, got %s", tgw_got(n));
	tgw_subpath(p, path, "op");
	op = mp_map_get(n, "op");
	if (op == NULL)
		return tgw_err(v, p, "required");
	if (op->type != MP_STR)
		return tgw_err(v, p, "expected a string, got %s", tgw_got(op));
	for (size_t i = 0; i < sizeof(pred_ops) / sizeof(pred_ops[0]); i++)
		if (mp_str_eq(op, pred_ops[i]))
			known = true;
	if (!known)
		return tgw_err(v, p, "unsupported predicate operator '%.*s'",
					(int) (op->len > 32 ? 32 : op->len), op->v.s);

	f = mp_map_get(n, "attribute");
	if (f != NULL)
	{
		TgStr		dummy;

		tgw_subpath(p, path, "attribute");
		if (!tgw_check_str(v, f, p, 0, UINT32_MAX, 0, &dummy))
			return false;
	}
	f = mp_map_get(n, "children");
	if (f != NULL)
	{
		tgw_subpath(p, path, "children");
		if (f->type != MP_ARRAY)
			return tgw_err(v, p, "expected an array, got %s", tgw_got(f));
		for (uint32_t i = 0; i < f->len; i++)
		{
			char		cp[PATH_LEN];

			tgw_indexpath(cp, p, i);
			if (!check_predicate(v, &f->v.items[i], cp))
				return false;
		}
	}
	return true;
}

static bool
check_query(V *v, const MpNode *q, const char *path)
{
	const MpNode *f;
	char		p[PATH_LEN];

	f = mp_map_get(q, "where");
	if (f != NULL)
	{
		tgw_subpath(p, path, "where");
		if (f->type != MP_MAP)
			return tgw_err(v, p, "expected a map, got %s", tgw_got(f));
		for (uint32_t i = 0; i < f->len; i++)
			if (f->v.kv[2 * i].type != MP_STR)
				return tgw_err(v, p, "keys must be strings, got %s", tgw_got(&f->v.kv[2 * i]));
	}
	f = mp_map_get(q, "predicate");
	if (f != NULL)
	{
		tgw_subpath(p, path, "predicate");
		if (!check_predicate(v, f, p))
			return false;
	}
	f = mp_map_get(q, "sort");
	if (f != NULL)
	{
		tgw_subpath(p, path, "sort");
		if (f->type != MP_MAP)
			return tgw_err(v, p, "expected a map, got %s", tgw_got(f));
		for (uint32_t i = 0; i < f->len; i++)
		{
			const MpNode *k = &f->v.kv[2 * i];
			const MpNode *dir = &f->v.kv[2 * i + 1];

			if (k->type != MP_STR)
				return tgw_err(v, p, "keys must be strings, got %s", tgw_got(k));
			if (dir->type == MP_UNDEFINED)
				continue;
			if (!mp_str_eq(dir, "asc") && !mp_str_eq(dir, "desc"))
				return tgw_err(v, p, "direction of '%.*s' must be 'asc' or 'desc'",
							(int) (k->len > 32 ? 32 : k->len), k->v.s);
		}
	}
	{
		bool		has;
		double		limit;

		if (!tgw_opt_number(v, q, path, "limit", &has, &limit))
			return false;
	}
	{
		bool		has;
		TgStr		cursor;

		if (!tgw_opt_str(v, q, path, "cursor", 0, UINT32_MAX, 0, false, &has, &cursor))
			return false;
	}
	return true;
}

bool
tgw_parse_query_sub(V *v, const MpNode *root, TgMessage *msg)
{
	const MpNode *payload;
	const MpNode *query;

	if (!tgw_payload(v, root, &payload))
		return false;
	if (!tgw_req_str(v, payload, "payload", "queryId", 0, TG_WIRE_MAX_ID_BYTES, S_NO_NUL,
				 &msg->u.query_sub.query_id))
		return false;
	if (!tgw_map_name(v, payload, "payload", &msg->u.query_sub.map_name))
		return false;
	if (!tgw_req_node(v, payload, "payload", "query", MP_MAP, &query))
		return false;
	if (!check_query(v, query, "payload.query"))
		return false;
	msg->u.query_sub.query = query;
	return true;
}

/* ---------------------------------------------------------- counters */

static bool
parse_counter_parts(V *v, const MpNode *state, const char *path, const char *name,
					uint32_t *n_out, TgCounterPart **out)
{
	const MpNode *m;
	char		p[PATH_LEN];
	uint32_t	n = 0;

	if (!tgw_req_node(v, state, path, name, MP_MAP, &m))
		return false;
	tgw_subpath(p, path, name);
	*out = tgw_array(v, m->len, sizeof(TgCounterPart));
	if (m->len > 0 && *out == NULL)
		return false;
	for (uint32_t i = 0; i < m->len; i++)
	{
		const MpNode *k = &m->v.kv[2 * i];
		const MpNode *val = &m->v.kv[2 * i + 1];
		TgCounterPart *part = &(*out)[n];
		char		vp[PATH_LEN];

		if (val->type == MP_UNDEFINED)
			continue;
		if (!tgw_check_str(v, k, p, 1, TG_WIRE_MAX_ID_BYTES, S_NO_NUL, &part->node_id))
			return false;
		tgw_pathf(vp, "%s.%.*s", p, (int) (k->len > 64 ? 64 : k->len), k->v.s);
		if (!tgw_check_int(v, val, vp, 0, TG_WIRE_MAX_MILLIS, "0..2^53", &part->value))
			return false;
		n++;
	}
	*n_out = n;
	return true;
}

bool
tgw_parse_counter_sync(V *v, const MpNode *root, TgMessage *msg)
{
	const MpNode *payload;
	const MpNode *state;
	bool		client_shape;

	if (!tgw_payload(v, root, &payload))
		return false;
	if (!tgw_req_str(v, payload, "payload", "name", 1, TG_WIRE_MAX_ID_BYTES, S_NO_NUL,
				 &msg->u.counter_sync.name))
		return false;
	if (!tgw_req_node(v, payload, "payload", "state", MP_MAP, &state))
		return false;
	if (mp_map_get(state, "p") != NULL || mp_map_get(state, "n") != NULL)
		client_shape = false;
	else if (mp_map_get(state, "positive") != NULL || mp_map_get(state, "negative") != NULL)
		client_shape = true;
	else
		return tgw_err(v, "payload.state", "expected {p, n} or {positive, negative}");
	msg->u.counter_sync.client_shape = client_shape;
	if (!parse_counter_parts(v, state, "payload.state", client_shape ? "positive" : "p",
							 &msg->u.counter_sync.n_p, &msg->u.counter_sync.p))
		return false;
	return parse_counter_parts(v, state, "payload.state", client_shape ? "negative" : "n",
							   &msg->u.counter_sync.n_n, &msg->u.counter_sync.n);
}
