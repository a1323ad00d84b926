/*
 * mesh_map.c — this node's endpoint for cluster-mode clients
 * (PROTOCOL-ADDENDUM §A8, docs/multi-node.md "Cluster-mode clients").
 *
 * The session executor advertises the URL once it serves and after each reload
 * (topgun._advertise_endpoint: the replicated topgun.node_clock row of this
 * node, so every peer lists it); a reader builds PARTITION_MAP from
 * topgun.partition_map() (read_msgs.c).
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "exec/exec.h"

static char advertised[512];
static int64 retry_at_ms;		/* after a failure: not before */

/* The WebSocket URL clients should dial: topgun.advertise_url, else the listener's. */
void
tg_mesh_url(char *buf, size_t len)
{
	if (tg_advertise_url && tg_advertise_url[0])
		strlcpy(buf, tg_advertise_url, len);
	else
		snprintf(buf, len, "ws://%s:%d",
				 (tg_listen_addresses && tg_listen_addresses[0] && strcmp(tg_listen_addresses, "*") != 0)
				 ? tg_listen_addresses : "localhost", tg_port);
}

/* Record the URL in topgun.node_clock when it changed (one short transaction). */
void
tg_mesh_advertise(void)
{
	char		url[512];
	MemoryContext old = CurrentMemoryContext;

	tg_mesh_url(url, sizeof(url));
	if (strcmp(url, advertised) == 0 || tg_mono_ms() < retry_at_ms)
		return;
	PG_TRY();
	{
		Datum		arg = CStringGetTextDatum(url);
		Oid			type = TEXTOID;
		bool		isnull;
		bool		present = false;

		StartTransactionCommand();
		SPI_connect();
		PushActiveSnapshot(GetTransactionSnapshot());
		/* an extension not yet updated to 1.2 has no endpoints */
		if (SPI_execute("SELECT to_regprocedure('topgun._advertise_endpoint(text)') IS NOT NULL",
						true, 1) == SPI_OK_SELECT && SPI_processed == 1)
			present = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) && !isnull;
		if (present &&
			SPI_execute_with_args("SELECT topgun._advertise_endpoint($1)", 1, &type, &arg, NULL,
								  false, 1) != SPI_OK_SELECT)
			elog(ERROR, "topgun: could not advertise the endpoint");
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
		if (present)
			strlcpy(advertised, url, sizeof(advertised));
	}
	PG_CATCH();
	{
		/* retried in a minute; PARTITION_MAP still names this node meanwhile */
		MemoryContextSwitchTo(old);
		retry_at_ms = tg_mono_ms() + 60000;
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(old);
}
