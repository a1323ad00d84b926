/*
 * reads.h — what a reader executor does with a request (reads.c).
 */
#ifndef TG_EXEC_READS_H
#define TG_EXEC_READS_H

#include "ipc/ipc.h"
#include "worker/worker.h"

/* In a transaction; the reply goes through tg_conn_send() / tg_exec_out. */
extern void tg_reads_serve(TgConn *c, TgRecKind kind, const char *payload, size_t len);

#endif							/* TG_EXEC_READS_H */
