/*
 * worker_acl.c — per-map / per-topic / per-counter access control of the
 * sync server (docs/access-control.md).
 *
 * Policies live in topgun.policies (role, pattern, actions).  The worker
 * keeps a copy in memory, loaded when it becomes ready and again whenever
 * the table changes (a statement trigger publishes the reserved topic
 * TG_POLICY_TOPIC through the change feed, so the reload happens in commit
 * order).  Rules, as in TopGun's SecurityManager:
 *   - a token whose roles contain ADMIN is always allowed;
 *   - map names starting with "$sys/" are ADMIN-only;
 *   - otherwise an action is allowed when some policy whose role is one of
 *     the token's roles (USER when the token has none) matches the
 *     resource and lists the action or ALL;
 *   - with an empty policy table everything is allowed (development
 *     default, logged as a WARNING in production mode);
 *   - while the table could not be read yet, everything but ADMIN is
 *     denied (fail closed).
 * Resources: maps by name, topics as "topic:<name>", counters as
 * "counter:<name>".  Patterns: "*" anywhere matches any sequence;
 * "{userId}" is replaced by the token's userId (or sub) first.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "exec/exec.h"

typedef struct Policy
{
	char	   *role;
	char	   *pattern;
	int			actions;		/* TgAction bits */
} Policy;

static Policy *policies = NULL;
static int	npolicies = 0;
static bool acl_loaded = false;
static bool acl_stale = true;
static int	plan_policies = -1;

void
tg_acl_invalidate(void)
{
	acl_stale = true;
}

/* Reload topgun.policies (inside a transaction with SPI connected). */
void
tg_acl_load(void)
{
	MemoryContext old;
	int			n;

	n = SPI_execute_plan(tg_live_plan(&plan_policies,
									  "SELECT role, pattern, "
									  "(CASE WHEN 'ALL' = ANY(actions) THEN 7 ELSE 0 END "
									  " | CASE WHEN 'READ' = ANY(actions) THEN 1 ELSE 0 END "
									  " | CASE WHEN 'PUT' = ANY(actions) THEN 2 ELSE 0 END "
									  " | CASE WHEN 'REMOVE' = ANY(actions) THEN 4 ELSE 0 END)::int4 "
									  "FROM topgun.policies ORDER BY id",
									  0, NULL),
						 NULL, NULL, true, 0);
	if (n != SPI_OK_SELECT)
		elog(ERROR, "topgun: could not read topgun.policies");

	/* replace the cache only after the read succeeded */
	old = MemoryContextSwitchTo(TopMemoryContext);
	for (int i = 0; i < npolicies; i++)
	{
		pfree(policies[i].role);
		pfree(policies[i].pattern);
	}
	if (policies)
		pfree(policies);
	npolicies = (int) SPI_processed;
	policies = palloc(sizeof(Policy) * Max(1, npolicies));
	for (int i = 0; i < npolicies; i++)
	{
		bool		isnull;
		HeapTuple	t = SPI_tuptable->vals[i];

		policies[i].role = SPI_getvalue(t, SPI_tuptable->tupdesc, 1);
		policies[i].pattern = SPI_getvalue(t, SPI_tuptable->tupdesc, 2);
		policies[i].actions = DatumGetInt32(SPI_getbinval(t, SPI_tuptable->tupdesc, 3, &isnull));
		if (policies[i].role == NULL)
			policies[i].role = pstrdup("");
		if (policies[i].pattern == NULL)
			policies[i].pattern = pstrdup("");
	}
	MemoryContextSwitchTo(old);
	if (npolicies == 0 && tg_production && (!acl_loaded || acl_stale))
		ereport(WARNING,
				(errmsg("topgun: topgun.policies is empty: with topgun.production on, every action of a client without the ADMIN role is denied"),
				 errhint("Insert policies to open up, e.g. INSERT INTO topgun.policies (role, pattern, actions) VALUES ('USER', 'public/*', '{READ}'); "
						 "('USER', '*', '{ALL}') allows every authenticated client everything (docs/access-control.md).")));
	acl_loaded = true;
	acl_stale = false;
}

bool
tg_acl_needs_reload(void)
{
	return acl_stale;
}

/* Glob match: '*' = any sequence; everything else literal. */
static bool
glob_match(const char *p, size_t plen, const char *s, size_t slen)
{
	size_t		pi = 0,
				si = 0,
				star = (size_t) -1,
				mark = 0;

	while (si < slen)
	{
		if (pi < plen && p[pi] == '*')
		{
			star = pi++;
			mark = si;
		}
		else if (pi < plen && p[pi] == s[si])
		{
			pi++;
			si++;
		}
		else if (star != (size_t) -1)
		{
			pi = star + 1;
			si = ++mark;
		}
		else
			return false;
	}
	while (pi < plen && p[pi] == '*')
		pi++;
	return pi == plen;
}

static bool
pattern_match(TgConn *c, const char *pattern, const char *res, size_t len)
{
	const char *uid = tg_conn_identity(c);
	const char *at = strstr(pattern, "{userId}");

	if (at == NULL)
		return glob_match(pattern, strlen(pattern), res, len);
	{
		/* substitute every {userId}; a token without identity matches nothing */
		StringInfoData buf;
		const char *p = pattern;
		bool		r;

		if (uid[0] == '\0')
			return false;
		initStringInfo(&buf);
		while ((at = strstr(p, "{userId}")) != NULL)
		{
			appendBinaryStringInfo(&buf, p, at - p);
			appendStringInfoString(&buf, uid);
			p = at + 8;
		}
		appendStringInfoString(&buf, p);
		r = glob_match(buf.data, buf.len, res, len);
		pfree(buf.data);
		return r;
	}
}

bool
tg_acl_has_role(const TgConn *c, const char *role)
{
	if (c->nroles == 0)
		return strcmp(role, "USER") == 0;
	for (int i = 0; i < c->nroles; i++)
		if (strcmp(c->roles[i], role) == 0)
			return true;
	return false;
}

void
tg_acl_after_auth(TgConn *c)
{
	c->is_admin = false;
	for (int i = 0; i < c->nroles; i++)
		if (strcmp(c->roles[i], "ADMIN") == 0)
			c->is_admin = true;
}

bool
tg_acl_allowed(TgConn *c, const char *resource, size_t len, TgAction act)
{
	if (c->is_admin)
		return true;
	if (len >= 5 && memcmp(resource, "$sys/", 5) == 0)
		return false;
	if (!acl_loaded)
		return false;			/* fail closed until the policies could be read */
	if (npolicies == 0)
		return !tg_production;	/* development: open; production: fail closed */
	for (int i = 0; i < npolicies; i++)
	{
		if ((policies[i].actions & act) == 0)
			continue;
		if (!tg_acl_has_role(c, policies[i].role))
			continue;
		if (pattern_match(c, policies[i].pattern, resource, len))
			return true;
	}
	return false;
}

/* Check and, when denied, answer ERROR 403 and count it. */
bool
tg_acl_check(TgConn *c, const char *resource, size_t len, TgAction act)
{
	if (tg_acl_allowed(c, resource, len, act))
		return true;
	c->denied++;
	c->slot_dirty = true;
	tg_stat_add(TG_STAT_ACCESS_DENIED, 1);
	tg_send_error(c, 403, psprintf("Access denied for %.*s", (int) Min(len, 300), resource));
	return false;
}
