/*
 * keyset.c — an open-addressing hash set of keys (malloc'd: the keys a
 * live query's client currently holds).  Stored keys carry their length in
 * their first 4 bytes.
 */
#include "postgres.h"

#include "common/hashfn.h"

#include "exec/exec.h"

char		tg_keyset_dead;

static uint32
ks_hash(const char *k, size_t len)
{
	return hash_bytes((const unsigned char *) k, (int) len);
}

/* Stored keys carry their length in the first 4 bytes. */
size_t
tg_ks_len(const char *e)
{
	uint32		l;

	memcpy(&l, e, 4);
	return l;
}

static int
ks_find(const TgKeySet *ks, const char *k, size_t len)
{
	uint32		i;

	if (ks->cap == 0)
		return -1;
	i = ks_hash(k, len) & (ks->cap - 1);
	for (;;)
	{
		char	   *e = ks->slots[i];

		if (e == NULL)
			return -1;
		if (e != TG_KEYSET_DEAD && tg_ks_len(e) == len && memcmp(e + 4, k, len) == 0)
			return (int) i;
		i = (i + 1) & (ks->cap - 1);
	}
}

bool
tg_ks_has(const TgKeySet *ks, const char *k, size_t len)
{
	return ks_find(ks, k, len) >= 0;
}


static bool
ks_grow(TgKeySet *ks)
{
	TgKeySet	n;

	n.cap = ks->cap ? ks->cap * 2 : 16;
	while (n.cap < 2 * (ks->n + 1))
		n.cap *= 2;
	n.slots = calloc(n.cap, sizeof(char *));
	n.n = n.used = 0;
	if (n.slots == NULL)
		return false;
	for (uint32 i = 0; i < ks->cap; i++)
	{
		char	   *e = ks->slots[i];
		uint32		j;

		if (e == NULL || e == TG_KEYSET_DEAD)
			continue;
		j = ks_hash(e + 4, tg_ks_len(e)) & (n.cap - 1);
		while (n.slots[j] != NULL)
			j = (j + 1) & (n.cap - 1);
		n.slots[j] = e;
		n.n++;
		n.used++;
	}
	free(ks->slots);
	*ks = n;
	return true;
}

bool
tg_ks_add(TgKeySet *ks, const char *k, size_t len)
{
	uint32		i;
	char	   *e;
	uint32		l = (uint32) len;

	if (tg_ks_has(ks, k, len))
		return true;
	if ((ks->used + 1) * 4 >= ks->cap * 3 && !ks_grow(ks))
		return false;
	e = malloc(len + 4);
	if (e == NULL)
		return false;
	memcpy(e, &l, 4);
	memcpy(e + 4, k, len);
	i = ks_hash(k, len) & (ks->cap - 1);
	while (ks->slots[i] != NULL && ks->slots[i] != TG_KEYSET_DEAD)
		i = (i + 1) & (ks->cap - 1);
	if (ks->slots[i] == NULL)
		ks->used++;
	ks->slots[i] = e;
	ks->n++;
	return true;
}

void
tg_ks_del(TgKeySet *ks, const char *k, size_t len)
{
	int			i = ks_find(ks, k, len);

	if (i < 0)
		return;
	free(ks->slots[i]);
	ks->slots[i] = TG_KEYSET_DEAD;
	ks->n--;
}

void
tg_ks_free(TgKeySet *ks)
{
	for (uint32 i = 0; i < ks->cap; i++)
		if (ks->slots[i] != NULL && ks->slots[i] != TG_KEYSET_DEAD)
			free(ks->slots[i]);
	free(ks->slots);
	memset(ks, 0, sizeof(*ks));
}

