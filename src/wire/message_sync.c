/*
 * message_sync.c — CRDT sync messages: OP_BATCH and CLIENT_OP (op by op),
 * MERKLE_REQ_BUCKET, ORMAP_SYNC_INIT, ORMAP_MERKLE_REQ_BUCKET,
 * ORMAP_PUSH_DIFF, ORMAP_DIFF_REQUEST.
 */
#include "wire/message_check.h"

#include <math.h>
#include <string.h>

/* ================================================================= ops */

/* Validate one ClientOp; errors land in v->err.  path is the op's own path. */
static bool
check_op_fields(V *v, const MpNode *n, const char *path, TgOp *op)
{
	char		p[PATH_LEN];
	const MpNode *f;

	if (n->type != MP_MAP)
		return tgw_err(v, path, "expected an op map, got %s", tgw_got(n));

	if (!tgw_req_str(v, n, path, "mapName", 1, TG_WIRE_MAX_MAP_BYTES, S_NO_NUL, &op->map_name))
		return false;
	if (!tgw_req_str(v, n, path, "key", 0, TG_WIRE_MAX_KEY_BYTES, S_NO_NUL, &op->key))
		return false;
	if (!tgw_opt_str(v, n, path, "opType", 0, UINT32_MAX, 0, false,
				 &op->has_op_type, &op->op_type_str))
		return false;
	op->op_type = TG_OP_LWW;
	if (op->has_op_type)
	{
		if (tg_str_eq(op->op_type_str, "PUT"))
			op->op_type = TG_OP_PUT;
		else if (tg_str_eq(op->op_type_str, "REMOVE"))
			op->op_type = TG_OP_REMOVE;
		else if (tg_str_eq(op->op_type_str, "OR_ADD"))
			op->op_type = TG_OP_OR_ADD;
		else if (tg_str_eq(op->op_type_str, "OR_REMOVE"))
			op->op_type = TG_OP_OR_REMOVE;
	}

	/* record / orRecord / orTag are .nullable().optional() */
	f = mp_map_get(n, "record");
	if (f != NULL && f->type != MP_NIL)
	{
		tgw_subpath(p, path, "record");
		if (!tgw_check_lww_record(v, f, p, &op->record))
			return false;
		op->has_record = true;
	}
	f = mp_map_get(n, "orRecord");
	if (f != NULL && f->type != MP_NIL)
	{
		tgw_subpath(p, path, "orRecord");
		if (!tgw_check_or_record(v, f, p, &op->or_record))
			return false;
		op->has_or_record = true;
	}
	if (!tgw_opt_str(v, n, path, "orTag", 1, TG_WIRE_MAX_TAG_BYTES, S_NO_NUL, true,
				 &op->has_or_tag, &op->or_tag))
		return false;
	if (!tgw_opt_write_concern(v, n, path, &op->write_concern))
		return false;
	if (!tgw_opt_number(v, n, path, "timeout", &op->has_timeout, &op->timeout))
		return false;

	switch (op->op_type)
	{
		case TG_OP_OR_ADD:
			if (!op->has_or_record)
			{
				tgw_subpath(p, path, "orRecord");
				return tgw_err(v, p, "required for opType OR_ADD");
			}
			break;
		case TG_OP_OR_REMOVE:
			if (!op->has_or_tag)
			{
				tgw_subpath(p, path, "orTag");
				return tgw_err(v, p, "required for opType OR_REMOVE");
			}
			break;
		default:
			if (!op->has_record)
			{
				tgw_subpath(p, path, "record");
				if (op->has_op_type)
					return tgw_err(v, p, "required for opType %.*s",
								(int) (op->op_type_str.len > 32 ? 32 : op->op_type_str.len),
								op->op_type_str.p);
				return tgw_err(v, p, "required for an LWW op");
			}
			break;
	}
	return true;
}

/*
 * Validate one op in isolation.  A malformed op is marked invalid with its
 * own error text; false is returned only when memory ran out.
 */
static bool
check_op(V *outer, const MpNode *n, TgOp *op)
{
	char		errbuf[320];
	V			v;
	const MpNode *idn;

	memset(op, 0, sizeof(*op));
	v.arena = outer->arena;
	v.err = errbuf;
	v.errlen = sizeof(errbuf);
	v.nomem = false;
	errbuf[0] = '\0';

	/* The id first, so that even an invalid op can be named in the ack. */
	idn = mp_map_get(n, "id");
	if (n->type == MP_MAP && idn != NULL && idn->type == MP_STR &&
		idn->len <= TG_WIRE_MAX_ID_BYTES && memchr(idn->v.s, '\0', idn->len) == NULL)
	{
		op->has_id = true;
		op->id.p = idn->v.s;
		op->id.len = idn->len;
	}
	else if (idn != NULL)
	{
		if (idn->type != MP_STR)
			tgw_err(&v, "id", "expected a string, got %s", tgw_got(idn));
		else if (idn->len > TG_WIRE_MAX_ID_BYTES)
			tgw_err(&v, "id", "must be 0..%u bytes long, got %u", TG_WIRE_MAX_ID_BYTES, idn->len);
		else
			tgw_err(&v, "id", "must not contain NUL characters");
		goto invalid;
	}

	if (check_op_fields(&v, n, "", op))
	{
		op->valid = true;
		op->error = NULL;
		return true;
	}
	if (v.nomem)
		return tgw_nomem(outer);

invalid:
	{
		bool		has_id = op->has_id;
		TgStr		id = op->id;

		/* forget half-filled fields so nobody uses them by mistake */
		memset(op, 0, sizeof(*op));
		op->has_id = has_id;
		op->id = id;
		op->valid = false;
		op->error = mp_arena_strndup(outer->arena, errbuf, strlen(errbuf));
		if (op->error == NULL)
			return tgw_nomem(outer);
	}
	return true;
}

bool
tgw_parse_op_batch(V *v, const MpNode *root, TgMessage *msg)
{
	const MpNode *payload;
	const MpNode *ops;

	if (!tgw_payload(v, root, &payload))
		return false;
	if (!tgw_req_node(v, payload, "payload", "ops", MP_ARRAY, &ops))
		return false;
	if (!tgw_opt_write_concern(v, payload, "payload", &msg->u.op_batch.write_concern))
		return false;
	if (!tgw_opt_number(v, payload, "payload", "timeout",
					&msg->u.op_batch.has_timeout, &msg->u.op_batch.timeout))
		return false;
	msg->u.op_batch.n_ops = ops->len;
	msg->u.op_batch.ops = tgw_array(v, ops->len, sizeof(TgOp));
	if (ops->len > 0 && msg->u.op_batch.ops == NULL)
		return false;
	for (uint32_t i = 0; i < ops->len; i++)
	{
		TgOp	   *op = &msg->u.op_batch.ops[i];

		if (!check_op(v, &ops->v.items[i], op))
			return false;
		if (!op->valid)
			msg->u.op_batch.n_invalid++;
	}
	return true;
}

bool
tgw_parse_client_op(V *v, const MpNode *root, TgMessage *msg)
{
	const MpNode *payload;

	if (!tgw_payload(v, root, &payload))
		return false;
	return check_op(v, payload, &msg->u.client_op.op);
}

bool
tgw_parse_bucket_req(V *v, const MpNode *root, TgMessage *msg)
{
	const MpNode *payload;

	if (!tgw_payload(v, root, &payload))
		return false;
	if (!tgw_map_name(v, payload, "payload", &msg->u.bucket_req.map_name))
		return false;
	return tgw_req_str(v, payload, "payload", "path", 0, 3, S_HEXPATH, &msg->u.bucket_req.path);
}

bool
tgw_parse_ormap_sync_init(V *v, const MpNode *root, TgMessage *msg)
{
	const MpNode *bh;

	if (!tgw_map_name(v, root, "", &msg->u.ormap_sync_init.map_name))
		return false;
	if (!tgw_req_number(v, root, "", "rootHash", &msg->u.ormap_sync_init.root_hash))
		return false;
	if (!tgw_req_node(v, root, "", "bucketHashes", MP_MAP, &bh))
		return false;
	if (!tgw_check_number_map(v, bh, "bucketHashes", UINT32_MAX, UINT32_MAX, 0))
		return false;
	msg->u.ormap_sync_init.bucket_hashes = bh;
	return tgw_opt_number(v, root, "", "lastSyncTimestamp",
					  &msg->u.ormap_sync_init.has_last_sync,
					  &msg->u.ormap_sync_init.last_sync);
}

bool
tgw_parse_ormap_push_diff(V *v, const MpNode *root, TgMessage *msg)
{
	const MpNode *payload;
	const MpNode *entries;

	if (!tgw_payload(v, root, &payload))
		return false;
	if (!tgw_map_name(v, payload, "payload", &msg->u.ormap_push_diff.map_name))
		return false;
	if (!tgw_req_node(v, payload, "payload", "entries", MP_ARRAY, &entries))
		return false;
	msg->u.ormap_push_diff.n_entries = entries->len;
	msg->u.ormap_push_diff.entries = tgw_array(v, entries->len, sizeof(TgOrEntry));
	if (entries->len > 0 && msg->u.ormap_push_diff.entries == NULL)
		return false;
	for (uint32_t i = 0; i < entries->len; i++)
	{
		const MpNode *e = &entries->v.items[i];
		TgOrEntry  *out = &msg->u.ormap_push_diff.entries[i];
		const MpNode *records;
		const MpNode *tombs;
		char		p[PATH_LEN];

		tgw_indexpath(p, "payload.entries", i);
		if (e->type != MP_MAP)
			return tgw_err(v, p, "expected a map, got %s", tgw_got(e));
		if (!tgw_req_str(v, e, p, "key", 0, TG_WIRE_MAX_KEY_BYTES, S_NO_NUL, &out->key))
			return false;
		if (!tgw_req_node(v, e, p, "records", MP_ARRAY, &records))
			return false;
		if (!tgw_req_node(v, e, p, "tombstones", MP_ARRAY, &tombs))
			return false;
		out->n_records = records->len;
		out->records = tgw_array(v, records->len, sizeof(TgOrRecord));
		if (records->len > 0 && out->records == NULL)
			return false;
		for (uint32_t j = 0; j < records->len; j++)
		{
			char		rp[PATH_LEN];

			tgw_subpath(rp, p, "records");
			tgw_indexpath(rp, rp, j);
			if (!tgw_check_or_record(v, &records->v.items[j], rp, &out->records[j]))
				return false;
		}
		{
			char		tp[PATH_LEN];

			tgw_subpath(tp, p, "tombstones");
			if (!tgw_check_str_array(v, tombs, tp, UINT32_MAX, 1, TG_WIRE_MAX_TAG_BYTES,
									 S_NO_NUL, &out->n_tombstones, &out->tombstones))
				return false;
		}
	}
	return true;
}

bool
tgw_parse_ormap_diff_request(V *v, const MpNode *root, TgMessage *msg)
{
	const MpNode *payload;
	const MpNode *keys;

	if (!tgw_payload(v, root, &payload))
		return false;
	if (!tgw_map_name(v, payload, "payload", &msg->u.ormap_diff_request.map_name))
		return false;
	if (!tgw_req_node(v, payload, "payload", "keys", MP_ARRAY, &keys))
		return false;
	return tgw_check_str_array(v, keys, "payload.keys", UINT32_MAX, 0, TG_WIRE_MAX_KEY_BYTES,
							   S_NO_NUL, &msg->u.ormap_diff_request.n_keys,
							   &msg->u.ormap_diff_request.keys);
}
