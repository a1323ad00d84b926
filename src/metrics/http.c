/*
 * http.c — /health, /health/live and /metrics (see http.h).
 */
#include "metrics/http.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "metrics/metrics.h"

/* Longest entry of an allow list ("ffff:...:ffff/128" and some slack). */
#define NET_ENTRY_MAX 64

static bool
parse_entry(const char *tok, TgNetList *out, char *err, size_t errlen)
{
	char		addr[NET_ENTRY_MAX];
	char	   *slash;
	long		bits = -1;
	int			family;

	if (strcmp(tok, "*") == 0)
	{
		out->any = true;
		return true;
	}
	if (strcmp(tok, "localhost") == 0)
		return parse_entry("127.0.0.0/8", out, err, errlen) &&
			parse_entry("::1", out, err, errlen);
	if (out->n >= TG_NETLIST_MAX)
	{
		snprintf(err, errlen, "more than %d entries", TG_NETLIST_MAX);
		return false;
	}
	snprintf(addr, sizeof(addr), "%s", tok);
	slash = strchr(addr, '/');
	if (slash)
	{
		char	   *end;

		*slash = '\0';
		bits = strtol(slash + 1, &end, 10);
		if (slash[1] == '\0' || *end != '\0' || bits < 0 || bits > 128)
		{
			snprintf(err, errlen, "invalid prefix length in \"%s\"", tok);
			return false;
		}
	}
	if (inet_pton(AF_INET, addr, out->net[out->n].addr) == 1)
		family = 4;
	else if (inet_pton(AF_INET6, addr, out->net[out->n].addr) == 1)
		family = 6;
	else
	{
		snprintf(err, errlen, "\"%s\" is not an IP address, a CIDR, \"localhost\" or \"*\"", tok);
		return false;
	}
	if (bits > (family == 4 ? 32 : 128))
	{
		snprintf(err, errlen, "invalid prefix length in \"%s\"", tok);
		return false;
	}
	out->net[out->n].family = family;
	out->net[out->n].bits = bits < 0 ? (family == 4 ? 32 : 128) : (int) bits;
	out->n++;
	return true;
}

bool
tg_netlist_parse(const char *s, TgNetList *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	while (s && *s)
	{
		size_t		len;
		char		tok[NET_ENTRY_MAX];

		s += strspn(s, ", \t");
		len = strcspn(s, ", \t");
		if (len == 0)
			break;
		if (len >= sizeof(tok))
		{
			snprintf(err, errlen, "entry \"%.20s...\" is too long", s);
			return false;
		}
		memcpy(tok, s, len);
		tok[len] = '\0';
		if (!parse_entry(tok, out, err, errlen))
			return false;
		s += len;
	}
	return true;
}

static bool
prefix_equal(const uint8_t *a, const uint8_t *b, int bits)
{
	int			bytes = bits / 8;
	int			rest = bits % 8;

	if (memcmp(a, b, (size_t) bytes) != 0)
		return false;
	if (rest == 0)
		return true;
	return ((a[bytes] ^ b[bytes]) & (uint8_t) (0xff << (8 - rest))) == 0;
}

bool
tg_netlist_match(const TgNetList *l, const char *peer)
{
	uint8_t		a[16];
	uint8_t		v4[4];
	bool		is4;
	bool		mapped;

	if (l->any)
		return true;
	is4 = inet_pton(AF_INET, peer, a) == 1;
	if (!is4 && inet_pton(AF_INET6, peer, a) != 1)
		return false;
	/* ::ffff:a.b.c.d is the IPv4 peer a.b.c.d on a dual-stack socket */
	mapped = !is4 && memcmp(a, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0;
	if (mapped)
		memcpy(v4, a + 12, 4);
	for (int i = 0; i < l->n; i++)
	{
		if (l->net[i].family == 4 && (is4 || mapped) &&
			prefix_equal(is4 ? a : v4, l->net[i].addr, l->net[i].bits))
			return true;
		if (l->net[i].family == 6 && !is4 && prefix_equal(a, l->net[i].addr, l->net[i].bits))
			return true;
	}
	return false;
}

/* ------------------------------------------------------------ answers */

static const char *const health_names[] = {
	[TG_HEALTH_NOT_READY] = "not_ready",
	[TG_HEALTH_READY] = "ready",
	[TG_HEALTH_EXTENSION_MISSING] = "extension_missing",
	[TG_HEALTH_EXTENSION_OUTDATED] = "extension_outdated",
	[TG_HEALTH_SHUTTING_DOWN] = "shutting_down",
};

/* A version string from shared memory, reduced to safe JSON characters. */
static void
copy_version(char *dst, const char *src)
{
	size_t		i;

	for (i = 0; i + 1 < TG_METRICS_VERSION_LEN && src[i]; i++)
		dst[i] = (src[i] == '"' || src[i] == '\\' || (unsigned char) src[i] < 0x20) ? '?' : src[i];
	dst[i] = '\0';
}

static bool
respond_health(bool live, TgHttpResponse *out)
{
	const TgMetricsShared *m = tg_metrics;
	uint32_t	h = m ? __atomic_load_n(&m->health, __ATOMIC_ACQUIRE) : TG_HEALTH_NOT_READY;
	int64_t		started = m ? __atomic_load_n(&m->server_started, __ATOMIC_RELAXED) : 0;
	char		lib[TG_METRICS_VERSION_LEN] = "";
	char		ext[TG_METRICS_VERSION_LEN] = "";
	char		buf[512];
	int			n;

	if (h >= sizeof(health_names) / sizeof(health_names[0]))
		h = TG_HEALTH_NOT_READY;
	if (m)
	{
		copy_version(lib, m->library_version);
		copy_version(ext, m->extension_version);
	}
	if (live)
		n = snprintf(buf, sizeof(buf),
					 "{\"status\":\"alive\",\"pid\":%" PRIu32 ",\"uptime_seconds\":%" PRId64 "}\n",
					 m ? __atomic_load_n(&m->server_pid, __ATOMIC_RELAXED) : 0,
					 started ? (int64_t) time(NULL) - started : 0);
	else
		n = snprintf(buf, sizeof(buf),
					 "{\"status\":\"%s\",\"version\":\"%s\",\"extension_version\":%s%s%s,"
					 "\"connections\":%" PRId64 ",\"uptime_seconds\":%" PRId64 "}\n",
					 health_names[h], lib,
					 ext[0] ? "\"" : "", ext[0] ? ext : "null", ext[0] ? "\"" : "",
					 tg_metrics_get(TG_M_CONN_OPEN, 0),
					 started ? (int64_t) time(NULL) - started : 0);
	out->status = live || h == TG_HEALTH_READY ? 200 : 503;
	out->content_type = "application/json";
	out->body = malloc((size_t) n + 1);
	if (out->body == NULL)
		return false;
	memcpy(out->body, buf, (size_t) n + 1);
	out->len = (size_t) n;
	return true;
}

static bool
respond_text(int status, const char *text, TgHttpResponse *out)
{
	out->status = status;
	out->content_type = "text/plain; charset=utf-8";
	out->len = strlen(text);
	out->body = malloc(out->len + 1);
	if (out->body == NULL)
		return false;
	memcpy(out->body, text, out->len + 1);
	return true;
}

/* Upper bound on one scrape's size: the registry is fixed, so this is plenty. */
#define METRICS_MAX_BYTES (1024 * 1024)

bool
tg_http_respond(const char *path, const char *peer, bool metrics_on,
				const TgNetList *allow, TgHttpResponse *out)
{
	size_t		plen = strcspn(path, "?#");
	TgNetList	localhost;

	memset(out, 0, sizeof(*out));
#define IS(p) (plen == strlen(p) && strncmp(path, (p), plen) == 0)
	if (IS("/health") || IS("/health/ready"))
		return respond_health(false, out);
	if (IS("/health/live"))
		return respond_health(true, out);
	if (IS("/"))
		return respond_text(200, "TopGun Server Running", out);
	if (!IS("/metrics"))
		return respond_text(404, "Not Found\n", out);
#undef IS
	if (!metrics_on)
		return respond_text(404, "Not Found (topgun.metrics = off)\n", out);
	if (allow == NULL)
	{
		char		err[8];

		tg_netlist_parse("localhost", &localhost, err, sizeof(err));
		allow = &localhost;
	}
	if (!tg_netlist_match(allow, peer))
		return respond_text(403, "Forbidden (see topgun.metrics_listen_addresses)\n", out);
	{
		MpBuf		b;

		mp_buf_init(&b, METRICS_MAX_BYTES);
		if (!tg_metrics_render(&b) || !mp_put_raw(&b, "", 1))	/* NUL-terminated, like the others */
		{
			bool		oom = b.oom;

			mp_buf_free(&b);
			return !oom && respond_text(503, "Metrics are not available\n", out);
		}
		out->status = 200;
		out->content_type = "text/plain; version=0.0.4; charset=utf-8";
		out->body = (char *) mp_buf_steal(&b, &out->len);
		out->len--;
		return true;
	}
}
