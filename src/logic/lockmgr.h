/*
 * lockmgr.h — the distributed-lock manager behind LOCK_REQUEST /
 * LOCK_RELEASE (PostgreSQL-free; the sync server owns one instance).
 *
 * Semantics (docs/locks.md): named locks, one holder, FIFO waiters; a lease
 * of ttl ms (0 → 10 s, clamped to [1 s, 300 s]) expires when now > expiry;
 * the holder re-requesting extends its lease and keeps its token; release
 * needs the holder and its token; releasing every lock and waiter of an owner
 * on disconnect; a waiter can be cancelled and is never granted after
 * max_wait_ms (the client stops waiting after 30 s).  Time is whatever
 * `now_ms` the caller passes.
 *
 * Fencing tokens strictly increase per name for the life of the data
 * directory: the manager takes them from blocks reserved through the
 * `reserve` callback, which must durably raise a per-name high-water mark
 * and return the first token of the new block.  A restart loses at most the
 * unused rest of each block.
 */
#ifndef TG_LOGIC_LOCKMGR_H
#define TG_LOGIC_LOCKMGR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TG_LOCK_NAME_MAX	256		/* bytes */
#define TG_LOCK_REQID_MAX	128		/* bytes */
#define TG_LOCK_TTL_DEFAULT 10000
#define TG_LOCK_TTL_MIN		1000
#define TG_LOCK_TTL_MAX		300000
#define TG_LOCK_TOKEN_MAX	((UINT64_C(1) << 53) - 1)	/* JS-safe */

typedef struct TgLockLimits
{
	int			max_held_per_owner; /* locks one owner may hold */
	int			max_waiters_per_lock;
	int			max_waits_per_owner;	/* queued requests of one owner, all locks */
	int			max_names;		/* names remembered (held, awaited or idle with a token block) */
	int64_t		max_wait_ms;	/* a waiter older than this is dropped, never granted */
	uint32_t	token_block;	/* tokens reserved per reserve() call */
} TgLockLimits;

/* Durably reserve n tokens for name; *first = first token of the block. */
typedef bool (*TgLockReserveFn) (void *arg, const char *name, size_t name_len, uint32_t n, uint64_t *first);

/* A waiter was granted the lock (hand-over after release/expiry/disconnect). */
typedef struct TgLockGrant
{
	const char *name;
	size_t		name_len;
	uint64_t	owner;
	const char *request_id;
	size_t		request_id_len;
	uint64_t	token;
	int64_t		expiry_ms;
} TgLockGrant;
typedef void (*TgLockGrantFn) (void *arg, const TgLockGrant *g);

typedef enum TgLockResult
{
	TG_LOCK_GRANTED,			/* *token set */
	TG_LOCK_QUEUED,
	TG_LOCK_ERR_NAME,			/* empty or too long name / request id */
	TG_LOCK_ERR_HELD_LIMIT,
	TG_LOCK_ERR_WAITER_LIMIT,
	TG_LOCK_ERR_NAMES_LIMIT,
	TG_LOCK_ERR_RESERVE,		/* reserve() failed or tokens exhausted */
	TG_LOCK_ERR_MEMORY
} TgLockResult;

typedef struct TgLockMgr TgLockMgr;

extern void tg_lock_default_limits(TgLockLimits *l);
extern TgLockMgr *tg_lockmgr_create(const TgLockLimits *lim, TgLockReserveFn reserve, void *reserve_arg,
									TgLockGrantFn on_grant, void *grant_arg);
extern void tg_lockmgr_destroy(TgLockMgr *m);
extern int64_t tg_lock_clamp_ttl(int64_t ttl_ms);

extern TgLockResult tg_lockmgr_acquire(TgLockMgr *m, const char *name, size_t name_len, uint64_t owner,
									   const char *request_id, size_t request_id_len, int64_t ttl_ms,
									   int64_t now_ms, uint64_t *token);
/* true when owner held name with this token (the lock then passes on). */
extern bool tg_lockmgr_release(TgLockMgr *m, const char *name, size_t name_len, uint64_t owner,
							   uint64_t token, int64_t now_ms);
/* Operator release (topgun.lock_release): whoever holds it.  true if it was held. */
extern bool tg_lockmgr_force_release(TgLockMgr *m, const char *name, size_t name_len, int64_t now_ms);
/* Drop a queued request (the client gave up).  true if it was queued. */
extern bool tg_lockmgr_cancel(TgLockMgr *m, uint64_t owner, const char *request_id, size_t request_id_len);
/* Disconnect: release every lock of owner, drop its waiters. */
extern void tg_lockmgr_release_owner(TgLockMgr *m, uint64_t owner, int64_t now_ms);
/* Expire leases (now > expiry) and stale waiters; hand locks over. */
extern void tg_lockmgr_sweep(TgLockMgr *m, int64_t now_ms);
/* Earliest expiry among held locks (for the caller's timer), INT64_MAX if none. */
extern int64_t tg_lockmgr_next_expiry(const TgLockMgr *m);

/* Snapshot for topgun.locks: visit every held or awaited lock. */
typedef struct TgLockInfo
{
	const char *name;
	size_t		name_len;
	bool		held;
	uint64_t	owner;
	uint64_t	token;			/* current (held) or last granted token */
	int64_t		expiry_ms;
	int			waiters;
} TgLockInfo;
typedef void (*TgLockVisitFn) (void *arg, const TgLockInfo *info);
extern void tg_lockmgr_visit(const TgLockMgr *m, TgLockVisitFn fn, void *arg);
extern int	tg_lockmgr_held_by(const TgLockMgr *m, uint64_t owner);

#endif							/* TG_LOGIC_LOCKMGR_H */
