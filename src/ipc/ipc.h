/*
 * ipc.h — the queues between the sync server's processes (docs/worker.md).
 *
 *   socket process ──in──▶ session executor ──rreq[i]──▶ reader i
 *   socket process ◀─out── session executor ◀─rrep[i]─── reader i
 *
 * One DSM segment per session-executor generation, created by the socket
 * process, holds every queue (shm_mq, one sender and one receiver each).
 * A message on a queue is a sequence of records (TgRec + payload padded to
 * 8 bytes), so one shm_mq message carries a whole loop iteration's worth.
 */
#ifndef TG_IPC_H
#define TG_IPC_H

#include "postgres.h"

#include "port/atomics.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/shm_mq.h"

#include "auth/jwt.h"

#define TG_IPC_MAGIC		0x74677131	/* "tgq1" */
#define TG_MAX_READERS		32

/* Record kinds. */
typedef enum TgRecKind
{
	/* socket process -> session executor */
	TG_REC_OPEN = 1,			/* payload: remote address (text) */
	TG_REC_FRAME,				/* payload: one complete WebSocket message */
	TG_REC_CLOSED,				/* the socket is gone */
	/* session executor -> socket process */
	TG_REC_SEND = 16,			/* payload: one message for the client */
	TG_REC_CLOSE,				/* TgRecClose: close after flushing */
	TG_REC_KILL,				/* TgRecClose: drop the queue, close now */
	TG_REC_SESSION,				/* TgRecSession: session state for the slot */
	TG_REC_DONE,				/* uint64: frames of this connection handled */
	TG_REC_RESTART,				/* TgRecClose: close everything, start afresh */
	TG_REC_SEND_MORE,			/* payload: a further message of the reply the last
								 * TG_REC_SEND began (the outbound cap counts the
								 * reply as one message) */
	/* session executor -> reader (conn field = request id) */
	TG_REQ_SYNC_ROOT = 32,		/* the SYNC_INIT / ORMAP_SYNC_INIT frame */
	TG_REQ_BUCKET,				/* MERKLE_REQ_BUCKET / ORMAP_MERKLE_REQ_BUCKET */
	TG_REQ_DIFF,				/* ORMAP_DIFF_REQUEST */
	TG_REQ_FETCH,				/* msgpack {m: map, q: query, c: cursor} */
	TG_REQ_MESSAGE,				/* a feature message (read_msgs.c) */
	TG_REQ_SEARCH_KEYS,			/* msgpack {m, q, b, l, n, k}: live search re-scoring */
	TG_REQ_GC,					/* int64 client floor (ms): one topgun.gc_run() batch */
	TG_REQ_JOURNAL,				/* msgpack {f: from, l: limit}: journal events for subscriptions */
	TG_REQ_PROCESS,				/* an ENTRY_PROCESS frame: batched with others in one transaction */
	/* reader -> session executor */
	TG_REP_FRAME = 48,			/* payload: the reply message for the client */
	TG_REP_ROWS,				/* msgpack {rows: [[key, value]...], total} */
	TG_REP_ERROR				/* TgRecError */
} TgRecKind;

typedef struct TgRec
{
	uint32		kind;
	uint32		len;			/* payload bytes (without padding) */
	uint64		conn;			/* connection id, or request id */
} TgRec;

typedef struct TgRecClose
{
	int32		code;
	char		reason[64];
} TgRecClose;

typedef struct TgRecSession
{
	bool		authenticated;
	int32		watched_maps;
	int32		queries;
	int32		topics;
	int32		counters;
	uint64		limit_hits;
	uint64		denied;
	int64		expires_ms;		/* the token's exp + leeway (wall ms), 0 = never */
	uint64		rate_limited;
	char		user[TG_JWT_MAX_ID_BYTES + 1];	/* the whole identity */
} TgRecSession;

typedef struct TgRecError
{
	int32		code;			/* ERROR code for the client (400, 500 ...) */
	char		message[500];
} TgRecError;

/* A growable malloc'd record buffer (usable inside lws callbacks). */
typedef struct TgIpcBuf
{
	char	   *data;
	size_t		len;
	size_t		cap;
	bool		failed;			/* out of memory: contents incomplete */
} TgIpcBuf;

extern void tg_ipc_put(TgIpcBuf *b, TgRecKind kind, uint64 conn, const void *p, size_t len);
extern void tg_ipc_buf_reset(TgIpcBuf *b);
extern void tg_ipc_buf_free(TgIpcBuf *b);

/* Iterate the records of one received message. */
typedef struct TgRecIter
{
	const char *p;
	const char *end;
} TgRecIter;

extern void tg_rec_iter_init(TgRecIter *it, const void *data, Size len);
extern bool tg_rec_next(TgRecIter *it, TgRec *rec, const char **payload);

/* ----------------------------------------------------------- the segment */

typedef struct TgIpcHeader
{
	uint32		magic;
	int			nreaders;
	pg_atomic_uint32 sp_pid;	/* socket process: woken with SIGUSR2 */
	pg_atomic_uint32 sp_wake_pending;	/* a wake-up is on its way */
	pg_atomic_uint32 sp_blocked;	/* the socket process waits for room on "in" */
	pg_atomic_uint32 session_pid;
} TgIpcHeader;

/* Queue sizes (the ring; a message may be larger and is streamed). */
#define TG_IPC_IN_SIZE		((Size) 8 * 1024 * 1024)
#define TG_IPC_OUT_SIZE		((Size) 8 * 1024 * 1024)
#define TG_IPC_RREQ_SIZE	((Size) 256 * 1024)
#define TG_IPC_RREP_SIZE	((Size) 4 * 1024 * 1024)

typedef enum TgQueueId
{
	TG_Q_IN = 1,
	TG_Q_OUT = 2,
	TG_Q_RREQ_BASE = 16,		/* + 2 * reader */
	TG_Q_RREP_BASE = 17			/* + 2 * reader */
} TgQueueId;

extern dsm_segment *tg_ipc_create(int nreaders, TgIpcHeader **hdr);
extern TgIpcHeader *tg_ipc_attach(dsm_segment *seg);
extern shm_mq *tg_ipc_queue(dsm_segment *seg, int id);
extern void tg_ipc_reset_queue(dsm_segment *seg, int id);

/*
 * Send one message without blocking: SHM_MQ_WOULD_BLOCK means part of it
 * may be on the queue; call again with the same bytes until it is not.
 */
extern shm_mq_result tg_ipc_send_nowait(shm_mq_handle *h, const void *data, Size len);

/* conn.c: where the executor's tg_conn_send() writes, and as which record */
extern TgIpcBuf *tg_exec_out;
extern TgRecKind tg_exec_send_kind;

/* Wake the socket process (at most one signal until it drains "out"). */
extern void tg_ipc_wake_socket(TgIpcHeader *hdr);

#endif							/* TG_IPC_H */
