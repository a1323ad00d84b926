/*
 * fuzz_http.c — libFuzzer target for the plain-HTTP answers of the sync
 * server's port (src/metrics/http.c): the request path comes from any TCP
 * peer, the allow list from topgun.metrics_listen_addresses.  Input: path,
 * NUL, peer address, NUL, allow list.  Checks that every answer has a known
 * status and a NUL-terminated body of the stated length.
 */
#include <stdlib.h>
#include <string.h>

#include "metrics/http.h"
#include "metrics/metrics.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static TgMetricsShared shm;
	static int	attached = 0;
	char	   *copy = malloc(size + 3);
	char	   *path,
			   *peer,
			   *list;
	TgNetList	l;
	char		err[160];
	bool		parsed;
	TgHttpResponse r;

	if (!attached)
		attached = tg_metrics_attach(&shm, true, "1.2", "15");
	memcpy(copy, data, size);
	copy[size] = copy[size + 1] = copy[size + 2] = '\0';
	path = copy;
	peer = path + strlen(path) + 1;
	if (peer > copy + size)
		peer = copy + size + 1;
	list = peer + strlen(peer) + 1;
	if (list > copy + size + 1)
		list = copy + size + 2;

	parsed = tg_netlist_parse(list, &l, err, sizeof(err));
	if (parsed && l.n > TG_NETLIST_MAX)
		abort();
	if (!parsed && memchr(err, '\0', sizeof(err)) == NULL)
		abort();
	tg_metrics_inc(TG_M_MSG_RECEIVED, (int) size, 1);
	tg_metrics_conn_closed((int) size);
	if (tg_http_respond(path, peer, size % 2 == 0, parsed ? &l : NULL, &r))
	{
		if (r.status != 200 && r.status != 403 && r.status != 404 && r.status != 503)
			abort();
		if (r.body == NULL || r.body[r.len] != '\0' || strlen(r.body) != r.len || r.content_type == NULL)
			abort();
		free(r.body);
	}
	free(copy);
	return 0;
}
