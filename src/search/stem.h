/*
 * stem.h — the reference's Porter (1980) stemmer (ADDENDUM §A1.3), over
 * UTF-16 code units: only ASCII a-z take part in the rules, every other unit
 * counts as a consonant.  PostgreSQL-free.
 */
#ifndef TG_SEARCH_STEM_H
#define TG_SEARCH_STEM_H

#include <stddef.h>
#include <stdint.h>

/*
 * Stem w[0..*n) in place.  The buffer must have room for *n + 1 units: a
 * step may append one unit ("at" -> "ate").  *n is updated.
 */
void		tg_porter_stem(uint16_t *w, size_t *n);

#endif							/* TG_SEARCH_STEM_H */
