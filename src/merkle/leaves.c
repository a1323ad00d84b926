/*
 * leaves.c — the leaf array of a depth-2 Merkle node row (merkle_nodes.leaves,
 * 16 bigints, NULL = absent leaf): reading it, and adding a commit's leaf
 * deltas to it (mod 2^32).  Used by the flush (pending.c, node_write.c) and
 * the SQL API (api.c).
 */
#include "topgun.h"
#include "merkle/merkle.h"
#include "catalog/pg_type.h"
#include "utils/array.h"

/* The 16 leaf hashes of a depth-2 node row; NULL elements are absent leaves. */
void
tg_merkle_get_leaves(ArrayType *a, uint32 *hashes, bool *exists)
{
	Datum	   *d;
	bool	   *nulls;
	int			n;

	if (ARR_NDIM(a) != 1 || ARR_ELEMTYPE(a) != INT8OID)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("Merkle leaf array must be a one-dimensional bigint array")));
	deconstruct_array(a, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &d, &nulls, &n);
	if (n != TG_NODE_LEAVES)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("Merkle leaf array has %d elements, expected %d", n, TG_NODE_LEAVES)));
	for (int i = 0; i < TG_NODE_LEAVES; i++)
	{
		exists[i] = !nulls[i];
		hashes[i] = nulls[i] ? 0 : (uint32) DatumGetInt64(d[i]);
	}
}

/*
 * Element-wise sum modulo 2^32 of a node's stored leaves and a commit's leaf
 * deltas: a leaf not touched stays as it is, a delta on an absent leaf
 * creates it.
 */
ArrayType *
tg_merkle_leaves_sum(ArrayType *old, const uint32 *delta, uint16 touched)
{
	uint32		cur[TG_NODE_LEAVES];
	bool		cur_ex[TG_NODE_LEAVES];
	Datum		out[TG_NODE_LEAVES];
	bool		outnull[TG_NODE_LEAVES];
	int			dims[1] = {TG_NODE_LEAVES};
	int			lbs[1] = {1};

	tg_merkle_get_leaves(old, cur, cur_ex);
	for (int i = 0; i < TG_NODE_LEAVES; i++)
	{
		bool		t = (touched & (1 << i)) != 0;

		outnull[i] = !cur_ex[i] && !t;
		out[i] = Int64GetDatum((int64) (uint32) (cur[i] + (t ? delta[i] : 0)));
	}
	return construct_md_array(out, outnull, 1, dims, lbs, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE);
}
