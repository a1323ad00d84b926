/*
 * reads.c — the requests a reader executor serves.  Merkle and OR-map reads
 * carry the client's message itself (parsed again here: the codec is cheap
 * and PostgreSQL-free); query pages carry the map, query and cursor.
 */
#include "postgres.h"

#include "exec/reads.h"
#include "exec/search_live.h"
#include "exec/gc.h"
#include "exec/journal_live.h"
#include "wire/message.h"
#include "exec/exec.h"

void
tg_reads_serve(TgConn *c, TgRecKind kind, const char *payload, size_t len)
{
	TgMessage	msg;
	MpLimits	lim;
	char		err[256];

	if (kind == TG_REQ_FETCH)
	{
		tg_read_fetch(c, payload, len);
		return;
	}
	if (kind == TG_REQ_GC)
	{
		tg_read_gc(c, payload, len);
		return;
	}
	if (kind == TG_REQ_JOURNAL)
	{
		tg_read_journal_events(c, payload, len);
		return;
	}
	if (kind == TG_REQ_SEARCH_KEYS)
	{
		tg_read_search_keys(c, payload, len);
		return;
	}
	lim.max_depth = 32;
	lim.max_nodes = (uint32) Min((size_t) UINT32_MAX - 1, len + 1);
	lim.max_str = (uint32) Min((size_t) UINT32_MAX - 1, Max(len, 1));
	if (tg_message_parse((const uint8_t *) payload, len, &lim, &msg, err, sizeof(err)) != TG_PARSE_OK)
	{
		tg_message_free(&msg);
		elog(ERROR, "topgun: a read request carried an invalid message: %s", err);
	}
	PG_TRY();
	{
		switch (kind)
		{
			case TG_REQ_SYNC_ROOT:
				tg_read_sync_root(c, &msg);
				break;
			case TG_REQ_BUCKET:
				tg_read_bucket(c, &msg);
				break;
			case TG_REQ_DIFF:
				tg_read_diff(c, &msg);
				break;
			case TG_REQ_MESSAGE:
			case TG_REQ_PROCESS:
				tg_read_message(c, &msg);
				break;
			default:
				elog(ERROR, "topgun: unknown read request %d", (int) kind);
		}
	}
	PG_FINALLY();
	{
		tg_message_free(&msg);
	}
	PG_END_TRY();
}
