/*
 * bm25.c — the reference's formulas, in its operation order, so that the
 * same summation order gives bit-identical doubles.
 */
#include "search/bm25.h"

#include <math.h>

double
tg_bm25_idf(double n_docs, double df)
{
	return log((n_docs - df + 0.5) / (df + 0.5) + 1);
}

double
tg_bm25_term(double idf, double tf, double dl, double avgdl, double k1, double b)
{
	double		numerator = tf * (k1 + 1);
	double		denominator = tf + k1 * (1 - b + b * (dl / avgdl));

	return idf * (numerator / denominator);
}
