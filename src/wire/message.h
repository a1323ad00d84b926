/*
 * message.h — validation of every client → server TopGun message into
 * typed structs.
 *
 * PostgreSQL-free (C11 + libc).  One entry point, tg_message_parse():
 * decode the frame (msgpack.h, with the caller's limits), check its shape
 * against PROTOCOL.md §3.1/§3.2 (the reference server's Zod schemas, made a
 * little stricter where PostgreSQL needs it), and fill a TgMessage.
 *
 * Rules applied everywhere:
 *   - required fields must be present with the right type; optional fields
 *     may be absent or `undefined` (ext 0) but not nil unless nullable;
 *   - unknown extra keys are ignored (Zod strips them);
 *   - numbers must be finite; integers may arrive as int, uint or float64;
 *   - Timestamp = {millis: integer 0..2^53, counter: integer 0..2^31-1,
 *     nodeId: 1..128 bytes without ':'};
 *   - mapName 1..256 bytes, key 0..1024 bytes, tag 1..256 bytes, Merkle path
 *     0..3 lowercase hex digits, ids/names/topics 1..256 bytes (op ids and
 *     query ids may be empty strings: the client never sends those, but Zod
 *     accepts them).
 *
 * All TgStr point into the input frame or into the message's arena; they
 * are NOT NUL-terminated.  All MpNode pointers point into msg->arena.  The
 * input buffer must stay alive and unchanged until tg_message_free().
 *
 * OP_BATCH is validated as an envelope (payload, ops array, writeConcern,
 * timeout) and then op by op: a malformed op gets valid=false and an error
 * text, the other ops stay usable, so the worker can reject that op alone.
 * CLIENT_OP follows the same rule for its single op (the worker answers
 * OP_REJECTED for an invalid one).
 */
#ifndef TG_WIRE_MESSAGE_H
#define TG_WIRE_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire/msgpack.h"

#define TG_WIRE_MAX_MAP_BYTES	256
#define TG_WIRE_MAX_KEY_BYTES	1024
#define TG_WIRE_MAX_NODE_BYTES	128
#define TG_WIRE_MAX_TAG_BYTES	256
#define TG_WIRE_MAX_ID_BYTES	256	/* op id, queryId, requestId, topic,
									 * counter and lock names */
#define TG_WIRE_MAX_MILLIS		INT64_C(9007199254740992)	/* 2^53 */
#define TG_WIRE_MAX_COUNTER		INT64_C(2147483647)

/* A string slice; not NUL-terminated. */
typedef struct TgStr
{
	const char *p;
	uint32_t	len;
} TgStr;

typedef enum TgMsgType
{
	TG_MSG_AUTH = 0,
	TG_MSG_PING,
	TG_MSG_OP_BATCH,
	TG_MSG_CLIENT_OP,
	TG_MSG_SYNC_INIT,
	TG_MSG_MERKLE_REQ_BUCKET,
	TG_MSG_ORMAP_SYNC_INIT,
	TG_MSG_ORMAP_MERKLE_REQ_BUCKET,
	TG_MSG_ORMAP_PUSH_DIFF,
	TG_MSG_ORMAP_DIFF_REQUEST,
	TG_MSG_QUERY_SUB,
	TG_MSG_QUERY_UNSUB,
	TG_MSG_TOPIC_SUB,
	TG_MSG_TOPIC_UNSUB,
	TG_MSG_TOPIC_PUB,
	TG_MSG_COUNTER_REQUEST,
	TG_MSG_COUNTER_SYNC,
	TG_MSG_LOCK_REQUEST,
	TG_MSG_LOCK_RELEASE,
	TG_MSG_COUNT_
} TgMsgType;

/* The wire name of a message type, e.g. "OP_BATCH". */
extern const char *tg_msg_type_name(TgMsgType type);

typedef struct TgTimestamp
{
	int64_t		millis;			/* 0..2^53 */
	uint32_t	counter;		/* 0..2^31-1 */
	TgStr		node_id;		/* 1..128 bytes, no ':' */
} TgTimestamp;

/* LWWRecord: value may be MP_NIL (a tombstone), never NULL. */
typedef struct TgLwwRecord
{
	const MpNode *value;
	TgTimestamp ts;
	bool		has_ttl;
	int64_t		ttl_ms;			/* positive integer <= 2^53 */
} TgLwwRecord;

/* ORMapRecord: value may be MP_NIL, never NULL. */
typedef struct TgOrRecord
{
	const MpNode *value;
	TgTimestamp ts;
	TgStr		tag;			/* 1..256 bytes */
	bool		has_ttl;
	int64_t		ttl_ms;
} TgOrRecord;

typedef enum TgOpType
{
	TG_OP_LWW = 0,				/* opType absent or not one of the below */
	TG_OP_PUT,
	TG_OP_REMOVE,
	TG_OP_OR_ADD,
	TG_OP_OR_REMOVE
} TgOpType;

typedef enum TgWriteConcern
{
	TG_WC_NONE = 0,				/* absent */
	TG_WC_FIRE_AND_FORGET,
	TG_WC_MEMORY,
	TG_WC_APPLIED,
	TG_WC_REPLICATED,
	TG_WC_PERSISTED
} TgWriteConcern;

/*
 * One ClientOp.  When valid is false, error says why ("record.timestamp.
 * millis: expected an integer in 0..2^53") and only has_id/id are
 * meaningful (set when the op had a usable string id, so the worker can
 * name it in OP_ACK results / OP_REJECTED).
 *
 * Requirements: PUT, REMOVE and LWW (any other opType) need record;
 * OR_ADD needs orRecord; OR_REMOVE needs orTag.  Fields that do not apply
 * are validated when present but may be ignored.  Op-level `timestamp` and
 * `synced` are ignored.
 */
typedef struct TgOp
{
	bool		valid;
	const char *error;			/* NUL-terminated, in the arena; NULL if valid */
	bool		has_id;
	TgStr		id;				/* kept exactly as sent (decimal string) */
	TgStr		map_name;
	TgStr		key;
	TgOpType	op_type;
	bool		has_op_type;
	TgStr		op_type_str;	/* as sent, when has_op_type */
	bool		has_record;		/* record present and not nil */
	TgLwwRecord record;
	bool		has_or_record;	/* orRecord present and not nil */
	TgOrRecord	or_record;
	bool		has_or_tag;		/* orTag present and not nil */
	TgStr		or_tag;
	TgWriteConcern write_concern;
	bool		has_timeout;
	double		timeout;
} TgOp;

typedef struct TgOrEntry
{
	TgStr		key;
	uint32_t	n_records;
	TgOrRecord *records;
	uint32_t	n_tombstones;
	TgStr	   *tombstones;		/* tags, 1..256 bytes each */
} TgOrEntry;

/* One (nodeId, count) pair of a PN-counter state. */
typedef struct TgCounterPart
{
	TgStr		node_id;		/* 1..256 bytes (any string key) */
	int64_t		value;			/* integer 0..2^53 */
} TgCounterPart;

typedef struct TgMessage
{
	TgMsgType	type;
	MpArena		arena;			/* owns the tree and every array below */
	const MpNode *root;
	union
	{
		struct
		{
			TgStr		token;
		}			auth;

		struct
		{
			double		timestamp;	/* finite number */
		}			ping;

		struct
		{
			uint32_t	n_ops;
			TgOp	   *ops;
			TgWriteConcern write_concern;
			bool		has_timeout;
			double		timeout;
			uint32_t	n_invalid;	/* ops with valid == false */
		}			op_batch;

		struct
		{
			TgOp		op;
		}			client_op;

		struct
		{
			TgStr		map_name;
			bool		has_last_sync;
			double		last_sync;	/* finite; 0 on the first sync */
		}			sync_init;

		/* MERKLE_REQ_BUCKET and ORMAP_MERKLE_REQ_BUCKET */
		struct
		{
			TgStr		map_name;
			TgStr		path;	/* 0..3 lowercase hex digits */
		}			bucket_req;

		struct
		{
			TgStr		map_name;
			double		root_hash;	/* finite number; informational */
			const MpNode *bucket_hashes;	/* MP_MAP string → finite number */
			bool		has_last_sync;
			double		last_sync;
		}			ormap_sync_init;

		struct
		{
			TgStr		map_name;
			uint32_t	n_entries;
			TgOrEntry  *entries;
		}			ormap_push_diff;

		struct
		{
			TgStr		map_name;
			uint32_t	n_keys;
			TgStr	   *keys;
		}			ormap_diff_request;

		/*
		 * query: an MP_MAP checked against the Query schema: where? map,
		 * predicate? PredicateNode (op in eq neq gt gte lt lte like regex
		 * and or not; attribute? string; value? any; children? array of
		 * PredicateNode), sort? map of 'asc'|'desc', limit? finite number,
		 * cursor? string.  Kept as a tree for later evaluation.
		 */
		struct
		{
			TgStr		query_id;
			TgStr		map_name;
			const MpNode *query;
		}			query_sub;

		struct
		{
			TgStr		query_id;
		}			query_unsub;

		/* TOPIC_SUB, TOPIC_UNSUB, TOPIC_PUB */
		struct
		{
			TgStr		topic;
			const MpNode *data;	/* TOPIC_PUB only; NULL if absent/undefined */
		}			topic;

		struct
		{
			TgStr		name;
		}			counter_request;

		/*
		 * state is accepted as {p, n} (reference server) or
		 * {positive, negative} (what the TS client sends).
		 */
		struct
		{
			TgStr		name;
			bool		client_shape;	/* true: positive/negative */
			uint32_t	n_p;
			TgCounterPart *p;
			uint32_t	n_n;
			TgCounterPart *n;
		}			counter_sync;

		struct
		{
			TgStr		request_id;
			TgStr		name;
			bool		has_ttl;
			double		ttl;
		}			lock_request;

		struct
		{
			bool		has_request_id;
			TgStr		request_id;
			TgStr		name;
			double		fencing_token;
		}			lock_release;
	}			u;
} TgMessage;

typedef enum TgParseResult
{
	TG_PARSE_OK = 0,
	TG_PARSE_DECODE_ERROR,		/* not one well-formed msgpack value (or a
								 * decoder limit hit) */
	TG_PARSE_INVALID,			/* decoded, but the shape is wrong (incl.
								 * "unknown message type X") */
	TG_PARSE_NOMEM				/* malloc failed */
} TgParseResult;

/*
 * Decode and validate one frame.  msg is always initialised (even on
 * failure) and must be released with tg_message_free().  On failure err
 * holds a one-line reason suitable for
 * ERROR {code:400, message:'Invalid message format: <err>'}, e.g.
 * "payload.ops: expected an array, got map" or
 * "unknown message type HYBRID_QUERY_SUBSCRIBE".
 */
extern TgParseResult tg_message_parse(const uint8_t *data, size_t len,
									  const MpLimits *limits, TgMessage *msg,
									  char *err, size_t errlen);

extern void tg_message_free(TgMessage *msg);

/* Helpers for consumers. */
static inline bool
tg_str_eq(TgStr s, const char *lit)
{
	size_t		n = 0;

	while (lit[n] != '\0')
		n++;
	if (n != s.len)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s.p[i] != lit[i])
			return false;
	return true;
}

/* Copy a TgStr into a caller buffer with NUL (truncating); returns dst. */
extern char *tg_str_copy(TgStr s, char *dst, size_t dstlen);

/* Name of a write concern ("MEMORY", ...), or NULL for TG_WC_NONE. */
extern const char *tg_write_concern_name(TgWriteConcern wc);

#endif							/* TG_WIRE_MESSAGE_H */
