/*
 * message_check.h — internal to src/wire/message*.c: the validation
 * context and the field checks every message family uses.
 *
 * Each check takes the field path for its error text ("payload.ops[3].key:
 * required"), writes the first error into V.err and returns false; they
 * never allocate except tgw_array (arena) and never stop at the first
 * error of a sibling: the first failing check wins.
 *
 * Include order is one-way: message_check.h <- message_check.c and the
 * family files (message_sync.c, message_live.c, message_search.c,
 * message_logic.c, message_journal.c) <- message.c (the dispatcher).
 */
#ifndef TG_WIRE_MESSAGE_CHECK_H
#define TG_WIRE_MESSAGE_CHECK_H

#include "wire/message.h"

/* printf-style checking of our own formatting helpers */
#if defined(__GNUC__) || defined(__clang__)
#define tg_printf_attr(f, a) __attribute__((format(printf, f, a)))
#else
#define tg_printf_attr(f, a)
#endif

/* Flags for string checks. */
#define S_NO_NUL	0x01		/* becomes PostgreSQL text */
#define S_NO_COLON	0x02		/* nodeId: HLC.parse splits on ':' */
#define S_HEXPATH	0x04		/* Merkle path: lowercase hex digits */
#define S_UTF16		0x08		/* min/max count UTF-16 code units (Zod
								 * .min/.max on a JS string), not bytes */

#define PATH_LEN	200

typedef struct V
{
	MpArena    *arena;
	char	   *err;
	size_t		errlen;
	bool		nomem;
} V;

/* errors and paths */
extern bool tgw_err(V *v, const char *path, const char *fmt,...) tg_printf_attr(3, 4);
extern bool tgw_nomem(V *v);
extern void tgw_pathf(char *dst, const char *fmt,...) tg_printf_attr(2, 3);
extern void tgw_subpath(char *dst, const char *path, const char *field);
extern void tgw_indexpath(char *dst, const char *path, uint32_t i);
extern const char *tgw_got(const MpNode *n);

/* scalars; opt_* set *has and accept absent/undefined */
extern bool tgw_check_str(V *v, const MpNode *n, const char *path, uint32_t minlen,
						  uint32_t maxlen, int flags, TgStr *out);
extern bool tgw_req_str(V *v, const MpNode *obj, const char *path, const char *name,
						uint32_t minlen, uint32_t maxlen, int flags, TgStr *out);
extern bool tgw_opt_str(V *v, const MpNode *obj, const char *path, const char *name,
						uint32_t minlen, uint32_t maxlen, int flags, bool nullable,
						bool *has, TgStr *out);
extern bool tgw_check_number(V *v, const MpNode *n, const char *path, double *out);
extern bool tgw_req_number(V *v, const MpNode *obj, const char *path, const char *name,
						   double *out);
extern bool tgw_opt_number(V *v, const MpNode *obj, const char *path, const char *name,
						   bool *has, double *out);
extern bool tgw_check_int(V *v, const MpNode *n, const char *path, int64_t min, int64_t max,
						  const char *range_text, int64_t *out);
extern bool tgw_req_node(V *v, const MpNode *obj, const char *path, const char *name,
						 MpType type, const MpNode **out);	/* MP_MAP or MP_ARRAY */
extern bool tgw_opt_int(V *v, const MpNode *obj, const char *path, const char *name,
						int64_t min, int64_t max, const char *range_text,
						bool *has, int64_t *out);
extern bool tgw_opt_map(V *v, const MpNode *obj, const char *path, const char *name,
						bool nullable, const MpNode **out);
extern void *tgw_array(V *v, uint32_t n, size_t elsize);

/* An array of at most max_items strings checked like tgw_check_str. */
extern bool tgw_check_str_array(V *v, const MpNode *arr, const char *path,
								uint32_t max_items, uint32_t minlen, uint32_t maxlen, int flags,
								uint32_t *n_out, TgStr **out);

/*
 * A map string -> finite number (undefined values skipped) of at most
 * max_entries entries whose keys pass tgw_check_str(0..max_key, key_flags).
 */
extern bool tgw_check_number_map(V *v, const MpNode *m, const char *path,
								 uint32_t max_entries, uint32_t max_key, int key_flags);

/* shared structures */
extern bool tgw_check_timestamp(V *v, const MpNode *n, const char *path, TgTimestamp *ts);
extern bool tgw_check_lww_record(V *v, const MpNode *n, const char *path, TgLwwRecord *r);
extern bool tgw_check_or_record(V *v, const MpNode *n, const char *path, TgOrRecord *r);
extern bool tgw_opt_write_concern(V *v, const MpNode *obj, const char *path,
								  TgWriteConcern *out);
extern bool tgw_payload(V *v, const MpNode *root, const MpNode **payload);
extern bool tgw_map_name(V *v, const MpNode *obj, const char *path, TgStr *out);

/* message_sync.c */
extern bool tgw_parse_op_batch(V *v, const MpNode *root, TgMessage *msg);
extern bool tgw_parse_client_op(V *v, const MpNode *root, TgMessage *msg);
extern bool tgw_parse_bucket_req(V *v, const MpNode *root, TgMessage *msg);
extern bool tgw_parse_ormap_sync_init(V *v, const MpNode *root, TgMessage *msg);
extern bool tgw_parse_ormap_push_diff(V *v, const MpNode *root, TgMessage *msg);
extern bool tgw_parse_ormap_diff_request(V *v, const MpNode *root, TgMessage *msg);

/* message_live.c */
extern bool tgw_parse_query_sub(V *v, const MpNode *root, TgMessage *msg);
extern bool tgw_parse_counter_sync(V *v, const MpNode *root, TgMessage *msg);

/* message_search.c */
extern bool tgw_parse_search(V *v, const MpNode *root, TgMessage *msg);
extern bool tgw_parse_hybrid_query(V *v, const MpNode *root, TgMessage *msg);

/* message_logic.c */
extern bool tgw_parse_entry_process(V *v, const MpNode *root, TgMessage *msg);
extern bool tgw_parse_resolver(V *v, const MpNode *root, TgMessage *msg);

/* message_journal.c */
extern bool tgw_parse_journal(V *v, const MpNode *root, TgMessage *msg);
extern bool tgw_parse_partition_map_request(V *v, const MpNode *root, TgMessage *msg);

#endif							/* TG_WIRE_MESSAGE_CHECK_H */
