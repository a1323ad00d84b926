/*
 * sync.c — Merkle sync (SYNC_INIT, MERKLE_REQ_BUCKET and their OR-map
 * twins).  The session executor checks access, registers the watch and the
 * sync horizon; a reader executor reads the root, buckets or leaf in its
 * own snapshot (tg_read_*).
 */
#include "postgres.h"

#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "exec/exec.h"
#include "journal/journal.h"


/* ------------------------------------------------------ read handlers */


static uint32
merkle_root(const char *map)
{
	Datum		arg = CStringGetTextDatum(map);
	bool		isnull;
	Datum		d;

	if (tg_run_plan(PL_ROOT, &arg, NULL, true) != 1)
		return 0;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? 0 : (uint32) DatumGetInt64(d);
}

static bool
too_old(bool has, double last_sync)
{
	/* the GC horizon (topgun.gc_horizon, 30 days): tombstones older may be gone */
	return has && last_sync > 0 && (double) tg_now_ms() - last_sync > (double) tg_gc_horizon_s * 1000.0;
}

static void
send_reset_required(TgConn *c, TgStr map)
{
	MpBuf	   *b = tg_buf_begin();

	mp_put_map_header(b, 2);
	mp_put_str(b, "type");
	mp_put_str(b, "SYNC_RESET_REQUIRED");
	mp_put_str(b, "payload");
	mp_put_map_header(b, 1);
	mp_put_str(b, "mapName");
	tg_put_tgstr(b, map);
	tg_buf_send(c, b);
}

static void
send_root(TgConn *c, const char *type, TgStr map, uint32 root, const char *hlc)
{
	MpBuf	   *b = tg_buf_begin();

	mp_put_map_header(b, 2);
	mp_put_str(b, "type");
	mp_put_str(b, type);
	mp_put_str(b, "payload");
	mp_put_map_header(b, 3);
	mp_put_str(b, "mapName");
	tg_put_tgstr(b, map);
	mp_put_str(b, "rootHash");
	mp_put_uint32(b, root);
	mp_put_str(b, "timestamp");
	tg_put_hlc_text(b, hlc);
	tg_buf_send(c, b);
}

/* SYNC_INIT / ORMAP_SYNC_INIT, session part: access, watch, age. */
bool
tg_sync_init_session(TgConn *c, TgStr map, bool has_last_sync, double last_sync)
{
	if (!tg_acl_check(c, map.p, map.len, TG_ACT_READ))
		return false;
	tg_watch_add(c, map, NULL);
	if (too_old(has_last_sync, last_sync))
	{
		send_reset_required(c, map);
		return false;
	}
	return true;
}

/* ... and the reader's part: the root (runs in a reader executor). */
void
tg_read_sync_root(TgConn *c, TgMessage *m)
{
	bool		ormap = m->type == TG_MSG_ORMAP_SYNC_INIT;
	TgStr		map = ormap ? m->u.ormap_sync_init.map_name : m->u.sync_init.map_name;
	char	   *cmap = tg_pstr(map);
	char	   *kind = tg_map_kind(cmap);

	if (kind && strcmp(kind, ormap ? "lww" : "or") == 0)
	{
		if (ormap)
			tg_send_error(c, 400, psprintf("Map %s is not an ORMap", cmap));
		else
			tg_send_error(c, 501, "Merkle Sync not supported for ORMap tags");
		return;
	}
	send_root(c, ormap ? "ORMAP_SYNC_RESP_ROOT" : "SYNC_RESP_ROOT", map, merkle_root(cmap),
			  tg_hlc_now_text());
}

static void
send_buckets(TgConn *c, const char *type, TgStr map, TgStr path, const char *cmap, const char *cpath)
{
	Datum		args[2];
	int			n;
	MpBuf	   *b;

	args[0] = CStringGetTextDatum(cmap);
	args[1] = CStringGetTextDatum(cpath);
	n = tg_run_plan(PL_BUCKETS, args, NULL, true);
	b = tg_buf_begin();
	mp_put_map_header(b, 2);
	mp_put_str(b, "type");
	mp_put_str(b, type);
	mp_put_str(b, "payload");
	mp_put_map_header(b, 3);
	mp_put_str(b, "mapName");
	tg_put_tgstr(b, map);
	mp_put_str(b, "path");
	tg_put_tgstr(b, path);
	mp_put_str(b, "buckets");
	mp_put_map_header(b, n);
	for (int i = 0; i < n; i++)
	{
		bool		isnull;
		char	   *bucket = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		Datum		h = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull);

		mp_put_str(b, bucket ? bucket : "");
		mp_put_uint32(b, isnull ? 0 : (uint32) DatumGetInt64(h));
	}
	tg_buf_send(c, b);
}

/* MERKLE_REQ_BUCKET / ORMAP_MERKLE_REQ_BUCKET (reader; READ checked by the session) */
void
tg_read_bucket(TgConn *c, TgMessage *m)
{
	bool		ormap = m->type == TG_MSG_ORMAP_MERKLE_REQ_BUCKET;
	TgStr		map = m->u.bucket_req.map_name;
	TgStr		path = m->u.bucket_req.path;
	char	   *cmap = tg_pstr(map);
	char	   *cpath = tg_pstr(path);
	char	   *kind;

	kind = tg_map_kind(cmap);
	if (kind && strcmp(kind, ormap ? "lww" : "or") == 0)
	{
		tg_send_error(c, 400, ormap ? psprintf("Map %s is not an ORMap", cmap)
				   : psprintf("Map %s is an ORMap", cmap));
		return;
	}
	if (path.len == 3)
	{
		Datum		args[2];
		int			n;

		args[0] = CStringGetTextDatum(cmap);
		args[1] = CStringGetTextDatum(cpath);
		n = tg_run_plan(ormap ? PL_OR_LEAF : PL_LWW_LEAF, args, NULL, true);
		if (n > 0)
		{
			MpBuf	   *b = tg_buf_begin();

			mp_put_map_header(b, 2);
			mp_put_str(b, "type");
			mp_put_str(b, ormap ? "ORMAP_SYNC_RESP_LEAF" : "SYNC_RESP_LEAF");
			mp_put_str(b, "payload");
			mp_put_map_header(b, 3);
			mp_put_str(b, "mapName");
			tg_put_tgstr(b, map);
			mp_put_str(b, "path");
			tg_put_tgstr(b, path);
			mp_put_str(b, ormap ? "entries" : "records");
			mp_put_array_header(b, n);
			for (int i = 0; i < n; i++)
			{
				bool		isnull;
				Datum		d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);

				if (isnull)
					mp_put_nil(b);
				else
					tg_put_jsonb(b, DatumGetJsonbP(d));
			}
			tg_buf_send(c, b);
			return;
		}
	}
	send_buckets(c, ormap ? "ORMAP_SYNC_RESP_BUCKETS" : "SYNC_RESP_BUCKETS",
				 map, path, cmap, cpath);
}





