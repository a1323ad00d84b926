/*
 * session.h — the session executor (docs/worker.md, "Processes"): the
 * background worker that owns the sessions of every connection (auth,
 * watches, subscriptions), group-commits the writes, consumes the change
 * feed and hands reads to the reader executors.  It talks to the socket
 * process through the queues of src/ipc; it never touches a socket.
 */
#ifndef TG_EXEC_SESSION_H
#define TG_EXEC_SESSION_H

#include "worker/worker.h"

extern PGDLLEXPORT void tg_session_main(Datum arg);
extern PGDLLEXPORT void tg_reader_main(Datum arg);




#endif							/* TG_EXEC_SESSION_H */
