/*
 * recheck.c — the policies changed (topgun.policies, in commit order through
 * the change feed): one walk over every connection drops what it may no
 * longer read -- live queries, topic and counter subscriptions, map watches
 * -- each with a 403.  acl.c only answers questions; this file acts on them.
 */
#include "postgres.h"

#include "exec/exec.h"

void
tg_recheck_access(void)
{
	for (TgConn *c = tg_conns; c; c = c->next)
	{
		if (c->closed || c->closing || !c->authenticated)
			continue;
		tg_query_recheck_conn(c);
		tg_namesub_recheck(c, &c->topics, &c->ntopics, "topic:");
		tg_namesub_recheck(c, &c->counters, &c->ncounters, "counter:");
		tg_watches_recheck_conn(c);
	}
}
