/*
 * reads.h — what a reader executor does with a request (reads.c).
 */
#ifndef TG_EXEC_READS_H
#define TG_EXEC_READS_H

#include "ipc/ipc.h"
#include "worker/worker.h"

/* In a transaction; the reply goes through tg_conn_send() / tg_exec_out. */
extern void tg_reads_serve(TgConn *c, TgRecKind kind, const char *payload, size_t len);

/* The processor lock id of a TG_REQ_PROCESS frame (0 when unparsable). */
extern int64 tg_reads_process_lock(const char *payload, size_t len);

/*
 * reader_batch.c: serve n TG_REQ_PROCESS requests (rec[i] with payload[i])
 * in one transaction, replies into out[i]; false when that transaction
 * failed and nothing of it committed (the caller serves them one by one).
 */
extern bool tg_reader_serve_batch(const TgRec *rec, const char *const *payload, TgIpcBuf *out, int n);

#endif							/* TG_EXEC_READS_H */
