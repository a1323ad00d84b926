/*
 * metrics.c — the metrics registry: family table, atomic updates, and the
 * Prometheus text renderer (PostgreSQL-free; see metrics.h).
 */
#include "metrics/metrics.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/jwt.h"
#include "wire/message.h"

TgMetricsShared *tg_metrics = NULL;

typedef enum Kind
{
	K_COUNTER,
	K_GAUGE,
	K_HISTOGRAM
} Kind;

typedef struct Family
{
	const char *name;
	Kind		kind;
	const char *help;
	const char *label;			/* label name; NULL = one unlabelled series */
	const char *const *labels;	/* label values ... */
	const char *(*label_fn) (TgMsgType i);	/* ... or computed */
	int			nlabels;
	const uint64_t *bounds;		/* histograms: upper bounds in base units */
	int			nbounds;
	uint64_t	scale;			/* base units per exported unit (1e6 for us -> s) */
} Family;

static const char *const refuse_labels[] = {"not_ready", "overloaded"};

/* TgJwtResult - 1, then TG_AUTH_NOT_CONFIGURED */
static const char *const auth_labels[] = {
	"malformed", "too_large", "bad_algorithm", "bad_signature", "expired",
	"not_active", "bad_claims", "not_configured"
};
_Static_assert(TG_JWT_MALFORMED == 1 && TG_JWT_BAD_CLAIMS == TG_AUTH_NOT_CONFIGURED,
			   "auth failure labels follow TgJwtResult");

static const char *const close_labels[] = {
	"1000", "1001", "1002", "1003", "1006", "1007", "1008", "1009", "1011",
	"1012", "1013", "4001", "4002", "other"
};

static const char *const reject_labels[] = {"invalid", "access_denied", "error", "resolver", "rate_limited"};
static const char *const sub_labels[] = {"query", "topic", "counter", "search"};

static const uint64_t size_bounds[] = {
	1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000
};
static const uint64_t us_bounds[] = {
	100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000,
	500000, 1000000, 2500000, 10000000
};

#define LABELS(n, a) .label = (n), .labels = (a), .nlabels = (int) (sizeof(a) / sizeof((a)[0]))
#define HIST(b, s) .bounds = (b), .nbounds = (int) (sizeof(b) / sizeof((b)[0])), .scale = (s)

static const Family families[TG_M_COUNT_] = {
	[TG_M_CONN_OPENED] = {"topgun_connections_opened_total", K_COUNTER,
	"WebSocket connections established (refused ones included)."},
	[TG_M_CONN_CLOSED] = {"topgun_connections_closed_total", K_COUNTER,
		"WebSocket connections closed, by close code (1006: no close frame).",
	LABELS("code", close_labels)},
	[TG_M_CONN_REFUSED] = {"topgun_connections_refused_total", K_COUNTER,
		"Connections closed with 1013 right after the upgrade.",
	LABELS("reason", refuse_labels)},
	[TG_M_AUTH_OK] = {"topgun_auth_successes_total", K_COUNTER,
	"AUTH messages accepted."},
	[TG_M_AUTH_FAILED] = {"topgun_auth_failures_total", K_COUNTER,
		"AUTH messages refused, by reason.",
	LABELS("reason", auth_labels)},
	[TG_M_MSG_RECEIVED] = {"topgun_messages_received_total", K_COUNTER,
		"Well-formed client messages, by type.",
	.label = "type", .label_fn = tg_msg_type_name, .nlabels = TG_MSG_COUNT_},
	[TG_M_MSG_INVALID] = {"topgun_messages_invalid_total", K_COUNTER,
	"Client messages that did not parse (answered with ERROR 400)."},
	[TG_M_OPS_APPLIED] = {"topgun_ops_applied_total", K_COUNTER,
	"Client ops applied and acknowledged as PERSISTED."},
	[TG_M_OPS_REJECTED] = {"topgun_ops_rejected_total", K_COUNTER,
		"Client ops rejected in their OP_ACK, by reason.",
	LABELS("reason", reject_labels)},
	[TG_M_COMMITS] = {"topgun_commits_total", K_COUNTER,
	"Transactions committed for client writes (group commits and ORMAP_PUSH_DIFF)."},
	[TG_M_GROUP_RETRIES] = {"topgun_group_commit_retries_total", K_COUNTER,
	"Group-commit attempts that failed and were retried without the culprit op."},
	[TG_M_ACKS] = {"topgun_op_acks_total", K_COUNTER, "OP_ACK messages sent."},
	[TG_M_EVENTS_SENT] = {"topgun_events_sent_total", K_COUNTER,
	"Change events pushed to subscribed connections."},
	[TG_M_SLOW_CLIENTS] = {"topgun_slow_clients_closed_total", K_COUNTER,
	"Connections closed because their outbound queue exceeded topgun.max_outbound_bytes."},
	[TG_M_ACCESS_DENIED] = {"topgun_access_denied_total", K_COUNTER,
	"Requests refused by the access policies."},
	[TG_M_LIMITS_REACHED] = {"topgun_limits_reached_total", K_COUNTER,
	"Requests refused by a per-connection limit (subscriptions, topics, query results)."},
	[TG_M_RATE_LIMITED] = {"topgun_rate_limited_messages_total", K_COUNTER,
	"Client messages refused by the rate limiter."},
	[TG_M_QUERY_UPDATES] = {"topgun_query_updates_total", K_COUNTER,
	"QUERY_UPDATE messages sent."},
	[TG_M_QUERY_RERUNS] = {"topgun_query_reruns_total", K_COUNTER,
	"Limited live queries re-run after a change."},
	[TG_M_COUNTER_UPDATES] = {"topgun_pncounter_updates_total", K_COUNTER,
	"COUNTER_UPDATE messages sent (PN counters)."},
	[TG_M_TOPIC_MESSAGES] = {"topgun_topic_messages_total", K_COUNTER,
	"Topic messages published (TOPIC_PUB and topgun.publish())."},
	[TG_M_TOPIC_QUEUED] = {"topgun_topic_messages_queued_total", K_COUNTER,
	"Topic messages kept for offline subscribers."},
	[TG_M_TOPIC_DROPPED] = {"topgun_topic_messages_dropped_total", K_COUNTER,
	"Queued topic messages dropped because an offline queue was full."},
	[TG_M_FEED_EVENTS] = {"topgun_change_feed_events_total", K_COUNTER,
	"Change-feed events read by the sync server."},
	[TG_M_FEED_LOST] = {"topgun_change_feed_lost_events_total", K_COUNTER,
	"Change-feed events dropped by the ring before the sync server read them."},
	[TG_M_FEED_OVERFLOWS] = {"topgun_change_feed_overflows_total", K_COUNTER,
	"Change-feed overflows (each one asks the subscribed clients to resynchronise)."},
	[TG_M_FEED_RESYNC_CLOSES] = {"topgun_change_feed_resync_closes_total", K_COUNTER,
	"Connections closed with 1013 to resynchronise after a change-feed overflow."},
	[TG_M_CONN_OPEN] = {"topgun_connections_open", K_GAUGE,
	"WebSocket connections currently open."},
	[TG_M_OUTBOUND_BYTES] = {"topgun_outbound_queue_bytes", K_GAUGE,
	"Bytes queued for sending, all connections (refreshed every 250 ms)."},
	[TG_M_SUBSCRIPTIONS] = {"topgun_subscriptions", K_GAUGE,
		"Live subscriptions, by kind (refreshed every 250 ms).",
	LABELS("kind", sub_labels)},
	[TG_M_FEED_LAG_BYTES] = {"topgun_change_feed_lag_bytes", K_GAUGE,
	"Change-feed bytes committed but not yet read by the sync server."},
	[TG_M_READY] = {"topgun_ready", K_GAUGE,
	"1 while the sync server serves clients (what GET /health reports as ready)."},
	[TG_M_GROUP_SIZE] = {"topgun_group_commit_ops", K_HISTOGRAM,
	"Ops per group-commit transaction.", HIST(size_bounds, 1)},
	[TG_M_COMMIT_SECONDS] = {"topgun_group_commit_duration_seconds", K_HISTOGRAM,
	"Time to apply and commit one group.", HIST(us_bounds, 1000000)},
	[TG_M_ACK_SECONDS] = {"topgun_op_ack_latency_seconds", K_HISTOGRAM,
	"From the session executor reading an OP_BATCH / CLIENT_OP off its queue to the OP_ACK being queued.", HIST(us_bounds, 1000000)},
};

/* First slot of each family in values[] or hist[] (same in every process). */
static int	base[TG_M_COUNT_];

static int
nseries(const Family *f)
{
	return f->label ? f->nlabels : 1;
}

bool
tg_metrics_attach(TgMetricsShared *m, bool init,
				  const char *library_version, const char *postgres_version)
{
	int			nv = 0;
	int			nh = 0;

	for (int i = 0; i < TG_M_COUNT_; i++)
	{
		const Family *f = &families[i];

		if (f->kind == K_HISTOGRAM)
		{
			base[i] = nh;
			nh += f->nbounds + 2;	/* buckets, +Inf, sum */
		}
		else
		{
			base[i] = nv;
			nv += nseries(f);
		}
	}
	if (nv > TG_METRICS_MAX_VALUES || nh > TG_METRICS_MAX_HIST_SLOTS)
		return false;
	if (init)
	{
		memset(m, 0, sizeof(*m));
		snprintf(m->library_version, sizeof(m->library_version), "%s", library_version);
		snprintf(m->postgres_version, sizeof(m->postgres_version), "%s", postgres_version);
	}
	tg_metrics = m;
	return true;
}

static uint64_t *
slot(TgMetric m, int label)
{
	const Family *f = &families[m];
	int			n = nseries(f);

	if (label < 0 || label >= n)
		label = n - 1;
	return &tg_metrics->values[base[m] + label];
}

void
tg_metrics_inc(TgMetric m, int label, uint64_t n)
{
	if (tg_metrics == NULL || m < 0 || m >= TG_M_COUNT_ || families[m].kind == K_HISTOGRAM)
		return;
	__atomic_fetch_add(slot(m, label), n, __ATOMIC_RELAXED);
}

void
tg_metrics_add(TgMetric m, int label, int64_t delta)
{
	tg_metrics_inc(m, label, (uint64_t) delta);	/* two's complement */
}

void
tg_metrics_set(TgMetric m, int label, int64_t v)
{
	if (tg_metrics == NULL || m < 0 || m >= TG_M_COUNT_ || families[m].kind != K_GAUGE)
		return;
	__atomic_store_n(slot(m, label), (uint64_t) v, __ATOMIC_RELAXED);
}

int64_t
tg_metrics_get(TgMetric m, int label)
{
	if (tg_metrics == NULL || m < 0 || m >= TG_M_COUNT_ || families[m].kind == K_HISTOGRAM)
		return 0;
	return (int64_t) __atomic_load_n(slot(m, label), __ATOMIC_RELAXED);
}

void
tg_metrics_conn_closed(int code)
{
	int			n = nseries(&families[TG_M_CONN_CLOSED]);
	int			i;

	for (i = 0; i < n - 1; i++)
		if (code == atoi(close_labels[i]))
			break;
	tg_metrics_inc(TG_M_CONN_CLOSED, i, 1);
}

void
tg_metrics_observe(TgMetric m, uint64_t value)
{
	const Family *f;
	uint64_t   *h;
	int			b = 0;

	if (tg_metrics == NULL || m < 0 || m >= TG_M_COUNT_ || families[m].kind != K_HISTOGRAM)
		return;
	f = &families[m];
	h = &tg_metrics->hist[base[m]];
	while (b < f->nbounds && value > f->bounds[b])
		b++;
	__atomic_fetch_add(&h[b], 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&h[f->nbounds + 1], value, __ATOMIC_RELAXED);
}

uint64_t
tg_metrics_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

/* ---------------------------------------------------------- health */

void
tg_metrics_set_health(TgHealth h, const char *extension_version)
{
	if (tg_metrics == NULL)
		return;
	if (extension_version &&
		strncmp(tg_metrics->extension_version, extension_version, TG_METRICS_VERSION_LEN) != 0)
		snprintf(tg_metrics->extension_version, TG_METRICS_VERSION_LEN, "%s", extension_version);
	__atomic_store_n(&tg_metrics->health, (uint32_t) h, __ATOMIC_RELEASE);
	tg_metrics_set(TG_M_READY, 0, h == TG_HEALTH_READY);
}

void
tg_metrics_set_server(uint32_t pid, int64_t started_unix)
{
	if (tg_metrics == NULL)
		return;
	__atomic_store_n(&tg_metrics->server_started, started_unix, __ATOMIC_RELAXED);
	__atomic_store_n(&tg_metrics->server_pid, pid, __ATOMIC_RELEASE);
}

/* -------------------------------------------------------- executors */

int
tg_metrics_executor_register(const char *name)
{
	char		clean[TG_METRICS_EXECUTOR_NAME];
	size_t		i;

	if (tg_metrics == NULL || name == NULL)
		return -1;
	for (i = 0; i + 1 < sizeof(clean) && name[i]; i++)
	{
		char		ch = name[i];
		bool		ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			(ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == '-';

		clean[i] = ok ? ch : '_';
	}
	clean[i] = '\0';

	/* a restarted executor takes its old slot back */
	for (int s = 0; s < TG_METRICS_MAX_EXECUTORS; s++)
	{
		TgExecutorSlot *e = &tg_metrics->executors[s];

		if (__atomic_load_n(&e->state, __ATOMIC_ACQUIRE) == 2 && strcmp(e->name, clean) == 0)
			return s;
	}
	for (int s = 0; s < TG_METRICS_MAX_EXECUTORS; s++)
	{
		TgExecutorSlot *e = &tg_metrics->executors[s];
		uint32_t	expected = 0;

		if (!__atomic_compare_exchange_n(&e->state, &expected, 1, false,
										 __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
			continue;
		memcpy(e->name, clean, sizeof(clean));
		__atomic_store_n(&e->queue_depth, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&e->state, 2, __ATOMIC_RELEASE);
		return s;
	}
	return -1;
}

void
tg_metrics_executor_set(int s, uint64_t depth)
{
	if (tg_metrics == NULL || s < 0 || s >= TG_METRICS_MAX_EXECUTORS)
		return;
	__atomic_store_n(&tg_metrics->executors[s].queue_depth, depth, __ATOMIC_RELAXED);
}

void
tg_metrics_executor_unregister(int s)
{
	if (tg_metrics == NULL || s < 0 || s >= TG_METRICS_MAX_EXECUTORS)
		return;
	__atomic_store_n(&tg_metrics->executors[s].state, 0, __ATOMIC_RELEASE);
}

/* --------------------------------------------------------- renderer */

static void
put(MpBuf *out, const char *s)
{
	mp_put_raw(out, s, strlen(s));
}

/* Label value with the exposition format's escapes (\\, \", \n). */
static void
put_label_value(MpBuf *out, const char *s, size_t max)
{
	for (size_t i = 0; i < max && s[i]; i++)
	{
		if (s[i] == '\\' || s[i] == '"')
			mp_put_raw(out, "\\", 1);
		if (s[i] == '\n')
			put(out, "\\n");
		else
			mp_put_raw(out, &s[i], 1);
	}
}

/* v base units as a decimal number of exported units (exact, no float). */
static void
put_scaled(MpBuf *out, uint64_t v, uint64_t scale)
{
	char		num[48];
	int			n;

	if (scale == 1)
		n = snprintf(num, sizeof(num), "%" PRIu64, v);
	else
	{
		n = snprintf(num, sizeof(num), "%" PRIu64 ".%06" PRIu64, v / scale, v % scale);
		while (n > 0 && num[n - 1] == '0')
			n--;
		if (n > 0 && num[n - 1] == '.')
			n--;
	}
	mp_put_raw(out, num, (size_t) n);
}

static void
put_header(MpBuf *out, const char *name, const char *help, const char *type)
{
	put(out, "# HELP ");
	put(out, name);
	put(out, " ");
	put(out, help);
	put(out, "\n# TYPE ");
	put(out, name);
	put(out, " ");
	put(out, type);
	put(out, "\n");
}

static void
put_sample(MpBuf *out, const char *name, const char *label, const char *value,
		   const char *num)
{
	put(out, name);
	if (label)
	{
		put(out, "{");
		put(out, label);
		put(out, "=\"");
		put_label_value(out, value, SIZE_MAX);
		put(out, "\"}");
	}
	put(out, " ");
	put(out, num);
	put(out, "\n");
}

static void
render_histogram(MpBuf *out, const Family *f, const uint64_t *h)
{
	uint64_t	cum = 0;
	char		num[32];

	for (int b = 0; b <= f->nbounds; b++)
	{
		cum += __atomic_load_n(&h[b], __ATOMIC_RELAXED);
		put(out, f->name);
		put(out, "_bucket{le=\"");
		if (b < f->nbounds)
			put_scaled(out, f->bounds[b], f->scale);
		else
			put(out, "+Inf");
		snprintf(num, sizeof(num), "\"} %" PRIu64 "\n", cum);
		put(out, num);
	}
	put(out, f->name);
	put(out, "_sum ");
	put_scaled(out, __atomic_load_n(&h[f->nbounds + 1], __ATOMIC_RELAXED), f->scale);
	put(out, "\n");
	put(out, f->name);
	snprintf(num, sizeof(num), "_count %" PRIu64 "\n", cum);
	put(out, num);
}

static void
render_executors(MpBuf *out, const TgMetricsShared *m)
{
	static const char name[] = "topgun_executor_queue_depth";

	put_header(out, name, "Requests or messages waiting for an executor process.", "gauge");
	for (int s = 0; s < TG_METRICS_MAX_EXECUTORS; s++)
	{
		const TgExecutorSlot *e = &m->executors[s];
		char		num[32];

		if (__atomic_load_n(&e->state, __ATOMIC_ACQUIRE) != 2)
			continue;
		snprintf(num, sizeof(num), "%" PRIu64, __atomic_load_n(&e->queue_depth, __ATOMIC_RELAXED));
		put(out, name);
		put(out, "{executor=\"");
		put_label_value(out, e->name, TG_METRICS_EXECUTOR_NAME);
		put(out, "\"} ");
		put(out, num);
		put(out, "\n");
	}
}

bool
tg_metrics_render(MpBuf *out)
{
	const TgMetricsShared *m = tg_metrics;
	char		num[32];

	if (m == NULL)
		return false;
	put_header(out, "topgun_build_info", "Versions of the topgun library and of PostgreSQL.", "gauge");
	put(out, "topgun_build_info{version=\"");
	put_label_value(out, m->library_version, TG_METRICS_VERSION_LEN);
	put(out, "\",postgres=\"");
	put_label_value(out, m->postgres_version, TG_METRICS_VERSION_LEN);
	put(out, "\"} 1\n");
	put_header(out, "topgun_server_start_time_seconds",
			   "Start of the sync server's socket process, seconds since the epoch (0: not running).", "gauge");
	snprintf(num, sizeof(num), "%" PRId64, __atomic_load_n(&m->server_started, __ATOMIC_RELAXED));
	put_sample(out, "topgun_server_start_time_seconds", NULL, NULL, num);

	for (int i = 0; i < TG_M_COUNT_; i++)
	{
		const Family *f = &families[i];

		put_header(out, f->name, f->help,
				   f->kind == K_COUNTER ? "counter" : f->kind == K_GAUGE ? "gauge" : "histogram");
		if (f->kind == K_HISTOGRAM)
		{
			render_histogram(out, f, &m->hist[base[i]]);
			continue;
		}
		for (int l = 0; l < nseries(f); l++)
		{
			uint64_t	v = __atomic_load_n(&m->values[base[i] + l], __ATOMIC_RELAXED);

			if (f->kind == K_GAUGE)
				snprintf(num, sizeof(num), "%" PRId64, (int64_t) v);
			else
				snprintf(num, sizeof(num), "%" PRIu64, v);
			put_sample(out, f->name, f->label,
					   !f->label ? NULL : f->labels ? f->labels[l] : f->label_fn((TgMsgType) l),
					   num);
		}
	}
	render_executors(out, m);
	return mp_buf_ok(out);
}
