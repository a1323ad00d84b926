/*
 * bm25.h — BM25 as the reference scores it (ADDENDUM §A1.4,
 * core/fts/BM25Scorer.ts).  PostgreSQL-free.
 */
#ifndef TG_SEARCH_BM25_H
#define TG_SEARCH_BM25_H

/* IDF = ln((N - df + 0.5) / (df + 0.5) + 1) */
double		tg_bm25_idf(double n_docs, double df);

/* One term's contribution: idf * tf(k1+1) / (tf + k1(1 - b + b dl/avgdl)) */
double		tg_bm25_term(double idf, double tf, double dl, double avgdl, double k1, double b);

#endif							/* TG_SEARCH_BM25_H */
