/*
 * readers.h — reader executors seen from the session executor: submit a
 * read, get the reply in a continuation.  A connection with a read out is
 * "busy": its later messages wait (tg_proto_process), so replies stay in
 * the order the client sent its messages.
 */
#ifndef TG_EXEC_READERS_H
#define TG_EXEC_READERS_H

#include "ipc/ipc.h"
#include "worker/worker.h"

/*
 * Called once per submitted read: msg/len is the reader's reply (records),
 * or msg == NULL with err set (the reader failed or died).  c is NULL when
 * the connection went away meanwhile.
 */
typedef void (*TgReadDone) (TgConn *c, void *arg, const char *msg, Size len,
							const TgRecError *err);

extern void tg_readers_start(dsm_segment *seg, TgIpcHeader *hdr);
extern void tg_readers_stop(void);

/* holds_conn: the request answers a client message (busy until done) */
extern void tg_readers_submit(TgConn *c, bool holds_conn, TgRecKind kind,
							  const void *payload, size_t len,
							  TgReadDone done, void *arg);
/*
 * Always to the same reader for the same `pin` (requests with one pin run in
 * the order sent: FIFO per reader).  Entry processors pin by map: every
 * transaction that writes a map updates its Merkle tree's depth-2 rows,
 * which two batches of one map nearly always share, so two readers writing
 * one map only queue behind each other's commit, while
 * one reader gathers them into larger shared transactions (reader_batch.c).
 * Without holds_conn the caller counts the frame handled and the
 * connection's next messages go on.
 */
extern void tg_readers_submit_pinned(TgConn *c, bool holds_conn, uint32 pin, TgRecKind kind,
									 const void *payload, size_t len, TgReadDone done, void *arg);
extern void tg_readers_poll(void);
extern void tg_readers_conn_gone(TgConn *c);
extern void tg_readers_forget(void *arg);	/* arg is being freed */
extern int	tg_readers_in_flight(void);

/* Forward every TG_REP_FRAME of a reply to c; send the error otherwise. */
extern void tg_readers_forward_frames(TgConn *c, void *arg, const char *msg, Size len,
									  const TgRecError *err);

#endif							/* TG_EXEC_READERS_H */
