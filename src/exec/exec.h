/*
 * exec.h — what the executor modules share (docs/worker.md, "Layout"):
 * transactions and plans (txn.c), msgpack output (encode.c), watches
 * (watches.c), the handlers of the session executor (dispatch.c,
 * session_msgs.c, apply.c, sync.c, ormap.c) and of live data (queries.c,
 * feed.c, topics.c, counters.c, acl.c, recheck.c).  Everything here runs in
 * an executor process, never in the socket process.
 */
#ifndef TG_EXEC_H
#define TG_EXEC_H

#include "postgres.h"

#include "executor/spi.h"
#include "utils/jsonb.h"

#include "query/query.h"
#include "wire/message.h"
#include "wire/msgpack.h"
#include "ipc/ipc.h"
#include "worker/worker.h"

/* Origin the worker stamps on its own commits: their feed echoes are skipped. */
#define TG_WORKER_ORIGIN	UINT64CONST(0x746f7067756e)	/* "topgun" */

/* Reserved topic: topgun.policies changed (sent by a trigger). */
#define TG_POLICY_TOPIC		"topgun:policies-changed"

/* ------------------------------------------------ txn.c */
typedef enum PlanId
{
	PL_LWW_PUT,
	PL_OR_APPLY,
	PL_OR_REMOVE_TAG,
	PL_HLC_NOW,
	PL_MAP_KIND,
	PL_ROOT,
	PL_BUCKETS,
	PL_LWW_LEAF,
	PL_OR_LEAF,
	PL_OR_MERGE_KEY,
	PL_LWW_ENTRIES,
	PL_OR_ENTRIES,
	PL_OR_KEY_RECORDS,
	PL_OR_KEY_TOMBSTONES,
	PL_COUNT
} PlanId;

extern MemoryContext tg_proto_cxt;
extern void tg_proto_enter(MemoryContext cxt);
extern void tg_txn_begin(void);
extern void tg_txn_end(void);
extern ErrorData *tg_txn_recover(void);
extern ErrorData *tg_subxact_run(void (*fn) (void *arg), void *arg);
extern SPIPlanPtr tg_live_plan(int *slot, const char *sql, int nargs, const Oid *types);
extern int	tg_run_plan(PlanId id, Datum *args, const char *nulls, bool read_only);
extern void tg_plans_reset(void);
extern bool tg_ready_check_wanted;
extern char *tg_hlc_now_text(void);
extern char *tg_map_kind(const char *map);

/* ------------------------------------------------ encode.c */
extern MpBuf *tg_buf_begin(void);
extern void tg_buf_send(TgConn *c, MpBuf *b);
extern void tg_send_error(TgConn *c, int code, const char *message);
extern void tg_put_jsonb(MpBuf *b, Jsonb *jb);
extern bool tg_put_jsonb_object_plus(MpBuf *b, Jsonb *obj, uint32 nextra);
extern void tg_put_hlc_text(MpBuf *b, const char *hlc);
extern void tg_put_timestamp(MpBuf *b, const TgTimestamp *ts);
extern MpNode *tg_jsonb_to_node(MpArena *arena, Jsonb *jb);	/* NULL on failure */
extern char *tg_pstr(TgStr s);
extern char *tg_hlc_text(const TgTimestamp *ts);
extern void tg_send_op_rejected(TgConn *c, TgOp *op, const char *reason);
typedef struct TgAckedOp
{
	TgOp	   *op;				/* has an id */
	const char *error;			/* NULL: success */
} TgAckedOp;
extern void tg_send_op_ack(TgConn *c, const TgAckedOp *ops, int n);
extern void tg_send_merge_rejected(TgConn *c, TgOp *op, const char *reason);

static inline void
tg_put_tgstr(MpBuf *b, TgStr s)
{
	mp_put_strn(b, s.p, s.len);
}

/* ------------------------------------------------ conn.c (where sends go) */

extern void tg_conn_handled(TgConn *c, int n);
/* The connection's identity: the token's userId, else its sub ("" if none). */
extern const char *tg_conn_identity(const TgConn *c);

/* ------------------------------------------------ watches.c */
extern bool tg_watches_map(TgConn *c, const char *map, size_t len);
extern void tg_watch_add(TgConn *c, TgStr map, TgStr *query_id);
extern void tg_watch_drop_query(TgConn *c, TgStr query_id);
extern void tg_watch_drop_query_id(TgConn *c, const char *query_id);
extern void tg_watch_add_query(TgConn *c, TgStr map, TgStr query_id);
extern void tg_watches_recheck_conn(TgConn *c);
extern void tg_watches_free_conn(TgConn *c);
extern bool tg_map_watched(const char *map, size_t len);

/* ------------------------------------------------ session executor handlers */
extern void tg_note_invalid(TgConn *c, const char *reason);
extern void tg_handle_auth(TgConn *c, TgMessage *m);
extern void tg_handle_ping(TgConn *c);
extern void tg_group_add(TgConn *c, TgInMsg *in, TgMessage *msg);	/* apply.c */
extern void tg_group_refuse(TgConn *c, TgInMsg *in, TgMessage *msg, const char *why);
extern void tg_group_flush(void);
extern bool tg_sync_init_session(TgConn *c, TgStr map, bool has_last_sync, double last_sync);
/* ormap.c, in a transaction: merges, and adds to *out the events of what changed */
struct TgEventList;
extern bool tg_push_diff(TgConn *c, TgMessage *m, struct TgEventList *out);

/* reader executors: the database part of the read messages */
extern void tg_read_sync_root(TgConn *c, TgMessage *m);
extern void tg_read_bucket(TgConn *c, TgMessage *m);
extern void tg_read_diff(TgConn *c, TgMessage *m);

/* ------------------------------------------------------- access control */
typedef enum TgAction
{
	TG_ACT_READ = 1,
	TG_ACT_PUT = 2,
	TG_ACT_REMOVE = 4
} TgAction;

extern void tg_acl_load(void);	/* in a transaction */
extern void tg_acl_invalidate(void);
extern bool tg_acl_needs_reload(void);
extern bool tg_acl_allowed(TgConn *c, const char *resource, size_t len, TgAction act);
extern bool tg_acl_check(TgConn *c, const char *resource, size_t len, TgAction act);	/* + 403 */
extern void tg_acl_after_auth(TgConn *c);
extern bool tg_acl_has_role(const TgConn *c, const char *role);	/* USER for a token without roles */

/* ------------------------------------------------------- query subscriptions */
typedef struct TgKeySet
{
	char	  **slots;			/* NULL = empty, TG_KEYSET_DEAD = deleted */
	uint32		cap;
	uint32		n;
	uint32		used;			/* n + dead */
} TgKeySet;

extern char tg_keyset_dead;		/* keyset.c */

#define TG_KEYSET_DEAD (&tg_keyset_dead)
extern size_t tg_ks_len(const char *e);
extern bool tg_ks_has(const TgKeySet *ks, const char *k, size_t len);
extern bool tg_ks_add(TgKeySet *ks, const char *k, size_t len);
extern void tg_ks_del(TgKeySet *ks, const char *k, size_t len);
extern void tg_ks_free(TgKeySet *ks);

typedef struct TgMapSubs TgMapSubs;

typedef struct TgQuerySub
{
	struct TgQuerySub *next;	/* of the connection */
	struct TgQuerySub *map_next;	/* of the map */
	struct TgQuerySub *map_prev;
	TgConn	   *conn;
	TgMapSubs  *ms;
	char	   *query_id;
	TgQuery    *q;
	bool		rerun;			/* limit/cursor: re-run on a relevant change */
	char	   *cursor;			/* as sent (rerun pages from it) */
	TgKeySet	keys;			/* keys the client currently holds */

	/* pages are read by reader executors (worker_query.c) */
	char	   *qraw;			/* the query as sent (msgpack), NULL = none */
	size_t		qraw_len;
	const char *cursor_status;	/* of the QUERY_SUB's cursor */
	bool		cursor_valid;
	bool		loading;		/* first page not answered yet */
	bool		dirty;			/* changed while loading: refresh once loaded */
	bool		inflight;		/* a page read is out */
	struct Pending *running;	/* the re-run that read is for */

	/* where the map finds it (query_subs.c) */
	struct TgQuerySub *eq_next;	/* in its equality bucket, or the rest list */
	struct TgQuerySub *eq_prev;
	uint64		eq_hash;
	int			eq_slot;		/* -1: no equality constraint (rest list) */
	uint64		visit;			/* last write that looked at it */

	/* a limited page's last row (no cursor): writes after it are outside */
	char	   *bkey;			/* NULL: unknown */
	size_t		bkeylen;
	char	   *bval;			/* its value, msgpack */
	size_t		bvallen;
	size_t		mem;			/* bytes counted in query_subscription_bytes */
	bool		refilling;		/* the read out is one row past bkey */
} TgQuerySub;

/* query_subs.c: per-map registry and index of the subscriptions */
typedef void (*TgQsubsVisit) (TgQuerySub *sub, void *arg);
extern TgMapSubs *tg_qsubs_map(const char *map, size_t len, bool create);
extern const char *tg_qsubs_map_name(const TgMapSubs *ms, size_t *len);
extern void tg_qsubs_add(TgMapSubs *ms, TgQuerySub *sub);
extern void tg_qsubs_remove(TgQuerySub *sub);
extern void tg_qsubs_hold(TgQuerySub *sub, const char *key, size_t keylen);
extern void tg_qsubs_release(TgQuerySub *sub, const char *key, size_t keylen);
extern void tg_qsubs_release_all(TgQuerySub *sub);
extern void tg_qsubs_account(TgQuerySub *sub, bool gone);
extern void tg_qsubs_set_boundary(TgQuerySub *sub, const char *key, size_t keylen, const MpNode *value);
extern bool tg_qsubs_is_boundary(const TgQuerySub *sub, const char *key, size_t keylen);
extern bool tg_qsubs_boundary_cursor(TgQuerySub *sub, char *out, size_t outlen);
extern int	tg_qsubs_vs_boundary(TgQuerySub *sub, const char *key, size_t keylen, const MpNode *value);
extern void tg_qsubs_candidates(TgMapSubs *ms, const char *key, size_t keylen, const MpNode *value, bool or_map,
								TgQsubsVisit fn, void *arg);

extern bool tg_query_handle_sub(TgConn *c, TgMessage *m);	/* true: a read is out */
extern void tg_read_fetch(TgConn *c, const char *payload, size_t len);	/* reader */
/* a page read for a subscription (query_fetch.c encodes it, queries.c reads it) */
typedef struct TgQPage
{
	int			n;
	int64		total;
	const MpNode **keys;
	const MpNode **values;
	const MpNode **sorts;		/* what each row sorts by: its value, or an OR key's pick */
} TgQPage;
extern bool tg_query_page_decode(MpArena *arena, const char *msg, Size len, TgQPage *pg);
extern void tg_query_handle_unsub(TgConn *c, TgStr query_id);
extern void tg_query_conn_gone(TgConn *c);
extern bool tg_query_map_has_subs(const char *map, size_t len);

/*
 * A record of map changed (value NULL = deleted / tombstone).  Sends
 * QUERY_UPDATEs; subscriptions that need a re-run are queued and served by
 * tg_query_run_pending() (needs a transaction).
 */
extern void tg_query_on_change(const char *map, size_t maplen, const char *key, size_t keylen,
							   const MpNode *value);
/* The current values of an OR key as a jsonb array (ormap.c; NULL: none; needs SPI). */
extern Jsonb *tg_or_values(text *map, text *key);
/* The same for a key of an OR map: values = the array of its current values (NULL: none). */
extern void tg_query_on_or_change(const char *map, size_t maplen, const char *key, size_t keylen,
								  const MpNode *values);
extern bool tg_query_has_pending(void);
extern void tg_query_run_pending(void);	/* hands re-reads to the readers */
extern void tg_query_recheck_conn(TgConn *c);

/* ------------------------------------------------------- topics */
typedef struct TgNameSub
{
	struct TgNameSub *next;
	char		name[FLEXIBLE_ARRAY_MEMBER];
} TgNameSub;

extern void tg_topic_handle(TgConn *c, TgMessage *m);
extern void tg_topic_publish(TgConn *from, const char *topic, size_t len,
							 const MpNode *data, const char *data_json, int64 ts_ms,
							 const char *publisher);
extern void tg_topics_flush(void);	/* persist pending offline-queue entries */
extern void tg_topics_ready(void);	/* in a transaction: load durable topics */
extern void tg_topics_conn_gone(TgConn *c);

/* ------------------------------------------------------- counters */
extern void tg_counter_handle(TgConn *c, TgMessage *m);	/* in a transaction */
extern void tg_counters_after_commit(bool committed);
extern void tg_counter_push(const char *name, size_t len, Jsonb *state, TgConn *also);
extern void tg_counters_conn_gone(TgConn *c);

/* ------------------------------------------------------- requests.c, read_msgs.c */
extern void tg_send_typed_failure(TgConn *c, TgMsgType type, const char *rid, size_t rlen, const char *error);
extern bool tg_try_typed_failure(TgConn *c, TgMsgType type, const char *rid, size_t rlen, const char *error);
extern bool tg_feature_request(TgConn *c, TgInMsg *in, TgMessage *m);
/* mesh_map.c: this node's endpoint for cluster-mode clients */
extern void tg_mesh_url(char *buf, size_t len);
extern void tg_mesh_advertise(void);
extern void tg_read_message(TgConn *c, TgMessage *m);	/* reader */

/* ------------------------------------------------------- locks.c */
extern void tg_lock_handle(TgConn *c, TgMessage *m);
extern void tg_locks_conn_gone(TgConn *c);
extern void tg_locks_tick(void);

/* conn.c: the connections by id (NULL if gone) */
extern void tg_conn_register(TgConn *c);
extern void tg_conn_unregister(TgConn *c);
extern TgConn *tg_conn_find(uint64 id);

/* ------------------------------------------------------- recheck.c */
extern void tg_recheck_access(void);	/* policies changed: one walk over every connection */

/* ------------------------------------------------------- name lists */
extern bool tg_namesub_has(TgNameSub *list, const char *name, size_t len);
extern bool tg_namesub_add(TgNameSub **list, const char *name, size_t len);
extern bool tg_namesub_del(TgNameSub **list, const char *name, size_t len);
extern void tg_namesub_free(TgNameSub **list);
extern void tg_namesub_recheck(TgConn *c, TgNameSub **list, int *count, const char *prefix);

#endif							/* TG_EXEC_H */
