/*
 * fuzz_message.c — libFuzzer target for the wire codec.
 *
 * For every input: decode + validate as a client message with the worker's
 * limits; convert every application value (record values, topic data,
 * queries, the whole tree) to JSON and check the text parses back as JSON;
 * re-encode the tree and check that encoding is idempotent
 * (enc(dec(enc(x))) == enc(x)).  Any violated property traps.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire/message.h"
#include "wire/msgpack.h"
#include "../test/unit/wire_json.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
json_roundtrip(const MpNode *v)
{
	MpBuf		out;
	char		err[256];

	if (v == NULL)
		return;
	mp_buf_init(&out, 1 << 22);
	if (mp_value_to_json(v, &out, err, sizeof(err)))
	{
		JNode	   *j;

		/* NUL-terminated, no NUL inside, and valid JSON */
		if (out.data == NULL || out.data[out.len] != '\0' || strlen((char *) out.data) != out.len)
			__builtin_trap();
		j = json_parse((const char *) out.data, out.len);
		if (j == NULL)
			__builtin_trap();
		json_free(j);
	}
	else if (err[0] == '\0')
		__builtin_trap();		/* failures must say why */
	mp_buf_free(&out);
}

static void
check_op(const TgOp *op)
{
	if (!op->valid)
	{
		if (op->error == NULL || op->error[0] == '\0')
			__builtin_trap();
		return;
	}
	if (op->has_record)
		json_roundtrip(op->record.value);
	if (op->has_or_record)
		json_roundtrip(op->or_record.value);
}

static void
reencode_check(const MpNode *root)
{
	MpBuf		b1,
				b2;
	MpArena		a;
	MpLimits	lim = {MP_HARD_MAX_DEPTH, UINT32_MAX, UINT32_MAX};
	char		err[256];

	mp_buf_init(&b1, 1 << 24);
	mp_buf_init(&b2, 1 << 24);
	mp_arena_init(&a);
	if (mp_put_node(&b1, root))
	{
		MpNode	   *again = mp_decode(&a, b1.data, b1.len, &lim, err, sizeof(err));

		if (again == NULL)
			__builtin_trap();	/* our own output must decode */
		if (!mp_put_node(&b2, again))
			__builtin_trap();
		if (b1.len != b2.len || memcmp(b1.data, b2.data, b1.len) != 0)
			__builtin_trap();
	}
	mp_arena_free(&a);
	mp_buf_free(&b1);
	mp_buf_free(&b2);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	TgMessage	msg;
	char		err[256];
	MpLimits	lim;
	TgParseResult r;

	if (size > UINT32_MAX - 1)
		return 0;
	/* the worker's limits: depth 32, nodes <= frame bytes */
	lim.max_depth = 32;
	lim.max_nodes = (uint32_t) size + 1;
	lim.max_str = (uint32_t) size;

	r = tg_message_parse(data, size, &lim, &msg, err, sizeof(err));
	if (r != TG_PARSE_OK && err[0] == '\0')
		__builtin_trap();
	/* the reply id, valid or not, is a slice of the frame without NUL */
	if (msg.has_request_id &&
		(!msg.known_type || msg.request_id.len > TG_WIRE_MAX_ID_BYTES ||
		 (msg.request_id.len > 0 &&
		  ((const uint8_t *) msg.request_id.p < data ||
		   (const uint8_t *) msg.request_id.p + msg.request_id.len > data + size ||
		   memchr(msg.request_id.p, '\0', msg.request_id.len) != NULL))))
		__builtin_trap();
	if (msg.root != NULL)
	{
		json_roundtrip(msg.root);
		reencode_check(msg.root);
	}
	if (r == TG_PARSE_OK)
	{
		switch (msg.type)
		{
			case TG_MSG_OP_BATCH:
				for (uint32_t i = 0; i < msg.u.op_batch.n_ops; i++)
					check_op(&msg.u.op_batch.ops[i]);
				break;
			case TG_MSG_CLIENT_OP:
				check_op(&msg.u.client_op.op);
				break;
			case TG_MSG_TOPIC_PUB:
				json_roundtrip(msg.u.topic.data);
				break;
			case TG_MSG_QUERY_SUB:
				json_roundtrip(msg.u.query_sub.query);
				break;
			case TG_MSG_SEARCH:
			case TG_MSG_SEARCH_SUB:
				if (msg.u.search.query.len > TG_WIRE_MAX_SEARCH_QUERY_BYTES ||
					memchr(msg.u.search.query.p, '\0', msg.u.search.query.len) != NULL ||
					(msg.u.search.options.boost != NULL &&
					 msg.u.search.options.boost->len > TG_WIRE_MAX_BOOST_FIELDS))
					__builtin_trap();
				break;
			case TG_MSG_ENTRY_PROCESS:
			case TG_MSG_ENTRY_PROCESS_BATCH:
				if (msg.u.entry_process.n_keys > TG_WIRE_MAX_BATCH_KEYS)
					__builtin_trap();
				if (msg.u.entry_process.processor.args != NULL)
					json_roundtrip(msg.u.entry_process.processor.args);
				break;
			case TG_MSG_REGISTER_RESOLVER:
				if (msg.u.register_resolver.has_priority &&
					(msg.u.register_resolver.priority < 0 || msg.u.register_resolver.priority > 100))
					__builtin_trap();
				break;
			case TG_MSG_JOURNAL_READ:
			case TG_MSG_JOURNAL_SUBSCRIBE:
				if (msg.u.journal.from_sequence < 0 || msg.u.journal.types_mask > 7)
					__builtin_trap();
				break;
			case TG_MSG_ORMAP_PUSH_DIFF:
				for (uint32_t i = 0; i < msg.u.ormap_push_diff.n_entries; i++)
					for (uint32_t k = 0; k < msg.u.ormap_push_diff.entries[i].n_records; k++)
						json_roundtrip(msg.u.ormap_push_diff.entries[i].records[k].value);
				break;
			default:
				break;
		}
	}
	tg_message_free(&msg);

	/* the bare decoder with tight limits must fail cleanly, never crash */
	{
		MpArena		a;
		MpLimits	tight = {4, 16, 8};

		mp_arena_init(&a);
		if (mp_decode(&a, data, size, &tight, err, sizeof(err)) == NULL && err[0] == '\0')
			__builtin_trap();
		mp_arena_free(&a);
	}
	return 0;
}
