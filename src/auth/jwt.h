/*
 * jwt.h — JSON Web Token verification for the TopGun AUTH message.
 *
 * PostgreSQL-free (unit-tested and fuzzed standalone); uses OpenSSL 3 only.
 *
 * Design rules (RFC 8725, PROTOCOL.md §2.2, REFERENCES.md §D1):
 *  - The algorithm is pinned by the configured key, never taken from the
 *    token.  The header "alg" must equal the pinned algorithm; "none", any
 *    other value, a missing or non-string "alg", and any "crit" are refused.
 *  - Tokens are length-capped before anything is decoded; base64url is
 *    strict (no padding, whitespace or foreign characters, canonical
 *    trailing bits); exactly three segments.
 *  - The signature is checked before the payload is parsed.
 *  - Error texts are jsonwebtoken 9's, because the worker forwards them in
 *    AUTH_FAIL {error} and the TopGun client only logs them.
 *
 * Typical use (worker, H3):
 *
 *     TgJwtKey key;                       -- at configuration time
 *     char err[256];
 *     switch (tg_jwt_check_secret(TG_JWT_HS256 or RS256 if the secret
 *                                 contains "-----BEGIN", secret_guc,
 *                                 production_guc, err, sizeof(err)))
 *         FATAL -> refuse to start; WARN -> log err; MISSING -> caller's
 *         choice (TopGun falls back to TG_JWT_DEV_SECRET); OK -> go on
 *     if (!tg_jwt_key_init_from_config(&key, secret_guc, err, sizeof(err)))
 *         ereport(FATAL, ...err...);
 *     ...
 *     TgJwtClaims claims;                 -- per AUTH message
 *     char why[64];
 *     TgJwtResult r = tg_jwt_verify(&key, token, token_len, time(NULL),
 *                                   0, TG_JWT_DEFAULT_MAX_TOKEN_BYTES, 0,
 *                                   &claims, why, sizeof(why));
 *     if (r != TG_JWT_OK) send AUTH_FAIL {error: why};
 *     ...
 *     tg_jwt_key_free(&key);              -- on shutdown / reload
 *
 * Thread-safety: a TgJwtKey is read-only after initialisation and may be
 * shared by concurrent tg_jwt_verify() calls.  tg_jwt_verify() needs about
 * 16 KiB of stack, allocates only inside OpenSSL (freed before returning)
 * and leaves the thread's OpenSSL error queue empty.
 */
#ifndef TG_AUTH_JWT_H
#define TG_AUTH_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* OpenSSL's EVP_PKEY, forward-declared so that callers need no OpenSSL headers. */
struct evp_pkey_st;

/* Limits. */
#define TG_JWT_DEFAULT_MAX_TOKEN_BYTES	8192	/* used when max_token_bytes == 0 */
#define TG_JWT_HARD_MAX_TOKEN_BYTES		16384	/* larger caps are clamped to this */
#define TG_JWT_MAX_ROLES				32		/* more roles: TG_JWT_BAD_CLAIMS */
#define TG_JWT_MAX_ROLE_BYTES			64		/* per role, excluding NUL */
#define TG_JWT_MAX_ID_BYTES				256		/* sub / userId, excluding NUL */
#define TG_JWT_MIN_HMAC_SECRET_BYTES	32		/* production minimum for HS256 */
#define TG_JWT_MIN_RSA_BITS				2048

/* The public default secret of the TopGun server; refused in production. */
#define TG_JWT_DEV_SECRET				"topgun-secret-dev"

typedef enum TgJwtAlg
{
	TG_JWT_HS256 = 0,
	TG_JWT_RS256,
	TG_JWT_ES256
} TgJwtAlg;

typedef enum TgJwtResult
{
	TG_JWT_OK = 0,
	TG_JWT_MALFORMED,			/* not three strict base64url segments; header or
								 * payload not a JSON object */
	TG_JWT_TOO_LARGE,			/* longer than max_token_bytes */
	TG_JWT_BAD_ALGORITHM,		/* header alg != pinned alg, "none", crit, bad typ */
	TG_JWT_BAD_SIGNATURE,		/* signature missing, wrong length, or wrong */
	TG_JWT_EXPIRED,				/* now >= exp + leeway */
	TG_JWT_NOT_ACTIVE,			/* nbf > now + leeway */
	TG_JWT_BAD_CLAIMS			/* exp/nbf/iat not finite numbers, bad sub/userId/
								 * roles types or sizes, duplicate claim, missing
								 * exp with TG_JWT_REQUIRE_EXP */
} TgJwtResult;

/* Flags for tg_jwt_verify(). */
#define TG_JWT_REQUIRE_EXP		0x0001	/* a token without "exp" is TG_JWT_BAD_CLAIMS */

/*
 * A verification key.  The algorithm is fixed when the key is created.
 * Treat the fields as private; zero-initialised or freed keys verify nothing.
 */
typedef struct TgJwtKey
{
	TgJwtAlg	alg;
	unsigned char *secret;		/* HS256: malloc'd copy of the secret bytes */
	size_t		secret_len;
	struct evp_pkey_st *pkey;	/* RS256 / ES256: public key */
} TgJwtKey;

/*
 * Claims extracted from a verified token.  Strings are NUL-terminated UTF-8
 * and never contain an embedded NUL (tokens whose claims do are refused).
 */
typedef struct TgJwtClaims
{
	bool		has_sub;
	char		sub[TG_JWT_MAX_ID_BYTES + 1];
	/* userId claim, or a copy of sub when userId is absent (TopGun rule) */
	bool		has_user_id;
	char		user_id[TG_JWT_MAX_ID_BYTES + 1];
	/* roles claim, or ["USER"] when absent (TopGun rule); may be empty ([]) */
	int			nroles;
	bool		roles_defaulted;
	char		roles[TG_JWT_MAX_ROLES][TG_JWT_MAX_ROLE_BYTES + 1];
	/* NumericDate claims, seconds since the epoch (may have fractions) */
	bool		has_exp;
	bool		has_nbf;
	bool		has_iat;
	double		exp;
	double		nbf;
	double		iat;
} TgJwtClaims;

/* Secret policy verdicts of tg_jwt_check_secret(). */
typedef enum TgJwtSecretCheck
{
	TG_JWT_SECRET_OK = 0,
	TG_JWT_SECRET_WARN,			/* usable, but "why" explains a weakness */
	TG_JWT_SECRET_MISSING,		/* none configured outside production: caller
								 * decides (e.g. refuse all AUTH or use dev) */
	TG_JWT_SECRET_FATAL			/* refuse to start; "why" says why */
} TgJwtSecretCheck;

/* "HS256"/"RS256"/"ES256" (exact, case-sensitive) -> alg; false otherwise. */
extern bool tg_jwt_alg_from_string(const char *s, TgJwtAlg *alg);
extern const char *tg_jwt_alg_name(TgJwtAlg alg);

/* Symbolic name of a result, for server logs ("TG_JWT_EXPIRED" -> "expired"). */
extern const char *tg_jwt_result_name(TgJwtResult r);

/*
 * HS256 key from raw secret bytes (used as-is: not base64-decoded, no
 * newline processing).  len must be > 0.  On failure returns false, writes
 * a reason into err and leaves *key zeroed.
 */
extern bool tg_jwt_key_init_hmac(TgJwtKey *key, const void *secret, size_t len,
								 char *err, size_t errlen);

/*
 * RS256 or ES256 public key.  pem is either PEM text (recognised by
 * "-----BEGIN") or a file path.  In PEM text, every literal two-character
 * "\n" is turned into a newline first, as the TopGun server does with its
 * JWT_SECRET.  Only "-----BEGIN PUBLIC KEY-----" (SubjectPublicKeyInfo) is
 * accepted.  The key type must match alg: RS256 needs an RSA key of at least
 * TG_JWT_MIN_RSA_BITS bits, ES256 an EC key on P-256.  On failure returns
 * false, writes a reason into err and leaves *key zeroed.
 */
extern bool tg_jwt_key_load_pem(TgJwtKey *key, TgJwtAlg alg, const char *pem,
								char *err, size_t errlen);

/*
 * TopGun's configuration rule (auth-handler.ts): literal "\n" sequences in
 * the secret become newlines; a secret containing "-----BEGIN" is a PEM
 * public key (RS256 for an RSA key; ES256 for a P-256 key — an extension),
 * anything else is an HS256 secret made of the secret's UTF-8 bytes.
 * Does not apply the production policy: call tg_jwt_check_secret() first.
 */
extern bool tg_jwt_key_init_from_config(TgJwtKey *key, const char *secret,
										char *err, size_t errlen);

/* Release a key (idempotent; the secret copy is cleansed). */
extern void tg_jwt_key_free(TgJwtKey *key);

/*
 * Secret policy (TopGun SEC-01, tightened).  secret may be NULL or "" for
 * "not configured"; for RS256/ES256 it is the PEM text or path.
 *  production: missing -> FATAL; equal to TG_JWT_DEV_SECRET -> FATAL;
 *              HS256 secret shorter than TG_JWT_MIN_HMAC_SECRET_BYTES -> FATAL.
 *  otherwise:  missing -> MISSING; dev secret or short HS256 secret -> WARN.
 * why (may be NULL) receives a human-readable explanation for non-OK verdicts.
 */
extern TgJwtSecretCheck tg_jwt_check_secret(TgJwtAlg alg, const char *secret,
											bool production,
											char *why, size_t whylen);

/*
 * Verify token[0..len) (need not be NUL-terminated) against key at time
 * now_s (seconds since the epoch).  leeway_s (< 0 treated as 0) widens the
 * exp/nbf windows.  max_token_bytes caps len before decoding (0 means
 * TG_JWT_DEFAULT_MAX_TOKEN_BYTES; values above TG_JWT_HARD_MAX_TOKEN_BYTES
 * are clamped).  flags: TG_JWT_REQUIRE_EXP or 0.
 *
 * On TG_JWT_OK fills *out (which may be NULL if the caller needs no claims).
 * Otherwise *out is unspecified, and err (may be NULL) receives the text
 * for AUTH_FAIL, jsonwebtoken's where it has one:
 *   TG_JWT_MALFORMED      "jwt must be provided", "jwt malformed" (segments,
 *                         base64url), "invalid token" (header or payload not a
 *                         JSON object)
 *   TG_JWT_TOO_LARGE      "jwt too large"
 *   TG_JWT_BAD_ALGORITHM  "invalid algorithm" (alg), "invalid token" (crit,
 *                         typ), "secret or public key must be provided"
 *   TG_JWT_BAD_SIGNATURE  "jwt signature is required", "invalid signature"
 *   TG_JWT_EXPIRED        "jwt expired"
 *   TG_JWT_NOT_ACTIVE     "jwt not active"
 *   TG_JWT_BAD_CLAIMS     "invalid exp value", "invalid nbf value", "invalid
 *                         iat value", "invalid sub value", "invalid userId
 *                         value", "invalid roles value", "invalid token"
 *                         (duplicate claim), "jwt expiry required"
 * Never allocates memory that outlives the call and never reads outside
 * token[0..len).  err should hold at least 64 bytes.
 */
extern TgJwtResult tg_jwt_verify(const TgJwtKey *key, const char *token,
								 size_t len, int64_t now_s, int leeway_s,
								 size_t max_token_bytes, int flags,
								 TgJwtClaims *out, char *err, size_t errlen);

#endif							/* TG_AUTH_JWT_H */
