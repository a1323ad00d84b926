/*
 * metrics_pg.h — PostgreSQL side of the metrics module: the GUCs
 * topgun.metrics and topgun.metrics_listen_addresses, and the shared-memory
 * block behind tg_metrics (metrics.h).  tg_metrics_init() is called from
 * _PG_init (declared in topgun.h).
 */
#ifndef TG_METRICS_PG_H
#define TG_METRICS_PG_H

#include "metrics/http.h"

extern bool tg_metrics_enabled;				/* topgun.metrics */
extern const TgNetList *tg_metrics_allow;	/* parsed topgun.metrics_listen_addresses */

#endif							/* TG_METRICS_PG_H */
