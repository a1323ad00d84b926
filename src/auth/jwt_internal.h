/*
 * jwt_internal.h — internal to src/auth/jwt*.c: size limits and the error
 * formatter shared by key loading (jwt_keys.c) and verification (jwt.c).
 */
#ifndef TG_AUTH_JWT_INTERNAL_H
#define TG_AUTH_JWT_INTERNAL_H

#include "auth/jwt.h"

#define HS256_SIG_BYTES		32
#define ES256_SIG_BYTES		64
#define ES256_COORD_BYTES	32
#define MAX_RSA_BITS		8192
#define MAX_SIG_BYTES		(MAX_RSA_BITS / 8)
#define MAX_PEM_FILE_BYTES	65536
/* Decoded header or payload never exceeds 3/4 of the (capped) token. */
#define MAX_DECODED_BYTES	(TG_JWT_HARD_MAX_TOKEN_BYTES / 4 * 3 + 3)

/* printf into err (errlen bytes) when err is not NULL. */
extern void tg_jwt_set_err(char *err, size_t errlen, const char *fmt,...)
			__attribute__((format(printf, 3, 4)));

#endif							/* TG_AUTH_JWT_INTERNAL_H */
