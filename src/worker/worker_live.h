/*
 * worker_live.h — live data in the sync worker (issue 5): query
 * subscriptions, the change-feed consumer, topics, counters and access
 * control.  Shared by worker_proto.c and the worker_{query,feed,topics,
 * counters,acl}.c files; everything here runs in the worker's main loop.
 */
#ifndef TG_WORKER_LIVE_H
#define TG_WORKER_LIVE_H

#include "postgres.h"

#include "executor/spi.h"
#include "utils/jsonb.h"

#include "query/query.h"
#include "wire/message.h"
#include "wire/msgpack.h"
#include "worker/worker.h"

/* Origin the worker stamps on its own commits: their feed echoes are skipped. */
#define TG_WORKER_ORIGIN	UINT64CONST(0x746f7067756e)	/* "topgun" */

/* Reserved topic: topgun.policies changed (sent by a trigger). */
#define TG_POLICY_TOPIC		"topgun:policies-changed"

/* ------------------------------------------------ worker_proto.c helpers */
extern MemoryContext tg_proto_cxt;
extern struct TgIpcBuf *tg_exec_out;	/* where tg_conn_send() puts messages */
extern void tg_proto_enter(MemoryContext cxt);
extern MpBuf *tg_buf_begin(void);
extern void tg_buf_send(TgConn *c, MpBuf *b);
extern void tg_send_error(TgConn *c, int code, const char *message);
extern void tg_put_jsonb(MpBuf *b, Jsonb *jb);
extern void tg_put_hlc_text(MpBuf *b, const char *hlc);
extern void tg_txn_begin(void);
extern void tg_txn_end(void);
extern ErrorData *tg_txn_recover(void);
extern SPIPlanPtr tg_live_plan(int *slot, const char *sql, int nargs, const Oid *types);
extern void tg_live_reset_plans(void);
extern bool tg_watches_map(TgConn *c, const char *map, size_t len);
extern void tg_group_flush_pending(void);
extern void tg_proto_add_query_watch(TgConn *c, TgStr map, TgStr query_id);
extern void tg_proto_drop_query_watch(TgConn *c, const char *query_id);
extern void tg_proto_recheck_watches(void);
extern void tg_conn_handled(TgConn *c, int n);

/* reader executors: the database part of the read messages */
extern void tg_read_sync_root(TgConn *c, TgMessage *m);
extern void tg_read_bucket(TgConn *c, TgMessage *m);
extern void tg_read_diff(TgConn *c, TgMessage *m);

/* jsonb → decoded msgpack tree in arena (NULL on failure). */
extern MpNode *tg_jsonb_to_node(MpArena *arena, Jsonb *jb);

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

/* ------------------------------------------------------- query subscriptions */
typedef struct TgKeySet
{
	char	  **slots;			/* NULL = empty, TG_KEYSET_DEAD = deleted */
	uint32		cap;
	uint32		n;
	uint32		used;			/* n + dead */
} TgKeySet;

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
} TgQuerySub;

extern bool tg_query_handle_sub(TgConn *c, TgMessage *m);	/* true: a read is out */
extern void tg_read_fetch(TgConn *c, const char *payload, size_t len);	/* reader */
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
extern bool tg_query_has_pending(void);
extern void tg_query_run_pending(void);	/* hands re-reads to the readers */
extern void tg_query_recheck_acl(void);

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
extern void tg_topics_recheck_acl(void);

/* ------------------------------------------------------- counters */
extern void tg_counter_handle(TgConn *c, TgMessage *m);	/* in a transaction */
extern void tg_counters_after_commit(bool committed);
extern void tg_counter_push(const char *name, size_t len, Jsonb *state, TgConn *also);
extern void tg_counters_conn_gone(TgConn *c);
extern void tg_counters_recheck_acl(void);

/* ------------------------------------------------------- name lists */
extern bool tg_namesub_has(TgNameSub *list, const char *name, size_t len);
extern bool tg_namesub_add(TgNameSub **list, const char *name, size_t len);
extern bool tg_namesub_del(TgNameSub **list, const char *name, size_t len);
extern void tg_namesub_free(TgNameSub **list);

#endif							/* TG_WORKER_LIVE_H */
