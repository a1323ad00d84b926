/*
 * lock_table.c — filling and draining the shared lock table (lock_shm.h),
 * PostgreSQL-free: the caller holds the table's lock (pg_lock_shm.c).
 */
#include "logic/lock_shm.h"

#include <string.h>

static void
add_row(void *arg, const TgLockInfo *info)
{
	TgLockShm  *t = arg;
	TgLockShmRow *r;

	if (t->nrows >= TG_LOCK_SHM_ROWS)
	{
		t->truncated = true;
		return;
	}
	r = &t->rows[t->nrows++];
	r->name_len = (uint16_t) (info->name_len < TG_LOCK_NAME_MAX ? info->name_len : TG_LOCK_NAME_MAX);
	memcpy(r->name, info->name, r->name_len);
	r->held = info->held;
	r->holder = info->owner;
	r->token = info->token;
	r->expiry_ms = info->expiry_ms;
	r->waiters = info->waiters;
}

void
tg_lock_table_fill(TgLockShm *t, const TgLockMgr *m)
{
	t->nrows = 0;
	t->truncated = false;
	tg_lockmgr_visit(m, add_row, t);
	t->generation++;
}

bool
tg_lock_table_post_release(TgLockShm *t, const char *name, size_t len)
{
	uint32_t	slot;

	if (len == 0 || len > TG_LOCK_NAME_MAX || t->rel_head - t->rel_tail >= TG_LOCK_SHM_RELEASES)
		return false;
	slot = t->rel_head % TG_LOCK_SHM_RELEASES;
	memcpy(t->release[slot].name, name, len);
	t->release[slot].name_len = (uint16_t) len;
	t->rel_head++;
	return true;
}

int
tg_lock_table_drain(TgLockShm *t, TgLockMgr *m, int64_t now_ms)
{
	int			released = 0;

	while (t->rel_tail != t->rel_head)
	{
		uint32_t	slot = t->rel_tail % TG_LOCK_SHM_RELEASES;

		released += tg_lockmgr_force_release(m, t->release[slot].name, t->release[slot].name_len, now_ms);
		t->rel_tail++;
	}
	return released;
}
