/*
 * server.h — the socket process: lifecycle (main.c), sockets
 * (transport.c) and its side of the session executor's queues
 * (exec_link.c).  Only the socket process calls these.
 */
#ifndef TG_SERVER_H
#define TG_SERVER_H

#include "worker/worker.h"

/* transport.c: the sockets */
extern struct lws_protocols tg_sock_protocols[];
/* wake_fd: read end of main.c's wake-up pipe; open_cb: a socket was accepted */
extern void tg_sock_init(int wake_fd, void (*open_cb) (TgConn *c));
extern TgInMsg *tg_sock_take_inbound(void);
extern void tg_sock_reap(void (*gone) (TgConn *c));
extern bool tg_sock_send(TgConn *c, const unsigned char *data, size_t len);
extern bool tg_sock_send_more(TgConn *c, const unsigned char *data, size_t len);
extern void tg_sock_close(TgConn *c, int code, const char *reason);
extern void tg_sock_kill(TgConn *c, int code, const char *reason);
extern void tg_sock_update_slot(TgConn *c);

/* exec_link.c: the session executor seen from the socket process */
extern void tg_sx_open(TgConn *c);
extern void tg_sx_closed(TgConn *c);
extern void tg_sx_forward(TgConn *c, const unsigned char *data, size_t len);
extern void tg_sx_poll(void);
extern bool tg_sx_paused(void);
extern bool tg_sx_restart_wanted(int *code, char *reason, size_t len);
extern void tg_sx_shutdown(void);

#endif							/* TG_SERVER_H */
