/*
 * lock_shm.h — the shared-memory window between the sync server's lock
 * manager and SQL (topgun.locks, topgun.lock_release).  docs/locks.md.
 *
 * Published table (server → SQL): the server, after any change to its lock
 * manager (at most every few ms), takes `lock` exclusively, rewrites
 * rows[0..nrows) from tg_lockmgr_visit(), sets server_pid to its own pid and
 * bumps `generation`.  On exit (before_shmem_exit) it sets server_pid = 0 and
 * nrows = 0.  topgun.locks() reads under LW_SHARED and returns nothing when
 * server_pid is 0 or that process is gone.  Rows beyond TG_LOCK_SHM_ROWS are
 * not published (`truncated` is set).
 *
 * Release requests (SQL → server): topgun.lock_release(name) appends the
 * name to the ring release[] (head/tail, TG_LOCK_SHM_RELEASES slots) under
 * the lock and sets the latch of server_procno; the server drains the ring
 * with tg_lockmgr_force_release() (which hands the lock to the next waiter)
 * and republishes.  A full ring or no server: the call returns false.
 */
#ifndef TG_LOGIC_LOCK_SHM_H
#define TG_LOGIC_LOCK_SHM_H

#include "logic/lockmgr.h"

#define TG_LOCK_SHM_ROWS		4096
#define TG_LOCK_SHM_RELEASES	64

typedef struct TgLockShmRow
{
	uint16_t	name_len;
	char		name[TG_LOCK_NAME_MAX];
	bool		held;
	uint64_t	holder;			/* the server's connection id */
	uint64_t	token;
	int64_t		expiry_ms;		/* Unix ms */
	int32_t		waiters;
} TgLockShmRow;

typedef struct TgLockShm
{
	void	   *lock;			/* LWLock * (PostgreSQL side) */
	int32_t		server_pid;		/* 0: no server publishing */
	int32_t		server_procno;	/* PGPROC number whose latch to set */
	uint64_t	generation;
	int32_t		nrows;
	bool		truncated;
	uint32_t	rel_head,
				rel_tail;		/* ring of release requests: [tail, head) */
	struct
	{
		uint16_t	name_len;
		char		name[TG_LOCK_NAME_MAX];
	}			release[TG_LOCK_SHM_RELEASES];
	TgLockShmRow rows[TG_LOCK_SHM_ROWS];
} TgLockShm;

/* PostgreSQL side (src/logic/pg_lock_shm.c): the segment, NULL before startup. */
extern TgLockShm *tg_lock_shm(void);
extern void tg_lock_shm_init(void);

#endif							/* TG_LOGIC_LOCK_SHM_H */
