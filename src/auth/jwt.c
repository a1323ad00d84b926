/*
 * jwt.c — JWT verification with OpenSSL 3 (HS256, RS256, ES256).
 *
 * See jwt.h for the contract.  Order of checks, each one before any work
 * that depends on it: length cap, three segments, strict base64url header,
 * header JSON (alg pinned, no crit, typ), signature over the raw ASCII
 * "header.payload", and only then payload decoding and claims.
 *
 * OpenSSL's per-thread error queue is cleared before returning from every
 * function that may have failed inside OpenSSL: libwebsockets shares the
 * queue in the worker and misreads stale entries as TLS errors.
 */
#include "auth/jwt_internal.h"
#include "auth/json_claims.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

void
tg_jwt_set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list		ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

bool
tg_jwt_alg_from_string(const char *s, TgJwtAlg *alg)
{
	if (s == NULL)
		return false;
	if (strcmp(s, "HS256") == 0)
		*alg = TG_JWT_HS256;
	else if (strcmp(s, "RS256") == 0)
		*alg = TG_JWT_RS256;
	else if (strcmp(s, "ES256") == 0)
		*alg = TG_JWT_ES256;
	else
		return false;
	return true;
}

const char *
tg_jwt_alg_name(TgJwtAlg alg)
{
	switch (alg)
	{
		case TG_JWT_HS256:
			return "HS256";
		case TG_JWT_RS256:
			return "RS256";
		case TG_JWT_ES256:
			return "ES256";
	}
	return "?";
}

const char *
tg_jwt_result_name(TgJwtResult r)
{
	switch (r)
	{
		case TG_JWT_OK:
			return "ok";
		case TG_JWT_MALFORMED:
			return "malformed";
		case TG_JWT_TOO_LARGE:
			return "too large";
		case TG_JWT_BAD_ALGORITHM:
			return "bad algorithm";
		case TG_JWT_BAD_SIGNATURE:
			return "bad signature";
		case TG_JWT_EXPIRED:
			return "expired";
		case TG_JWT_NOT_ACTIVE:
			return "not active";
		case TG_JWT_BAD_CLAIMS:
			return "bad claims";
	}
	return "?";
}

/* ------------------------------------------------------------------------
 * Verification
 */

static int
b64url_val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

/*
 * Strict base64url (RFC 7515 §2): URL-safe alphabet only, no padding, no
 * whitespace, length mod 4 != 1, and the unused low bits of the last
 * character zero (so each byte string has exactly one encoding).
 */
static bool
b64url_decode(const char *in, size_t n, unsigned char *out, size_t outcap,
			  size_t *outlen)
{
	size_t		o = 0;
	size_t		i;
	size_t		full = n / 4 * 4;
	size_t		rem = n % 4;

	if (rem == 1 || n / 4 * 3 + (rem ? rem - 1 : 0) > outcap)
		return false;
	for (i = 0; i < full; i += 4)
	{
		int			a = b64url_val(in[i]),
					b = b64url_val(in[i + 1]),
					c = b64url_val(in[i + 2]),
					d = b64url_val(in[i + 3]);

		if ((a | b | c | d) < 0)
			return false;
		out[o++] = (unsigned char) ((a << 2) | (b >> 4));
		out[o++] = (unsigned char) (((b & 0x0F) << 4) | (c >> 2));
		out[o++] = (unsigned char) (((c & 0x03) << 6) | d);
	}
	if (rem == 2)
	{
		int			a = b64url_val(in[i]),
					b = b64url_val(in[i + 1]);

		if ((a | b) < 0 || (b & 0x0F) != 0)
			return false;
		out[o++] = (unsigned char) ((a << 2) | (b >> 4));
	}
	else if (rem == 3)
	{
		int			a = b64url_val(in[i]),
					b = b64url_val(in[i + 1]),
					c = b64url_val(in[i + 2]);

		if ((a | b | c) < 0 || (c & 0x03) != 0)
			return false;
		out[o++] = (unsigned char) ((a << 2) | (b >> 4));
		out[o++] = (unsigned char) (((b & 0x0F) << 4) | (c >> 2));
	}
	*outlen = o;
	return true;
}

/* Decoded top-level key into buf; false if it does not fit (so is not ours). */
static bool
key_text(const TgJsonValue *k, char *buf, size_t buflen)
{
	bool		has_nul;
	long		n = tg_json_string_decode(k, buf, buflen, &has_nul);

	return n >= 0 && !has_nul;
}

static bool
ascii_ieq(const char *a, const char *b)
{
	for (; *a && *b; a++, b++)
	{
		char		x = (*a >= 'a' && *a <= 'z') ? *a - 32 : *a;
		char		y = (*b >= 'a' && *b <= 'z') ? *b - 32 : *b;

		if (x != y)
			return false;
	}
	return *a == *b;
}

/*
 * Header checks.  Returns TG_JWT_OK or the failure with its text.
 */
static TgJwtResult
check_header(const TgJsonValue *hdr, TgJwtAlg pinned, char *err, size_t errlen)
{
	TgJsonIter	it;
	TgJsonValue k,
				v,
				alg = {0},
				typ = {0};
	int			nalg = 0,
				ntyp = 0;
	char		kb[8];

	tg_json_iter_init(&it, hdr);
	while (tg_json_object_next(&it, &k, &v))
	{
		if (!key_text(&k, kb, sizeof(kb)))
			continue;
		if (strcmp(kb, "alg") == 0)
		{
			alg = v;
			nalg++;
		}
		else if (strcmp(kb, "typ") == 0)
		{
			typ = v;
			ntyp++;
		}
		else if (strcmp(kb, "crit") == 0)
		{
			/* we implement no extension, so every critical one is unknown */
			tg_jwt_set_err(err, errlen, "invalid token");
			return TG_JWT_BAD_ALGORITHM;
		}
	}
	if (nalg != 1 || !tg_json_string_equals(&alg, tg_jwt_alg_name(pinned)))
	{
		tg_jwt_set_err(err, errlen, "invalid algorithm");
		return TG_JWT_BAD_ALGORITHM;
	}
	if (ntyp > 1)
	{
		tg_jwt_set_err(err, errlen, "invalid token");
		return TG_JWT_BAD_ALGORITHM;
	}
	if (ntyp == 1)
	{
		char		tb[8];
		bool		has_nul;

		/* typ is a media type name: compared case-insensitively (RFC 7515 §4.1.9) */
		if (tg_json_string_decode(&typ, tb, sizeof(tb), &has_nul) < 0 || has_nul ||
			!ascii_ieq(tb, "JWT"))
		{
			tg_jwt_set_err(err, errlen, "invalid token");
			return TG_JWT_BAD_ALGORITHM;
		}
	}
	return TG_JWT_OK;
}

static bool
verify_hs256(const TgJwtKey *key, const char *input, size_t inlen,
			 const unsigned char *sig, size_t siglen)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	bool		ok;

	if (siglen != HS256_SIG_BYTES)
		return false;
	if (HMAC(EVP_sha256(), key->secret, (int) key->secret_len,
			 (const unsigned char *) input, inlen, mac, &maclen) == NULL ||
		maclen != HS256_SIG_BYTES)
	{
		ERR_clear_error();
		return false;
	}
	ok = CRYPTO_memcmp(mac, sig, HS256_SIG_BYTES) == 0;
	OPENSSL_cleanse(mac, sizeof(mac));
	return ok;
}

/* SHA-256 signature check with the key's public key over DER or PKCS#1 sig. */
static bool
digest_verify(EVP_PKEY *pkey, const char *input, size_t inlen,
			  const unsigned char *sig, size_t siglen)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool		ok = false;

	if (ctx == NULL)
		return false;
	if (EVP_DigestVerifyInit_ex(ctx, NULL, "SHA256", NULL, NULL, pkey, NULL) == 1)
		ok = EVP_DigestVerify(ctx, sig, siglen,
							  (const unsigned char *) input, inlen) == 1;
	EVP_MD_CTX_free(ctx);
	ERR_clear_error();
	return ok;
}

static bool
verify_rs256(const TgJwtKey *key, const char *input, size_t inlen,
			 const unsigned char *sig, size_t siglen)
{
	/* RSASSA-PKCS1-v1_5 signatures are exactly the modulus size */
	if (siglen != (size_t) EVP_PKEY_get_size(key->pkey))
		return false;
	return digest_verify(key->pkey, input, inlen, sig, siglen);
}

/*
 * ES256: JWS carries R||S as two 32-byte big-endian integers (RFC 7518
 * §3.4); OpenSSL verifies a DER ECDSA-Sig-Value, so re-encode.
 */
static bool
verify_es256(const TgJwtKey *key, const char *input, size_t inlen,
			 const unsigned char *sig, size_t siglen)
{
	ECDSA_SIG  *es;
	BIGNUM	   *r,
			   *s;
	unsigned char *der = NULL;
	int			derlen;
	bool		ok;

	if (siglen != ES256_SIG_BYTES)
		return false;
	es = ECDSA_SIG_new();
	r = BN_bin2bn(sig, ES256_COORD_BYTES, NULL);
	s = BN_bin2bn(sig + ES256_COORD_BYTES, ES256_COORD_BYTES, NULL);
	if (es == NULL || r == NULL || s == NULL || ECDSA_SIG_set0(es, r, s) != 1)
	{
		ECDSA_SIG_free(es);
		BN_free(r);
		BN_free(s);
		ERR_clear_error();
		return false;
	}
	/* es owns r and s now */
	derlen = i2d_ECDSA_SIG(es, &der);
	ECDSA_SIG_free(es);
	if (derlen <= 0)
	{
		ERR_clear_error();
		return false;
	}
	ok = digest_verify(key->pkey, input, inlen, der, (size_t) derlen);
	OPENSSL_free(der);
	return ok;
}

/* A NumericDate claim: must be a finite JSON number. */
static bool
numeric_claim(const TgJsonValue *v, double *out)
{
	return v->type == TG_JSON_NUMBER && tg_json_number(v, out);
}

/* A string claim copied into buf (cap bytes + NUL); no embedded NUL. */
static bool
string_claim(const TgJsonValue *v, char *buf, size_t cap)
{
	bool		has_nul;

	if (v->type != TG_JSON_STRING)
		return false;
	return tg_json_string_decode(v, buf, cap + 1, &has_nul) >= 0 && !has_nul;
}

/*
 * An identity claim (sub / userId): a string of at most TG_JWT_MAX_ID_BYTES
 * bytes.  A longer one is refused with its own message (never truncated:
 * two identities sharing a prefix would become one user).
 */
static bool
id_claim(const TgJsonValue *v, const char *name, char *buf, char *err, size_t errlen)
{
	if (string_claim(v, buf, TG_JWT_MAX_ID_BYTES))
		return true;
	/* a decoded string is never longer than its JSON text */
	if (v->type == TG_JSON_STRING && v->len - 2 > TG_JWT_MAX_ID_BYTES &&
		tg_json_string_decode(v, buf, TG_JWT_MAX_ID_BYTES + 1, NULL) < 0)
		tg_jwt_set_err(err, errlen, "%s longer than %d bytes", name, TG_JWT_MAX_ID_BYTES);
	else
		tg_jwt_set_err(err, errlen, "invalid %s value", name);
	return false;
}

enum
{
	C_EXP, C_NBF, C_IAT, C_SUB, C_USERID, C_ROLES, C_NCLAIMS
};
static const char *const claim_names[C_NCLAIMS] = {
	"exp", "nbf", "iat", "sub", "userId", "roles"
};

static TgJwtResult
check_claims(const TgJsonValue *pl, int64_t now_s, int leeway_s, int flags,
			 TgJwtClaims *out, char *err, size_t errlen)
{
	TgJsonIter	it;
	TgJsonValue k,
				v,
				vals[C_NCLAIMS];
	int			counts[C_NCLAIMS] = {0};
	char		kb[8];
	double		now = (double) now_s;
	double		leeway = leeway_s > 0 ? (double) leeway_s : 0.0;

	memset(out, 0, sizeof(*out));
	tg_json_iter_init(&it, pl);
	while (tg_json_object_next(&it, &k, &v))
	{
		if (!key_text(&k, kb, sizeof(kb)))
			continue;
		for (int i = 0; i < C_NCLAIMS; i++)
		{
			if (strcmp(kb, claim_names[i]) == 0)
			{
				/* JSON.parse keeps the last duplicate, other parsers the first */
				if (counts[i]++ > 0)
				{
					tg_jwt_set_err(err, errlen, "invalid token");
					return TG_JWT_BAD_CLAIMS;
				}
				vals[i] = v;
			}
		}
	}

	/* Same order as jsonwebtoken 9: nbf, then exp. */
	if (counts[C_NBF])
	{
		if (!numeric_claim(&vals[C_NBF], &out->nbf))
		{
			tg_jwt_set_err(err, errlen, "invalid nbf value");
			return TG_JWT_BAD_CLAIMS;
		}
		out->has_nbf = true;
		if (out->nbf > now + leeway)
		{
			tg_jwt_set_err(err, errlen, "jwt not active");
			return TG_JWT_NOT_ACTIVE;
		}
	}
	if (counts[C_EXP])
	{
		if (!numeric_claim(&vals[C_EXP], &out->exp))
		{
			tg_jwt_set_err(err, errlen, "invalid exp value");
			return TG_JWT_BAD_CLAIMS;
		}
		out->has_exp = true;
		/* RFC 7519 §4.1.4 and jsonwebtoken: expired once now >= exp + leeway */
		if (now >= out->exp + leeway)
		{
			tg_jwt_set_err(err, errlen, "jwt expired");
			return TG_JWT_EXPIRED;
		}
	}
	else if (flags & TG_JWT_REQUIRE_EXP)
	{
		tg_jwt_set_err(err, errlen, "jwt expiry required");
		return TG_JWT_BAD_CLAIMS;
	}
	if (counts[C_IAT])
	{
		if (!numeric_claim(&vals[C_IAT], &out->iat))
		{
			tg_jwt_set_err(err, errlen, "invalid iat value");
			return TG_JWT_BAD_CLAIMS;
		}
		out->has_iat = true;
	}
	if (counts[C_SUB])
	{
		if (!id_claim(&vals[C_SUB], "sub", out->sub, err, errlen))
			return TG_JWT_BAD_CLAIMS;
		out->has_sub = true;
	}
	if (counts[C_USERID])
	{
		if (!id_claim(&vals[C_USERID], "userId", out->user_id, err, errlen))
			return TG_JWT_BAD_CLAIMS;
		out->has_user_id = true;
	}
	else if (out->has_sub)
	{
		memcpy(out->user_id, out->sub, sizeof(out->user_id));
		out->has_user_id = true;
	}
	if (counts[C_ROLES])
	{
		TgJsonIter	ri;
		TgJsonValue e;

		if (!tg_json_iter_init(&ri, &vals[C_ROLES]) ||
			vals[C_ROLES].type != TG_JSON_ARRAY)
		{
			tg_jwt_set_err(err, errlen, "invalid roles value");
			return TG_JWT_BAD_CLAIMS;
		}
		while (tg_json_array_next(&ri, &e))
		{
			if (out->nroles >= TG_JWT_MAX_ROLES ||
				!string_claim(&e, out->roles[out->nroles], TG_JWT_MAX_ROLE_BYTES))
			{
				tg_jwt_set_err(err, errlen, "invalid roles value");
				return TG_JWT_BAD_CLAIMS;
			}
			out->nroles++;
		}
	}
	else
	{
		strcpy(out->roles[0], "USER");
		out->nroles = 1;
		out->roles_defaulted = true;
	}
	return TG_JWT_OK;
}

TgJwtResult
tg_jwt_verify(const TgJwtKey *key, const char *token, size_t len,
			  int64_t now_s, int leeway_s, size_t max_token_bytes, int flags,
			  TgJwtClaims *out, char *err, size_t errlen)
{
	unsigned char buf[MAX_DECODED_BYTES];
	unsigned char sig[MAX_SIG_BYTES];
	TgJwtClaims scratch;
	size_t		cap;
	const char *dot1 = NULL,
			   *dot2 = NULL;
	size_t		hlen,
				plen,
				slen,
				n,
				siglen;
	TgJsonValue root;
	TgJwtResult r;
	bool		ok;

	if (err && errlen)
		err[0] = '\0';
	if (key == NULL ||
		(key->alg == TG_JWT_HS256 ? key->secret == NULL : key->pkey == NULL))
	{
		tg_jwt_set_err(err, errlen, "secret or public key must be provided");
		return TG_JWT_BAD_ALGORITHM;
	}
	if (token == NULL || len == 0)
	{
		tg_jwt_set_err(err, errlen, "jwt must be provided");
		return TG_JWT_MALFORMED;
	}
	cap = max_token_bytes == 0 ? TG_JWT_DEFAULT_MAX_TOKEN_BYTES : max_token_bytes;
	if (cap > TG_JWT_HARD_MAX_TOKEN_BYTES)
		cap = TG_JWT_HARD_MAX_TOKEN_BYTES;
	if (len > cap)
	{
		tg_jwt_set_err(err, errlen, "jwt too large");
		return TG_JWT_TOO_LARGE;
	}

	/* Exactly three segments. */
	for (size_t i = 0; i < len; i++)
	{
		if (token[i] != '.')
			continue;
		if (dot1 == NULL)
			dot1 = token + i;
		else if (dot2 == NULL)
			dot2 = token + i;
		else
		{
			dot2 = NULL;		/* four or more */
			break;
		}
	}
	if (dot1 == NULL || dot2 == NULL)
	{
		tg_jwt_set_err(err, errlen, "jwt malformed");
		return TG_JWT_MALFORMED;
	}
	hlen = (size_t) (dot1 - token);
	plen = (size_t) (dot2 - dot1 - 1);
	slen = len - (size_t) (dot2 - token) - 1;

	/* Header: strict base64url, a JSON object, alg pinned. */
	if (hlen == 0 || !b64url_decode(token, hlen, buf, sizeof(buf), &n))
	{
		tg_jwt_set_err(err, errlen, "jwt malformed");
		return TG_JWT_MALFORMED;
	}
	if (!tg_json_parse((const char *) buf, n, TG_JSON_TOKEN_MAX_DEPTH, &root) ||
		root.type != TG_JSON_OBJECT)
	{
		tg_jwt_set_err(err, errlen, "invalid token");
		return TG_JWT_MALFORMED;
	}
	r = check_header(&root, key->alg, err, errlen);
	if (r != TG_JWT_OK)
		return r;

	/* The payload segment must at least be well-formed base64url text. */
	if (!b64url_decode(dot1 + 1, plen, buf, sizeof(buf), &n))
	{
		tg_jwt_set_err(err, errlen, "jwt malformed");
		return TG_JWT_MALFORMED;
	}

	/* Signature over the ASCII "header.payload". */
	if (slen == 0)
	{
		tg_jwt_set_err(err, errlen, "jwt signature is required");
		return TG_JWT_BAD_SIGNATURE;
	}
	if (slen > (sizeof(sig) / 3 * 4))
	{
		/* longer than any supported key's signature */
		tg_jwt_set_err(err, errlen, "invalid signature");
		return TG_JWT_BAD_SIGNATURE;
	}
	if (!b64url_decode(dot2 + 1, slen, sig, sizeof(sig), &siglen))
	{
		tg_jwt_set_err(err, errlen, "jwt malformed");
		return TG_JWT_MALFORMED;
	}
	switch (key->alg)
	{
		case TG_JWT_HS256:
			ok = verify_hs256(key, token, (size_t) (dot2 - token), sig, siglen);
			break;
		case TG_JWT_RS256:
			ok = verify_rs256(key, token, (size_t) (dot2 - token), sig, siglen);
			break;
		case TG_JWT_ES256:
			ok = verify_es256(key, token, (size_t) (dot2 - token), sig, siglen);
			break;
		default:
			ok = false;
			break;
	}
	if (!ok)
	{
		tg_jwt_set_err(err, errlen, "invalid signature");
		return TG_JWT_BAD_SIGNATURE;
	}

	/* Payload (already decoded into buf above): a JSON object. */
	if (!tg_json_parse((const char *) buf, n, TG_JSON_TOKEN_MAX_DEPTH, &root) ||
		root.type != TG_JSON_OBJECT)
	{
		tg_jwt_set_err(err, errlen, "invalid token");
		return TG_JWT_MALFORMED;
	}
	return check_claims(&root, now_s, leeway_s, flags, out ? out : &scratch,
						err, errlen);
}

