/*
 * journal.h — the event journal (src/journal) and the tombstone GC settings.
 *
 * The journal records every committed change of a journaled map (LWW and OR
 * rows, whatever wrote them) in topgun.journal_events, numbered by the
 * sequence topgun.journal_seq.  Numbers are taken at pre-commit, so they are
 * not commit-ordered by themselves; the "safe horizon" (horizon.c) is the
 * largest number below which every transaction that took a number has
 * finished, so a reader that only reads up to it sees events in sequence
 * order and never misses one that commits later with a smaller number
 * (docs/journal.md).
 */
#ifndef TG_JOURNAL_H
#define TG_JOURNAL_H

#include "postgres.h"

/* Settings the sync server reads (docs/gc.md, docs/journal.md). */
extern int	tg_gc_horizon_s;	/* topgun.gc_horizon: tombstone age kept, and the
								 * SYNC_RESET_REQUIRED age */
extern int	tg_gc_interval_s;	/* topgun.gc_interval: how often to run gc_run() */
extern int	tg_journal_buffer_events;	/* events kept in memory before a flush */

/* Called from _PG_init. */
extern void tg_journal_init(void);

/* horizon.c */
extern void tg_journal_horizon_shmem(void);
extern void tg_journal_take_numbers(Oid seq, int64 *seqs, int n);
extern void tg_journal_release(void);
extern int64 tg_journal_horizon(void);

/* patterns.c */
extern bool tg_journal_map_enabled(const char *map, int len);
extern bool tg_journal_any_enabled(void);
extern void tg_journal_patterns_init(void);

/* events.c */
extern void tg_journal_events_init(void);

/* init.c: run fn(arg) with the rights of the owner of relation `relid`. */
extern void tg_journal_as_owner(Oid relid, void (*fn) (void *), void *arg);
extern Oid	tg_journal_relid(const char *relname, bool missing_ok);

#endif							/* TG_JOURNAL_H */
