/*
 * session_msgs.c — the messages of a session itself: AUTH (JWT, src/auth),
 * PING, and the accounting of invalid messages (rate-limited logging, the
 * per-connection budget).
 */
#include "postgres.h"

#include <time.h>

#include "exec/exec.h"
#include "worker/worker_int.h"
#include "metrics/metrics.h"

static void
send_simple(TgConn *c, const char *type)
{
	MpBuf	   *b = tg_buf_begin();

	mp_put_map_header(b, 1);
	mp_put_str(b, "type");
	mp_put_str(b, type);
	tg_buf_send(c, b);
}

/* ------------------------------------------------- invalid traffic */

static void
flush_invalid_summary(TgConn *c)
{
	if (c->log_suppressed > 0)
		ereport(LOG,
				(errmsg("topgun: connection %llu (%s): %d invalid messages suppressed",
						(unsigned long long) c->id, c->remote, c->log_suppressed)));
	c->log_suppressed = 0;
}

void
tg_note_invalid(TgConn *c, const char *reason)
{
	int64		now = tg_mono_ms();
	char		msg[600];

	tg_stat_add(TG_STAT_MSG_INVALID, 1);
	c->invalid_total++;

	if (now - c->log_window_start_ms >= 10000)
	{
		flush_invalid_summary(c);
		c->log_window_start_ms = now;
		c->log_window_count = 0;
	}
	if (c->log_window_count < 5)
	{
		c->log_window_count++;
		ereport(LOG,
				(errmsg("topgun: invalid message from connection %llu (%s): %s",
						(unsigned long long) c->id, c->remote, reason)));
	}
	else
		c->log_suppressed++;

	snprintf(msg, sizeof(msg), "Invalid message format: %s", reason);
	tg_send_error(c, 400, msg);

	if (c->invalid_total > tg_invalid_message_budget)
	{
		flush_invalid_summary(c);
		ereport(LOG,
				(errmsg("topgun: closing connection %llu (%s): more than %d invalid messages",
						(unsigned long long) c->id, c->remote, tg_invalid_message_budget)));
		tg_conn_close(c, 1008, "Too many invalid messages");
	}
}

void
tg_proto_conn_gone(TgConn *c)
{
	flush_invalid_summary(c);
}

/* ------------------------------------------------------------- auth */

/*
 * Failed AUTHs are logged at most 10 times per 10 s window (server-wide:
 * an attacker reconnects for every attempt), then one summary line.
 */
static int64 auth_log_window_ms = 0;
static int	auth_log_count = 0;
static int	auth_log_suppressed = 0;

static bool
auth_log_allowed(void)
{
	int64		now = tg_mono_ms();

	if (now - auth_log_window_ms >= 10000)
	{
		if (auth_log_suppressed > 0)
			ereport(LOG,
					(errmsg("topgun: %d authentication failure messages suppressed",
							auth_log_suppressed)));
		auth_log_window_ms = now;
		auth_log_count = 0;
		auth_log_suppressed = 0;
	}
	if (auth_log_count < 10)
	{
		auth_log_count++;
		return true;
	}
	auth_log_suppressed++;
	return false;
}

void
tg_handle_auth(TgConn *c, TgMessage *m)
{
	TgJwtClaims claims;
	char		err[128];
	TgJwtResult r;
	MpBuf	   *b;

	if (c->authenticated)
		return;					/* the client sends AUTH twice; ignore */

	if (!tg_jwt_key_ok)
	{
		r = TG_JWT_BAD_SIGNATURE;
		strlcpy(err, "server authentication is not configured", sizeof(err));
	}
	else
		r = tg_jwt_verify(&tg_jwt_key, m->u.auth.token.p, m->u.auth.token.len,
						  (int64_t) time(NULL), tg_jwt_leeway_s, 0,
						  tg_auto_on(tg_jwt_require_exp) ? TG_JWT_REQUIRE_EXP : 0,
						  &claims, err, sizeof(err));
	if (r != TG_JWT_OK)
	{
		tg_stat_add(TG_STAT_AUTH_FAILED, 1);
		tg_metrics_inc(TG_M_AUTH_FAILED, tg_jwt_key_ok ? (int) r - 1 : TG_AUTH_NOT_CONFIGURED, 1);
		if (auth_log_allowed())
			ereport(LOG,
					(errmsg("topgun: authentication failed for connection %llu (%s): %s",
							(unsigned long long) c->id, c->remote, err)));
		b = tg_buf_begin();
		mp_put_map_header(b, 2);
		mp_put_str(b, "type");
		mp_put_str(b, "AUTH_FAIL");
		mp_put_str(b, "error");
		mp_put_str(b, err);
		tg_buf_send(c, b);
		tg_conn_close(c, 4001, "Unauthorized");
		return;
	}

	tg_stat_add(TG_STAT_AUTH_OK, 1);
	c->authenticated = true;
	c->last_ping_ms = tg_mono_ms();
	/* closed with 4001 at exp + leeway (src/server/main.c, tg_dispatch) */
	c->token_expires_ms = 0;
	if (claims.has_exp && claims.exp < 1e14)	/* later than year 5000: never */
		c->token_expires_ms = (int64) (claims.exp * 1000.0) + (int64) tg_jwt_leeway_s * 1000;
	strlcpy(c->sub, claims.has_sub ? claims.sub : "", sizeof(c->sub));
	strlcpy(c->user_id, claims.has_user_id ? claims.user_id : "", sizeof(c->user_id));
	for (int i = 0; i < c->nroles; i++)
		free(c->roles[i]);
	c->nroles = 0;
	for (int i = 0; i < claims.nroles && i < TG_MAX_ROLES; i++)
	{
		c->roles[c->nroles] = strdup(claims.roles[i]);
		if (c->roles[c->nroles])
			c->nroles++;
	}
	tg_acl_after_auth(c);
	send_simple(c, "AUTH_ACK");
	tg_conn_update_slot(c);
}

void
tg_handle_ping(TgConn *c)
{
	MpBuf	   *b = tg_buf_begin();

	c->last_ping_ms = tg_mono_ms();
	/* no top-level numeric timestamp: it would corrupt the client HLC */
	mp_put_map_header(b, 2);
	mp_put_str(b, "type");
	mp_put_str(b, "PONG");
	mp_put_str(b, "serverTime");
	mp_put_float64(b, (double) tg_now_ms());
	tg_buf_send(c, b);
}

