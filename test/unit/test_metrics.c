/*
 * test_metrics.c — unit tests of the PostgreSQL-free metrics registry and
 * HTTP answers (src/metrics): the families fit the shared block, counters,
 * gauges and histograms render in the exposition format, labels are
 * clamped, executors register, the allow list matches peers, and /health
 * follows the health state.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/http.h"
#include "metrics/metrics.h"
#include "wire/message.h"

static int	failures = 0;
static int	checks = 0;

#define CHECK(cond, ...) do { checks++; if (!(cond)) { failures++; printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); } } while (0)

static char *
render(void)
{
	MpBuf		b;
	size_t		len;
	char	   *s;

	mp_buf_init(&b, 1 << 20);
	if (!tg_metrics_render(&b))
		return NULL;
	mp_put_raw(&b, "", 1);
	s = (char *) mp_buf_steal(&b, &len);
	return s;
}

/* The sample line "name value" exactly (a whole line of the output). */
static bool
has_line(const char *text, const char *line)
{
	size_t		n = strlen(line);

	for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return true;
	return false;
}

static bool
peer_ok(const char *list, const char *peer)
{
	TgNetList	l;
	char		err[160];

	if (!tg_netlist_parse(list, &l, err, sizeof(err)))
	{
		printf("parse %s: %s\n", list, err);
		return false;
	}
	return tg_netlist_match(&l, peer);
}

/*
 * GET path: the status is `status`, the body NUL-terminated at its length,
 * and each needle (may be NULL) is in the body or the content type.
 */
static bool
answer(const char *path, const char *peer, bool on, const TgNetList *allow, int status,
	   const char *needle1, const char *needle2)
{
	TgHttpResponse r;
	bool		ok;
	const char *needles[2] = {needle1, needle2};

	if (!tg_http_respond(path, peer, on, allow, &r))
		return false;
	ok = r.status == status && r.body && r.body[r.len] == '\0' && strlen(r.body) == r.len;
	for (int i = 0; i < 2; i++)
		if (needles[i] && !strstr(r.body, needles[i]) && !strstr(r.content_type, needles[i]))
			ok = false;
	if (!ok)
		printf("GET %s from %s: %d %s\n", path, peer, r.status, r.body);
	free(r.body);
	return ok;
}

int
main(void)
{
	static TgMetricsShared shm;
	char	   *t;
	TgNetList	l;
	char		err[160];
	int			e1,
				e2;

	/* no registry: updates are no-ops, render fails */
	tg_metrics_inc(TG_M_CONN_OPENED, 0, 1);
	CHECK(render() == NULL, "render without registry");
	CHECK(answer("/health", "127.0.0.1", true, NULL, 503, "\"not_ready\"", NULL), "health without registry");

	CHECK(tg_metrics_attach(&shm, true, "1.2", "15.8"), "families fit the shared block");

	tg_metrics_inc(TG_M_CONN_OPENED, 0, 3);
	tg_metrics_add(TG_M_CONN_OPEN, 0, 3);
	tg_metrics_add(TG_M_CONN_OPEN, 0, -1);
	tg_metrics_conn_closed(4001);
	tg_metrics_conn_closed(3999);
	tg_metrics_conn_closed(-5);
	tg_metrics_inc(TG_M_AUTH_FAILED, 4 - 1, 2);	/* TG_JWT_BAD_SIGNATURE */
	tg_metrics_inc(TG_M_AUTH_FAILED, TG_AUTH_NOT_CONFIGURED, 1);
	tg_metrics_inc(TG_M_MSG_RECEIVED, 2, 5);	/* OP_BATCH */
	tg_metrics_inc(TG_M_MSG_RECEIVED, 1000, 1);	/* clamped to the last type */
	tg_metrics_inc(TG_M_OPS_REJECTED, TG_REJECT_ACCESS_DENIED, 4);
	tg_metrics_set(TG_M_SUBSCRIPTIONS, TG_SUB_TOPIC, 7);
	tg_metrics_set(TG_M_CONN_OPENED, 0, 99);	/* set is for gauges only */
	tg_metrics_inc(TG_M_GROUP_SIZE, 0, 1);	/* inc is not for histograms */
	tg_metrics_observe(TG_M_GROUP_SIZE, 1);
	tg_metrics_observe(TG_M_GROUP_SIZE, 3);
	tg_metrics_observe(TG_M_GROUP_SIZE, 1000000);
	tg_metrics_observe(TG_M_COMMIT_SECONDS, 1500);	/* 1.5 ms */
	tg_metrics_observe(TG_M_COMMIT_SECONDS, 250);
	tg_metrics_observe(TG_M_CONN_OPEN, 5);	/* observe is for histograms only */
	CHECK(tg_metrics_get(TG_M_CONN_OPEN, 0) == 2, "gauge add");

	e1 = tg_metrics_executor_register("exec 1\"x");
	e2 = tg_metrics_executor_register("exec-2");
	CHECK(e1 >= 0 && e2 >= 0 && e1 != e2, "executors register");
	CHECK(tg_metrics_executor_register("exec 1\"x") == e1, "same name, same slot");
	tg_metrics_executor_set(e1, 12);
	tg_metrics_executor_set(99999, 1);	/* ignored */

	t = render();
	CHECK(t != NULL, "render");
	if (t == NULL)
		return 1;
	CHECK(has_line(t, "topgun_build_info{version=\"1.2\",postgres=\"15.8\"} 1"), "build info");
	CHECK(has_line(t, "# TYPE topgun_connections_opened_total counter"), "counter type");
	CHECK(has_line(t, "topgun_connections_opened_total 3"), "counter value");
	CHECK(has_line(t, "topgun_connections_open 2"), "gauge value");
	CHECK(has_line(t, "topgun_connections_closed_total{code=\"4001\"} 1"), "close code");
	CHECK(has_line(t, "topgun_connections_closed_total{code=\"other\"} 2"), "unknown close codes");
	CHECK(has_line(t, "topgun_auth_failures_total{reason=\"bad_signature\"} 2"), "auth reason");
	CHECK(has_line(t, "topgun_auth_failures_total{reason=\"not_configured\"} 1"), "auth not configured");
	CHECK(has_line(t, "topgun_messages_received_total{type=\"OP_BATCH\"} 5"), "message type");
	{
		char		last[128];

		snprintf(last, sizeof(last), "topgun_messages_received_total{type=\"%s\"} 1",
				 tg_msg_type_name((TgMsgType) (TG_MSG_COUNT_ - 1)));
		CHECK(has_line(t, last), "label clamped");
	}
	CHECK(has_line(t, "topgun_ops_rejected_total{reason=\"access_denied\"} 4"), "reject reason");
	CHECK(has_line(t, "topgun_subscriptions{kind=\"topic\"} 7"), "labelled gauge");
	CHECK(has_line(t, "topgun_subscriptions{kind=\"search\"} 0"), "all labels rendered");
	CHECK(has_line(t, "# TYPE topgun_group_commit_ops histogram"), "histogram type");
	CHECK(has_line(t, "topgun_group_commit_ops_bucket{le=\"1\"} 1"), "first bucket");
	CHECK(has_line(t, "topgun_group_commit_ops_bucket{le=\"5\"} 2"), "cumulative bucket");
	CHECK(has_line(t, "topgun_group_commit_ops_bucket{le=\"20000\"} 2"), "last finite bucket");
	CHECK(has_line(t, "topgun_group_commit_ops_bucket{le=\"+Inf\"} 3"), "+Inf bucket");
	CHECK(has_line(t, "topgun_group_commit_ops_count 3"), "count");
	CHECK(has_line(t, "topgun_group_commit_ops_sum 1000004"), "sum");
	CHECK(has_line(t, "topgun_group_commit_duration_seconds_bucket{le=\"0.00025\"} 1"), "seconds bound");
	CHECK(has_line(t, "topgun_group_commit_duration_seconds_bucket{le=\"0.0025\"} 2"), "seconds bucket");
	CHECK(has_line(t, "topgun_group_commit_duration_seconds_bucket{le=\"1\"} 2"), "whole-second bound");
	CHECK(has_line(t, "topgun_group_commit_duration_seconds_sum 0.00175"), "seconds sum");
	CHECK(has_line(t, "topgun_executor_queue_depth{executor=\"exec_1_x\"} 12"), "executor depth, name cleaned");
	CHECK(has_line(t, "topgun_executor_queue_depth{executor=\"exec-2\"} 0"), "second executor");
	CHECK(strstr(t, "topgun_connections_open 99") == NULL, "set on a counter ignored");
	free(t);

	tg_metrics_executor_unregister(e2);
	t = render();
	CHECK(t && strstr(t, "exec-2") == NULL, "unregistered executor gone");
	free(t);
	for (int i = 0; i < TG_METRICS_MAX_EXECUTORS + 2; i++)
	{
		char		name[32];

		snprintf(name, sizeof(name), "e%d", i);
		e2 = tg_metrics_executor_register(name);
	}
	CHECK(e2 == -1, "executor slots are bounded");

	/* allow lists */
	CHECK(peer_ok("localhost", "127.0.0.1"), "localhost v4");
	CHECK(peer_ok("localhost", "127.8.9.1"), "localhost /8");
	CHECK(peer_ok("localhost", "::1"), "localhost v6");
	CHECK(peer_ok("localhost", "::ffff:127.0.0.1"), "v4-mapped loopback");
	CHECK(!peer_ok("localhost", "10.0.0.1"), "not localhost");
	CHECK(!peer_ok("localhost", "not an address"), "garbage peer");
	CHECK(peer_ok("10.0.0.0/8, 192.168.1.7", "10.200.3.4"), "cidr");
	CHECK(peer_ok("10.0.0.0/8 192.168.1.7", "192.168.1.7"), "host, space separated");
	CHECK(!peer_ok("10.0.0.0/8, 192.168.1.7", "192.168.1.8"), "host mismatch");
	CHECK(peer_ok("10.1.2.0/23", "10.1.3.255"), "odd prefix in");
	CHECK(!peer_ok("10.1.2.0/23", "10.1.4.0"), "odd prefix out");
	CHECK(peer_ok("fd00::/8", "fd12::5"), "v6 cidr");
	CHECK(!peer_ok("fd00::/8", "10.0.0.1"), "v4 peer vs v6 net");
	CHECK(peer_ok("*", "203.0.113.9"), "any");
	CHECK(!peer_ok("", "127.0.0.1"), "empty list allows nobody");
	CHECK(peer_ok("0.0.0.0/0", "8.8.8.8"), "/0");
	CHECK(!tg_netlist_parse("10.0.0.0/33", &l, err, sizeof(err)), "v4 prefix too long");
	CHECK(!tg_netlist_parse("10.0.0.0/", &l, err, sizeof(err)), "empty prefix");
	CHECK(!tg_netlist_parse("10.0.0.0/8x", &l, err, sizeof(err)), "junk prefix");
	CHECK(!tg_netlist_parse("example.com", &l, err, sizeof(err)) && strstr(err, "example.com"),
		  "host names refused: %s", err);
	CHECK(!tg_netlist_parse("1111111111111111111111111111111111111111111111111111111111111111111", &l, err, sizeof(err)),
		  "long entry");
	{
		char		many[TG_NETLIST_MAX * 12 + 16] = "";

		for (int i = 0; i <= TG_NETLIST_MAX; i++)
			sprintf(many + strlen(many), "10.0.0.%d,", i);
		CHECK(!tg_netlist_parse(many, &l, err, sizeof(err)), "too many entries");
	}

	/* HTTP answers */
	CHECK(answer("/health", "10.0.0.1", true, NULL, 503, "\"status\":\"not_ready\"", NULL), "not ready");
	tg_metrics_set_server(4242, 1);
	tg_metrics_set_health(TG_HEALTH_READY, "1.2");
	CHECK(answer("/health?verbose=1", "10.0.0.1", true, NULL, 200, "\"status\":\"ready\"", "\"connections\":2"), "ready");
	CHECK(answer("/health", "10.0.0.1", true, NULL, 200, "\"extension_version\":\"1.2\"", "application/json"), "ready: version, type");
	tg_metrics_set_health(TG_HEALTH_EXTENSION_OUTDATED, "1.\"1");
	CHECK(answer("/health", "10.0.0.1", true, NULL, 503, "\"status\":\"extension_outdated\"", "\"extension_version\":\"1.?1\""),
		  "outdated, version made safe");
	tg_metrics_set_health(TG_HEALTH_EXTENSION_MISSING, "");
	CHECK(answer("/health", "10.0.0.1", true, NULL, 503, "\"extension_missing\"", "\"extension_version\":null"), "missing");
	tg_metrics_set_health(TG_HEALTH_SHUTTING_DOWN, NULL);
	CHECK(answer("/health", "10.0.0.1", true, NULL, 503, "\"shutting_down\"", NULL), "shutting down");
	CHECK(answer("/health/live", "10.0.0.1", true, NULL, 200, "\"alive\"", "\"pid\":4242"), "live");
	CHECK(answer("/", "10.0.0.1", true, NULL, 200, "TopGun Server Running", NULL), "root");
	CHECK(answer("/nope", "10.0.0.1", true, NULL, 404, NULL, NULL), "unknown path");
	CHECK(answer("/metricsx", "127.0.0.1", true, NULL, 404, NULL, NULL), "prefix is not a match");
	CHECK(answer("/metrics", "10.0.0.1", true, NULL, 403, NULL, NULL), "metrics: localhost only by default");
	CHECK(answer("/metrics", "127.0.0.1", false, NULL, 404, "topgun.metrics = off", NULL), "metrics off");
	tg_netlist_parse("10.0.0.0/8", &l, err, sizeof(err));
	CHECK(answer("/metrics", "10.0.0.1", true, &l, 200, "\ntopgun_ready 0\n", "version=0.0.4"), "metrics allowed");
	CHECK(answer("/metrics", "127.0.0.1", true, &l, 403, NULL, NULL), "list replaces localhost");

	printf("test_metrics: %d passed, %d failed\n", checks - failures, failures);
	return failures == 0 ? 0 : 1;
}
