/*
 * metrics_render.c — cost of rendering the whole metrics registry
 * (src/metrics, PostgreSQL-free), with every executor slot registered and
 * every series non-zero: the worst case of one /metrics scrape on the socket
 * loop.  Prints microseconds per render and the exposition size.
 *
 *   bench/metrics_render [renders]      (default 20000)
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "metrics/metrics.h"

int
main(int argc, char **argv)
{
	static TgMetricsShared shm;
	int			n = argc > 1 ? atoi(argv[1]) : 20000;
	struct timespec t0,
				t1;
	size_t		bytes = 0;
	double		us;

	if (n < 1 || !tg_metrics_attach(&shm, true, "1.2", "15.0"))
		return 1;
	for (int m = 0; m < TG_M_COUNT_; m++)
		for (int l = 0; l < 32; l++)
		{
			tg_metrics_inc((TgMetric) m, l, 123456789);
			tg_metrics_set((TgMetric) m, l, 987654321);
			tg_metrics_observe((TgMetric) m, (uint64_t) l * 7919);
		}
	for (int e = 0; e < TG_METRICS_MAX_EXECUTORS; e++)
	{
		char		name[32];

		snprintf(name, sizeof(name), "executor-%d", e);
		tg_metrics_executor_set(tg_metrics_executor_register(name), 1000 + e);
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < n; i++)
	{
		MpBuf		b;

		mp_buf_init(&b, 1 << 20);
		if (!tg_metrics_render(&b))
			return 1;
		bytes = b.len;
		mp_buf_free(&b);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	us = ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / 1e3 / n;
	printf("render: %.1f us per scrape (%d renders, %zu bytes, %d executors registered)\n",
		   us, n, bytes, TG_METRICS_MAX_EXECUTORS);
	return 0;
}
