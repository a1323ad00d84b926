/*
 * encode.c — the executors' msgpack output: message buffers, ERROR
 * replies, jsonb -> msgpack (integral numbers within int32/uint32 become
 * msgpack ints, every other number float64, as the client expects), HLC
 * text -> Timestamp maps.
 */
#include "postgres.h"

#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"

#include "exec/exec.h"

/* --------------------------------------------------------- encoding */

static MpBuf obuf;				/* scratch message buffer */
static bool obuf_init = false;

MpBuf *
tg_buf_begin(void)
{
	if (!obuf_init)
	{
		mp_buf_init(&obuf, (size_t) 1 << 30);
		obuf_init = true;
	}
	mp_buf_reset(&obuf);
	return &obuf;
}

void
tg_buf_send(TgConn *c, MpBuf *b)
{
	if (!mp_buf_ok(b))
	{
		ereport(LOG, (errmsg("topgun: could not encode a reply for connection %llu (too large or out of memory)",
							 (unsigned long long) c->id)));
		return;
	}
	tg_conn_send(c, b->data, b->len);
}

void
tg_send_error(TgConn *c, int code, const char *message)
{
	MpBuf	   *b = tg_buf_begin();

	mp_put_map_header(b, 2);
	mp_put_str(b, "type");
	mp_put_str(b, "ERROR");
	mp_put_str(b, "payload");
	mp_put_map_header(b, 2);
	mp_put_str(b, "code");
	mp_put_int(b, code);
	mp_put_str(b, "message");
	mp_put_str(b, message);
	tg_buf_send(c, b);
}

/* jsonb → msgpack → decoded tree (the query engine works on msgpack trees). */
MpNode *
tg_jsonb_to_node(MpArena *arena, Jsonb *jb)
{
	MpBuf		b;
	MpLimits	lim = {64, 0, 0};
	char		err[128];
	uint8_t    *copy;
	MpNode	   *n = NULL;

	mp_buf_init(&b, (size_t) 1 << 30);
	tg_put_jsonb(&b, jb);
	if (mp_buf_ok(&b))
	{
		lim.max_nodes = (uint32) Min((size_t) UINT32_MAX - 1, b.len + 1);
		lim.max_str = (uint32) Min((size_t) UINT32_MAX - 1, Max(b.len, 1));
		copy = mp_arena_alloc(arena, b.len);
		if (copy)
		{
			memcpy(copy, b.data, b.len);
			n = mp_decode(arena, copy, b.len, &lim, err, sizeof(err));
		}
	}
	mp_buf_free(&b);
	return n;
}

/* "millis:counter:node" text of topgun.hlc → Timestamp map. */
void
tg_put_hlc_text(MpBuf *b, const char *hlc)
{
	const char *p1 = strchr(hlc, ':');
	const char *p2 = p1 ? strchr(p1 + 1, ':') : NULL;
	int64		millis;
	long		counter;

	if (p1 == NULL || p2 == NULL)
		elog(ERROR, "topgun: malformed hlc text \"%s\"", hlc);
	millis = strtoll(hlc, NULL, 10);
	counter = strtol(p1 + 1, NULL, 10);
	mp_put_timestamp(b, millis, (uint32) counter, p2 + 1, strlen(p2 + 1));
}

void
tg_put_timestamp(MpBuf *b, const TgTimestamp *ts)
{
	mp_put_timestamp(b, ts->millis, ts->counter, ts->node_id.p, ts->node_id.len);
}

/* jsonb → msgpack: integral numbers in int32/uint32 range as ints, else float64. */
static void
put_jsonb_scalar(MpBuf *b, JsonbValue *v)
{
	switch (v->type)
	{
		case jbvNull:
			mp_put_nil(b);
			break;
		case jbvString:
			mp_put_strn(b, v->val.string.val, v->val.string.len);
			break;
		case jbvBool:
			mp_put_bool(b, v->val.boolean);
			break;
		case jbvNumeric:
			mp_put_number(b, DatumGetFloat8(DirectFunctionCall1(numeric_float8,
																NumericGetDatum(v->val.numeric))));
			break;
		default:
			elog(ERROR, "topgun: unexpected jsonb value type %d", (int) v->type);
	}
}

/*
 * jb as msgpack; with `pairs_only` (jb an object) its key/value pairs without
 * the map header, for a caller that writes the header and pairs of its own.
 */
static void
put_jsonb(MpBuf *b, Jsonb *jb, bool pairs_only)
{
	JsonbIterator *it = JsonbIteratorInit(&jb->root);
	JsonbValue	v;
	JsonbIteratorToken r;
	bool		top = true;

	while ((r = JsonbIteratorNext(&it, &v, false)) != WJB_DONE)
	{
		switch (r)
		{
			case WJB_BEGIN_ARRAY:
				if (!v.val.array.rawScalar)
					mp_put_array_header(b, (uint32) v.val.array.nElems);
				top = false;
				break;
			case WJB_BEGIN_OBJECT:
				if (!(top && pairs_only))
					mp_put_map_header(b, (uint32) v.val.object.nPairs);
				top = false;
				break;
			case WJB_KEY:
				mp_put_strn(b, v.val.string.val, v.val.string.len);
				break;
			case WJB_VALUE:
			case WJB_ELEM:
				put_jsonb_scalar(b, &v);
				break;
			default:
				break;
		}
	}
}

void
tg_put_jsonb(MpBuf *b, Jsonb *jb)
{
	put_jsonb(b, jb, false);
}

/*
 * The object `obj` as a msgpack map with `nextra` more pairs, which the
 * caller writes right after (keys it must not share with obj).  False, and
 * nothing written, if obj is not an object.
 */
bool
tg_put_jsonb_object_plus(MpBuf *b, Jsonb *obj, uint32 nextra)
{
	if (!JB_ROOT_IS_OBJECT(obj) || JB_ROOT_IS_SCALAR(obj))
		return false;
	mp_put_map_header(b, (uint32) JB_ROOT_COUNT(obj) + nextra);
	put_jsonb(b, obj, true);
	return true;
}


char *
tg_pstr(TgStr s)
{
	return pnstrdup(s.p, s.len);
}

char *
tg_hlc_text(const TgTimestamp *ts)
{
	return psprintf(INT64_FORMAT ":%u:%.*s", ts->millis, ts->counter,
					(int) ts->node_id.len, ts->node_id.p);
}

/*
 * OP_ACK {lastId, achievedLevel, results: [{opId, success, achievedLevel,
 * error?}]} of n ops with ids, in batch order (PROTOCOL.md §9.1): the
 * results name every op, so the string comparison of lastId cannot leave
 * one unacknowledged.
 */
void
tg_send_op_ack(TgConn *c, const TgAckedOp *ops, int n)
{
	MpBuf	   *b = tg_buf_begin();

	mp_put_map_header(b, 2);
	mp_put_str(b, "type");
	mp_put_str(b, "OP_ACK");
	mp_put_str(b, "payload");
	mp_put_map_header(b, 3);
	mp_put_str(b, "lastId");
	tg_put_tgstr(b, ops[n - 1].op->id);
	mp_put_str(b, "achievedLevel");
	mp_put_str(b, "PERSISTED");
	mp_put_str(b, "results");
	mp_put_array_header(b, n);
	for (int i = 0; i < n; i++)
	{
		mp_put_map_header(b, ops[i].error ? 4 : 3);
		mp_put_str(b, "opId");
		tg_put_tgstr(b, ops[i].op->id);
		mp_put_str(b, "success");
		mp_put_bool(b, ops[i].error == NULL);
		mp_put_str(b, "achievedLevel");
		mp_put_str(b, ops[i].error ? "FIRE_AND_FORGET" : "PERSISTED");
		if (ops[i].error)
		{
			mp_put_str(b, "error");
			mp_put_str(b, ops[i].error);
		}
	}
	tg_buf_send(c, b);
}

/* OP_REJECTED {opId, reason} for one op. */
void
tg_send_op_rejected(TgConn *c, TgOp *op, const char *reason)
{
	MpBuf	   *b = tg_buf_begin();

	mp_put_map_header(b, 2);
	mp_put_str(b, "type");
	mp_put_str(b, "OP_REJECTED");
	mp_put_str(b, "payload");
	mp_put_map_header(b, 2);
	mp_put_str(b, "opId");
	if (op->has_id)
		tg_put_tgstr(b, op->id);
	else
		mp_put_str(b, "");
	mp_put_str(b, "reason");
	mp_put_str(b, reason);
	tg_buf_send(c, b);
}

/*
 * MERGE_REJECTED {mapName, key, attemptedValue, reason, timestamp}: a
 * conflict resolver refused the op (top-level fields; timestamp is the
 * rejected record's, PROTOCOL-ADDENDUM §A5.1).
 */
void
tg_send_merge_rejected(TgConn *c, TgOp *op, const char *reason)
{
	MpBuf	   *b = tg_buf_begin();

	mp_put_map_header(b, 6);
	mp_put_str(b, "type");
	mp_put_str(b, "MERGE_REJECTED");
	mp_put_str(b, "mapName");
	tg_put_tgstr(b, op->map_name);
	mp_put_str(b, "key");
	tg_put_tgstr(b, op->key);
	mp_put_str(b, "attemptedValue");
	if (op->op_type == TG_OP_REMOVE || !op->has_record)
		mp_put_nil(b);
	else
		mp_put_node(b, op->record.value);
	mp_put_str(b, "reason");
	mp_put_str(b, reason ? reason : "Rejected by conflict resolver");
	mp_put_str(b, "timestamp");
	tg_put_timestamp(b, &op->record.ts);
	tg_buf_send(c, b);
}
