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

/* PostgreSQL-free (lock_table.c); the caller holds the table lock. */
extern void tg_lock_table_fill(TgLockShm *t, const TgLockMgr *m);
extern bool tg_lock_table_post_release(TgLockShm *t, const char *name, size_t len);
extern int	tg_lock_table_drain(TgLockShm *t, TgLockMgr *m, int64_t now_ms);	/* locks released */

/*
 * PostgreSQL side (pg_lock_shm.c), for the sync server process:
 *   tg_lock_shm_attach()      once at start: server_pid/procno set, cleared at exit
 *   tg_lock_shm_sync(m, now)  when its latch is set and after every change to m:
 *                             drains release requests into m, republishes the table;
 *                             returns how many locks the operator released (their
 *                             hand-overs were reported through m's grant callback)
 */
extern void tg_lock_shm_init(void);
extern void tg_lock_shm_attach(void);
extern int	tg_lock_shm_sync(TgLockMgr *m, int64_t now_ms);

#endif							/* TG_LOGIC_LOCK_SHM_H */
