/*
 * gc.h — tombstone GC schedule and GC_PRUNE (gc.c).
 */
#ifndef TG_EXEC_GC_H
#define TG_EXEC_GC_H

#include "exec/exec.h"

extern void tg_gc_tick(void);
extern void tg_gc_note_activity(TgConn *c);
extern void tg_read_gc(TgConn *c, const char *payload, size_t len);	/* reader */

#endif							/* TG_EXEC_GC_H */
