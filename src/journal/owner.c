/*
 * owner.c — run a function as the owner of a journal table (the journal's
 * statements run with the extension owner's rights, whoever wrote).
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_class.h"
#include "miscadmin.h"
#include "utils/syscache.h"

#include "journal/journal.h"

/*
 * The journal is written on behalf of whoever changed a journaled map; that
 * role needs no privileges on the journal's own tables, exactly as with the
 * Merkle tree's.  Errors restore the user through the abort.
 */
void
tg_journal_as_owner(Oid relid, void (*fn) (void *), void *arg)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Oid			owner;
	Oid			save_user;
	int			save_sec;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "topgun: cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	GetUserIdAndSecContext(&save_user, &save_sec);
	SetUserIdAndSecContext(owner, save_sec | SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
	fn(arg);
	SetUserIdAndSecContext(save_user, save_sec);
}
