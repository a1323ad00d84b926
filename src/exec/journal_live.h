/*
 * journal_live.h — event journal subscriptions (journal_live.c).
 */
#ifndef TG_EXEC_JOURNAL_LIVE_H
#define TG_EXEC_JOURNAL_LIVE_H

#include "exec/exec.h"

extern void tg_journal_subscribe(TgConn *c, TgMessage *m);
extern void tg_journal_unsubscribe(TgConn *c, TgMessage *m);
extern void tg_journal_conn_gone(TgConn *c);
extern void tg_journal_tick(void);
extern void tg_read_journal_events(TgConn *c, const char *payload, size_t len);	/* reader */

#endif							/* TG_EXEC_JOURNAL_LIVE_H */
