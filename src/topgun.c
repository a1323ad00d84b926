/*
 * topgun.c — module entry point.
 *
 * topgun must be loaded through shared_preload_libraries: the node clock
 * lives in shared memory and the sync server is a background worker, and
 * both can only be set up by the postmaster.
 */
#include "topgun.h"
#include "journal/journal.h"
#include "changes/changes.h"
#include "core/lww_merge.h"
#include "logic/logic_pg.h"
#include "search/pg_search.h"
#include "exec/ratelimit_session.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

void
_PG_init(void)
{
	if (!process_shared_preload_libraries_in_progress)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("topgun must be loaded via shared_preload_libraries"),
				 errhint("Add topgun to shared_preload_libraries in postgresql.conf and restart the server.")));

	tg_clock_init();
	tg_storage_init();
	tg_lww_merge_init();
	tg_merkle_init();
	tg_changes_init();
	tg_changes_capture_init();
	tg_journal_init();
	tg_journal_horizon_shmem();
	tg_journal_patterns_init();
	tg_journal_events_init();
	tg_metrics_init();
	tg_worker_init();
	tg_logic_init();
	tg_search_init();
	tg_ratelimit_init();

	MarkGUCPrefixReserved("topgun");
}
