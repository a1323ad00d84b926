/*
 * worker_sock.h — the socket process: transport (worker_main.c) and its
 * side of the session executor's queues (sock_exec.c).  Only the socket
 * process calls these.
 */
#ifndef TG_WORKER_SOCK_H
#define TG_WORKER_SOCK_H

#include "worker/worker.h"

/* worker_main.c: the sockets */
extern bool tg_sock_send(TgConn *c, const unsigned char *data, size_t len);
extern void tg_sock_close(TgConn *c, int code, const char *reason);
extern void tg_sock_kill(TgConn *c, int code, const char *reason);
extern void tg_sock_update_slot(TgConn *c);
extern void tg_sock_restart(int code, const char *reason) pg_attribute_noreturn();

/* sock_exec.c: the session executor seen from the socket process */
extern void tg_sx_open(TgConn *c);
extern void tg_sx_closed(TgConn *c);
extern void tg_sx_forward(TgConn *c, const unsigned char *data, size_t len);
extern void tg_sx_poll(void);
extern bool tg_sx_paused(void);
extern void tg_sx_shutdown(void);

#endif							/* TG_WORKER_SOCK_H */
