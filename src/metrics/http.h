/*
 * http.h — plain-HTTP requests on the sync server's port: GET /health,
 * /health/live and /metrics (PostgreSQL-free, callable from an lws callback:
 * nothing here can raise an error or block).
 *
 *   /health       200 {"status":"ready",...} while serving, otherwise 503 with
 *                 "status" one of not_ready, extension_missing,
 *                 extension_outdated, shutting_down (/health/ready: the same).
 *   /health/live  200 {"status":"alive",...}: the socket loop is running
 *                 (it is the loop that answers).
 *   /metrics      Prometheus text 0.0.4 of src/metrics; 404 when
 *                 topgun.metrics = off, 403 to a peer outside
 *                 topgun.metrics_listen_addresses.
 *   /             200 "TopGun Server Running" (what the reference server says).
 *   anything else 404.
 */
#ifndef TG_METRICS_HTTP_H
#define TG_METRICS_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TG_NETLIST_MAX 32

/* An allow list of peer networks: "localhost", "*", addresses and CIDRs. */
typedef struct TgNetList
{
	bool		any;			/* "*" */
	int			n;
	struct
	{
		int			family;		/* 4 or 6 */
		int			bits;
		uint8_t		addr[16];
	}			net[TG_NETLIST_MAX];
} TgNetList;

/*
 * Parse a comma/space separated list such as "localhost, 10.0.0.0/8, ::1".
 * "localhost" means 127.0.0.0/8 and ::1; "*" any peer; "" nobody.  On
 * failure returns false with a reason in err.
 */
extern bool tg_netlist_parse(const char *s, TgNetList *out, char *err, size_t errlen);

/* Is the textual peer address (IPv4, IPv6, IPv4-mapped IPv6) in the list? */
extern bool tg_netlist_match(const TgNetList *l, const char *peer);

typedef struct TgHttpResponse
{
	int			status;
	const char *content_type;
	char	   *body;			/* malloc'd; the caller frees it */
	size_t		len;
} TgHttpResponse;

/*
 * Answer one GET.  path may carry a query string (ignored); peer is the
 * client's address as text; allow NULL means localhost only.  Returns false
 * only when memory ran out (answer 500 without a body then).
 */
extern bool tg_http_respond(const char *path, const char *peer, bool metrics_on,
							const TgNetList *allow, TgHttpResponse *out);

#endif							/* TG_METRICS_HTTP_H */
