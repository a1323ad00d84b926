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
 * The optional-feature types (SEARCH*, HYBRID_QUERY_*, ENTRY_PROCESS*,
 * *_RESOLVER*, JOURNAL_*, PARTITION_MAP_REQUEST; PROTOCOL-ADDENDUM.md) follow
 * the client's schema with the TG_WIRE_MAX_* bounds below; lengths the
 * schema gives in characters are counted in UTF-16 code units.  Whatever
 * the outcome, a known type sets known_type and, for the types whose reply
 * echoes an id, request_id (see TgMessage), so a validation failure can get
 * the typed reply the client waits for (docs/wire-codec.md).
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

/* Limits of the optional-feature messages (docs/wire-codec.md). */
#define TG_WIRE_MAX_SEARCH_QUERY_BYTES	4096	/* SEARCH / SEARCH_SUB query */
#define TG_WIRE_MAX_BOOST_FIELDS	64	/* options.boost entries */
#define TG_WIRE_MAX_PROCESSOR_NAME	100 /* UTF-16 units, client schema */
#define TG_WIRE_MAX_PROCESSOR_CODE	10000	/* UTF-16 units, client schema */
#define TG_WIRE_MAX_BATCH_KEYS		1000	/* ENTRY_PROCESS_BATCH keys */
#define TG_WIRE_MAX_RESOLVER_NAME	100 /* UTF-16 units, client schema */
#define TG_WIRE_MAX_RESOLVER_CODE	50000	/* UTF-16 units, client schema */
#define TG_WIRE_MAX_PATTERN_BYTES	1024	/* resolver keyPattern */
#define TG_WIRE_MAX_JOURNAL_TYPES	16	/* JOURNAL_SUBSCRIBE types[] */

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
	TG_MSG_SEARCH,
	TG_MSG_SEARCH_SUB,
	TG_MSG_SEARCH_UNSUB,
	TG_MSG_ENTRY_PROCESS,
	TG_MSG_ENTRY_PROCESS_BATCH,
	TG_MSG_REGISTER_RESOLVER,
	TG_MSG_UNREGISTER_RESOLVER,
	TG_MSG_LIST_RESOLVERS,
	TG_MSG_JOURNAL_READ,
	TG_MSG_JOURNAL_SUBSCRIBE,
	TG_MSG_JOURNAL_UNSUBSCRIBE,
	TG_MSG_PARTITION_MAP_REQUEST,
	TG_MSG_HYBRID_QUERY_SUBSCRIBE,
	TG_MSG_HYBRID_QUERY_UNSUBSCRIBE,
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

/* SEARCH / SEARCH_SUB options (all optional). */
typedef struct TgSearchOptions
{
	bool		has_limit;
	double		limit;			/* finite; the server clamps it */
	bool		has_min_score;
	double		min_score;		/* finite */
	const MpNode *boost;		/* NULL, or MP_MAP field (0..256 bytes, no
								 * NUL) -> finite number, at most
								 * TG_WIRE_MAX_BOOST_FIELDS entries;
								 * undefined values are to be skipped */
} TgSearchOptions;

/* ENTRY_PROCESS[_BATCH] processor. */
typedef struct TgProcessor
{
	TgStr		name;			/* 1..100 UTF-16 units, no NUL */
	TgStr		code;			/* 1..10000 UTF-16 units; never executed */
	const MpNode *args;			/* NULL if absent/undefined, else any value
								 * (MP_NIL included) */
} TgProcessor;

/* JOURNAL_* event types, as bits of types_mask. */
typedef enum TgJournalType
{
	TG_JOURNAL_PUT = 1 << 0,
	TG_JOURNAL_UPDATE = 1 << 1,
	TG_JOURNAL_DELETE = 1 << 2
} TgJournalType;

typedef struct TgMessage
{
	TgMsgType	type;			/* meaningful when known_type */
	bool		known_type;		/* the type string named a TgMsgType (set
								 * even when the rest is invalid) */

	/*
	 * The id the typed reply must carry, set whenever the type is known and
	 * that field is a string of 0..256 bytes without NUL -- also when
	 * tg_message_parse() returns TG_PARSE_INVALID for another field, so the
	 * server can answer the request's own failure reply instead of ERROR:
	 *   SEARCH            payload.requestId    -> SEARCH_RESP.requestId
	 *   SEARCH_SUB        payload.subscriptionId -> SEARCH_RESP.requestId
	 *   ENTRY_PROCESS, ENTRY_PROCESS_BATCH, REGISTER_RESOLVER,
	 *   UNREGISTER_RESOLVER, LIST_RESOLVERS, JOURNAL_READ,
	 *   JOURNAL_SUBSCRIBE  requestId (top level)
	 *   LOCK_REQUEST, LOCK_RELEASE  payload.requestId
	 * Other types leave has_request_id false.  On TG_PARSE_OK the same
	 * slice is also in the type's struct below.
	 */
	bool		has_request_id;
	TgStr		request_id;

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

		/*
		 * SEARCH and SEARCH_SUB (payload).  id is payload.requestId for
		 * SEARCH, payload.subscriptionId for SEARCH_SUB (0..256 bytes, no
		 * NUL); query 0..TG_WIRE_MAX_SEARCH_QUERY_BYTES bytes, no NUL.
		 */
		struct
		{
			TgStr		id;
			TgStr		map_name;
			TgStr		query;
			TgSearchOptions options;
		}			search;

		/* SEARCH_UNSUB: payload.subscriptionId */
		struct
		{
			TgStr		subscription_id;
		}			search_unsub;

		/*
		 * ENTRY_PROCESS (top level): key 0..1024 bytes.  ENTRY_PROCESS_BATCH
		 * fills keys/n_keys (0..TG_WIRE_MAX_BATCH_KEYS, each 0..1024 bytes,
		 * duplicates kept) and leaves key empty.
		 */
		struct
		{
			TgStr		request_id;
			TgStr		map_name;
			TgStr		key;
			uint32_t	n_keys;
			TgStr	   *keys;
			TgProcessor processor;
		}			entry_process;

		/* REGISTER_RESOLVER (top level): resolver.{name, code, priority?,
		 * keyPattern?} */
		struct
		{
			TgStr		request_id;
			TgStr		map_name;
			TgStr		name;	/* 1..100 UTF-16 units, no NUL */
			TgStr		code;	/* 0..50000 UTF-16 units; never executed */
			bool		has_priority;
			int32_t		priority;	/* integer 0..100 */
			bool		has_key_pattern;
			TgStr		key_pattern;	/* 0..1024 bytes, no NUL */
		}			register_resolver;

		/* UNREGISTER_RESOLVER (top level) */
		struct
		{
			TgStr		request_id;
			TgStr		map_name;
			TgStr		resolver_name;	/* 0..256 bytes, no NUL */
		}			unregister_resolver;

		/* LIST_RESOLVERS (top level) */
		struct
		{
			TgStr		request_id;
			bool		has_map_name;
			TgStr		map_name;
		}			list_resolvers;

		/*
		 * JOURNAL_READ and JOURNAL_SUBSCRIBE (top level).  fromSequence is a
		 * decimal string of 1..19 digits <= 2^63-1 (required for READ,
		 * optional for SUBSCRIBE); limit READ only, types SUBSCRIBE only
		 * (types_mask = OR of TgJournalType, 0 when absent; an empty array
		 * gives has_types with mask 0).
		 */
		struct
		{
			TgStr		request_id;
			bool		has_from_sequence;
			int64_t		from_sequence;
			bool		has_limit;
			double		limit;	/* finite; the server clamps it */
			bool		has_map_name;
			TgStr		map_name;
			bool		has_types;
			uint32_t	types_mask;
		}			journal;

		/* JOURNAL_UNSUBSCRIBE (top level) */
		struct
		{
			TgStr		subscription_id;
		}			journal_unsub;

		/* PARTITION_MAP_REQUEST: payload? {currentVersion?} */
		struct
		{
			bool		has_current_version;
			double		current_version;	/* finite */
		}			partition_map_request;

		/*
		 * HYBRID_QUERY_SUBSCRIBE (payload; not in the client's schema, so
		 * shapes are only type-checked: predicate/where/sort are maps kept
		 * as trees -- predicates may use match/matchPhrase/matchPrefix).
		 * HYBRID_QUERY_UNSUBSCRIBE fills subscription_id only.
		 */
		struct
		{
			TgStr		subscription_id;
			TgStr		map_name;
			const MpNode *predicate;	/* NULL if absent */
			const MpNode *where;	/* NULL if absent */
			const MpNode *sort; /* NULL if absent */
			bool		has_limit;
			double		limit;
			bool		has_cursor;
			TgStr		cursor;
		}			hybrid_query;
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
 * "unknown message type FOO".
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
