/*
 * patterns.c — which maps are journaled (topgun.journal_maps).
 *
 * A map is journaled when it matches one of the patterns in
 * topgun.journal_maps ('*' matches any run of characters, everything else
 * itself).  The storage triggers ask for every row they see, so the answer
 * is cached per backend: the patterns, and the decision per map name.  The
 * cache is dropped by a relcache invalidation of topgun.journal_maps, which
 * the table's statement trigger (topgun._invalidate_cache) sends
 * (transactionally: other backends see the change when it commits).  With no pattern at all the check is one
 * comparison.
 */
#include "topgun.h"
#include "journal/journal.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/memutils.h"

#define MAX_DECISIONS	4096	/* cached map names before the cache starts over */

typedef struct Decision
{
	char		map[TG_MAX_MAP_BYTES + 1];
	bool		enabled;
} Decision;

static MemoryContext cache_cxt = NULL;
static bool cache_valid = false;
static Oid	patterns_relid = InvalidOid;
static int	npatterns = 0;
static char **patterns = NULL;
static HTAB *decisions = NULL;

PG_FUNCTION_INFO_V1(tg_journal_enabled);

/* Glob match: '*' is any run of characters (iterative, linear backtracking). */
static bool
glob_match(const char *p, const char *s, int slen)
{
	const char *star = NULL;
	int			i = 0,
				mark = 0;

	while (i < slen)
	{
		if (*p == '*')
		{
			star = ++p;
			mark = i;
		}
		else if (*p != '\0' && *p == s[i])
		{
			p++;
			i++;
		}
		else if (star != NULL)
		{
			p = star;
			i = ++mark;
		}
		else
			return false;
	}
	while (*p == '*')
		p++;
	return *p == '\0';
}

static void
load_patterns(void *arg)
{
	uint64		i;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute("SELECT pattern FROM topgun.journal_maps", true, 0) != SPI_OK_SELECT)
		elog(ERROR, "topgun: could not read topgun.journal_maps");
	npatterns = (int) SPI_processed;
	patterns = MemoryContextAlloc(cache_cxt, sizeof(char *) * (npatterns + 1));
	for (i = 0; i < SPI_processed; i++)
	{
		char	   *v = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);

		patterns[i] = MemoryContextStrdup(cache_cxt, v ? v : "");
	}
	SPI_finish();
}

static void
ensure_cache(void)
{
	HASHCTL		ctl;

	if (cache_valid)
		return;
	if (cache_cxt == NULL)
		cache_cxt = AllocSetContextCreate(TopMemoryContext, "topgun journal patterns",
										  ALLOCSET_SMALL_SIZES);
	MemoryContextReset(cache_cxt);
	npatterns = 0;
	patterns = NULL;
	decisions = NULL;
	patterns_relid = tg_journal_relid("journal_maps", true);
	if (OidIsValid(patterns_relid))
		tg_journal_as_owner(patterns_relid, load_patterns, NULL);
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = TG_MAX_MAP_BYTES + 1;
	ctl.entrysize = sizeof(Decision);
	ctl.hcxt = cache_cxt;
	decisions = hash_create("topgun journal decisions", 64, &ctl,
							HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	cache_valid = true;
}

bool
tg_journal_any_enabled(void)
{
	ensure_cache();
	return npatterns > 0;
}

bool
tg_journal_map_enabled(const char *map, int len)
{
	char		name[TG_MAX_MAP_BYTES + 1];
	Decision   *d;
	bool		found;
	int			i;

	ensure_cache();
	if (npatterns == 0)
		return false;
	if (len > TG_MAX_MAP_BYTES)
		len = TG_MAX_MAP_BYTES;	/* such a map cannot be written; the key only */
	memcpy(name, map, len);
	name[len] = '\0';
	if (hash_get_num_entries(decisions) >= MAX_DECISIONS)
	{
		cache_valid = false;
		ensure_cache();
	}
	d = hash_search(decisions, name, HASH_ENTER, &found);
	if (!found)
	{
		d->enabled = false;
		for (i = 0; i < npatterns && !d->enabled; i++)
			d->enabled = glob_match(patterns[i], map, len);
	}
	return d->enabled;
}

static void
relcache_cb(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == patterns_relid)
		cache_valid = false;
}

void
tg_journal_patterns_init(void)
{
	CacheRegisterRelcacheCallback(relcache_cb, (Datum) 0);
}

/*
 * topgun.journal_enabled(map text DEFAULT NULL): is the map journaled (NULL:
 * is any map journaled)?  Also the WHEN condition of the capture triggers.
 */
Datum
tg_journal_enabled(PG_FUNCTION_ARGS)
{
	text	   *map;

	if (PG_ARGISNULL(0))
		PG_RETURN_BOOL(tg_journal_any_enabled());
	map = PG_GETARG_TEXT_PP(0);
	PG_RETURN_BOOL(tg_journal_map_enabled(VARDATA_ANY(map), VARSIZE_ANY_EXHDR(map)));
}
