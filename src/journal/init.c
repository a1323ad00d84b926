/*
 * init.c — settings of the journal and the tombstone GC, and helpers shared
 * by the journal's files (which _PG_init sets up after these settings).
 */
#include "topgun.h"
#include "journal/journal.h"

#include <limits.h>

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

int			tg_gc_horizon_s = 30 * 24 * 3600;
int			tg_gc_interval_s = 3600;
int			tg_journal_buffer_events = 4096;
static int	journal_retention_age_s = 7 * 24 * 3600;
static int	journal_retention_count = 1000000;

void
tg_journal_init(void)
{
	DefineCustomIntVariable("topgun.journal_retention_age",
							"Journal events older than this are removed by topgun.journal_trim() (0: no age limit).",
							NULL, &journal_retention_age_s, 7 * 24 * 3600, 0, INT_MAX,
							PGC_SUSET, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("topgun.journal_retention_count",
							"topgun.journal_trim() keeps the events of the last this many sequence numbers (0: no limit).",
							NULL, &journal_retention_count, 1000000, 0, INT_MAX,
							PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("topgun.journal_buffer_events",
							"Journal events a transaction keeps in memory before writing them out.",
							"A transaction writes its events at commit, or earlier in chunks of this size; "
							"from its first chunk on it holds the journal horizon back until it ends.",
							&tg_journal_buffer_events, 4096, 1, 1000000,
							PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("topgun.gc_horizon",
							"Tombstones younger than this are never collected; clients that last synced longer ago must reset.",
							"The safe horizon of TopGun's GC_PRUNE (30 days in the reference).",
							&tg_gc_horizon_s, 30 * 24 * 3600, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("topgun.gc_interval",
							"How often the sync server runs topgun.gc_run() (0: never).",
							NULL, &tg_gc_interval_s, 3600, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
}

Oid
tg_journal_relid(const char *relname, bool missing_ok)
{
	Oid			nsp = get_namespace_oid("topgun", missing_ok);
	Oid			relid = OidIsValid(nsp) ? get_relname_relid(relname, nsp) : InvalidOid;

	if (!OidIsValid(relid) && !missing_ok)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation \"topgun.%s\" does not exist", relname)));
	return relid;
}
