/*
 * search_live.h — live search subscriptions (search_live.c).
 */
#ifndef TG_EXEC_SEARCH_LIVE_H
#define TG_EXEC_SEARCH_LIVE_H

#include "exec/exec.h"

extern bool tg_search_sub(TgConn *c, TgInMsg *in, TgMessage *m);	/* true: a read is out */
extern void tg_search_unsub(TgConn *c, TgMessage *m);
extern void tg_search_conn_gone(TgConn *c);
extern bool tg_search_map_has_subs(const char *map, size_t maplen);
extern void tg_search_changed(const char *map, size_t maplen, const char *key, size_t keylen);
extern void tg_search_run_pending(void);
extern void tg_read_search_keys(TgConn *c, const char *payload, size_t len);	/* reader */

#endif							/* TG_EXEC_SEARCH_LIVE_H */
