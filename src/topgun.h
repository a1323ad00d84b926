/*
 * topgun.h — declarations shared by every PostgreSQL-side module.
 *
 * Each module owns its GUCs and shared memory and exposes one init function
 * that _PG_init() (src/topgun.c) calls while shared_preload_libraries is
 * being processed.
 */
#ifndef TOPGUN_H
#define TOPGUN_H

#include "postgres.h"

/* Hard limits on names, enforced by every write path (documented in docs/sql-api.md). */
#define TG_MAX_MAP_BYTES	256
#define TG_MAX_KEY_BYTES	1024
#define TG_MAX_NODE_BYTES	128
#define TG_MAX_TAG_BYTES	256

/* Module initialisation (called from _PG_init). */
extern void tg_clock_init(void);
extern void tg_storage_init(void);
extern void tg_merkle_init(void);
extern void tg_changes_init(void);
extern void tg_journal_init(void);
extern void tg_worker_init(void);
extern void tg_metrics_init(void);

#endif							/* TOPGUN_H */
