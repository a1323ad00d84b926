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

#include "utils/guc.h"

/* Hard limits on names, enforced by every write path (documented in docs/sql-api.md). */
#define TG_MAX_MAP_BYTES	256
#define TG_MAX_KEY_BYTES	1024
#define TG_MAX_NODE_BYTES	128
#define TG_MAX_TAG_BYTES	256

/*
 * topgun.production (src/core/mode.c; registered with the sync server's GUCs):
 * every module's production defaults follow it (docs/configuration.md).
 */
extern bool tg_production;

/*
 * Settings whose default follows topgun.production: an enum GUC of auto
 * (the default: on exactly when topgun.production is on), on and off (the
 * boolean spellings are accepted too).
 */
#define TG_AUTO_OFF		0
#define TG_AUTO_ON		1
#define TG_AUTO			2
extern const struct config_enum_entry tg_auto_bool_options[];
extern bool tg_auto_on(int mode);

/* Module initialisation (called from _PG_init). */
extern void tg_clock_init(void);
extern void tg_storage_init(void);
extern void tg_merkle_init(void);
extern void tg_changes_init(void);
extern void tg_journal_init(void);
extern void tg_worker_init(void);
extern void tg_metrics_init(void);

#endif							/* TOPGUN_H */
