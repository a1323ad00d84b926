/*
 * jwt_keys.c — JWT keys: HMAC secrets, PEM public keys (inline or from a
 * file) checked against the pinned algorithm, configuration, and the
 * production secret-strength check.  See jwt.h.
 */
#include "auth/jwt_internal.h"

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

/* ------------------------------------------------------------------------
 * Keys
 */

/* Copy s with every literal backslash-n pair turned into a newline (malloc'd). */
static char *
unescape_newlines(const char *s, size_t *outlen)
{
	size_t		n = strlen(s);
	char	   *out = malloc(n + 1);
	size_t		j = 0;

	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
	{
		if (s[i] == '\\' && i + 1 < n && s[i + 1] == 'n')
		{
			out[j++] = '\n';
			i++;
		}
		else
			out[j++] = s[i];
	}
	out[j] = '\0';
	if (outlen)
		*outlen = j;
	return out;
}

bool
tg_jwt_key_init_hmac(TgJwtKey *key, const void *secret, size_t len,
					 char *err, size_t errlen)
{
	memset(key, 0, sizeof(*key));
	if (secret == NULL || len == 0)
	{
		tg_jwt_set_err(err, errlen, "HS256 secret is empty");
		return false;
	}
	/* HMAC() takes an int key length */
	if (len > 1024 * 1024)
	{
		tg_jwt_set_err(err, errlen, "HS256 secret is too long");
		return false;
	}
	key->secret = malloc(len);
	if (key->secret == NULL)
	{
		tg_jwt_set_err(err, errlen, "out of memory");
		return false;
	}
	memcpy(key->secret, secret, len);
	key->secret_len = len;
	key->alg = TG_JWT_HS256;
	return true;
}

/* Parse a SubjectPublicKeyInfo PEM held in memory. */
static EVP_PKEY *
pem_to_pubkey(const char *pem, size_t len, char *err, size_t errlen)
{
	BIO		   *bio;
	EVP_PKEY   *pkey;

	if (len > MAX_PEM_FILE_BYTES)
	{
		tg_jwt_set_err(err, errlen, "PEM public key is too large");
		return NULL;
	}
	bio = BIO_new_mem_buf(pem, (int) len);
	if (bio == NULL)
	{
		tg_jwt_set_err(err, errlen, "out of memory");
		return NULL;
	}
	pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (pkey == NULL)
	{
		ERR_clear_error();
		tg_jwt_set_err(err, errlen,
				"could not parse PEM public key (expected \"-----BEGIN PUBLIC KEY-----\")");
	}
	return pkey;
}

/* Check that pkey suits alg: RSA >= 2048 bits for RS256, P-256 for ES256. */
static bool
pubkey_matches(EVP_PKEY *pkey, TgJwtAlg alg, char *err, size_t errlen)
{
	int			id = EVP_PKEY_get_base_id(pkey);

	switch (alg)
	{
		case TG_JWT_RS256:
			{
				int			bits;

				if (id != EVP_PKEY_RSA)
				{
					tg_jwt_set_err(err, errlen, "RS256 requires an RSA public key");
					return false;
				}
				bits = EVP_PKEY_get_bits(pkey);
				if (bits < TG_JWT_MIN_RSA_BITS || bits > MAX_RSA_BITS)
				{
					tg_jwt_set_err(err, errlen,
							"RSA key has %d bits; RS256 requires %d to %d",
							bits, TG_JWT_MIN_RSA_BITS, MAX_RSA_BITS);
					return false;
				}
				return true;
			}
		case TG_JWT_ES256:
			{
				char		group[64];
				size_t		glen = 0;

				if (id != EVP_PKEY_EC)
				{
					tg_jwt_set_err(err, errlen, "ES256 requires an EC public key");
					return false;
				}
				if (EVP_PKEY_get_group_name(pkey, group, sizeof(group), &glen) != 1 ||
					(strcmp(group, "prime256v1") != 0 && strcmp(group, "P-256") != 0))
				{
					ERR_clear_error();
					tg_jwt_set_err(err, errlen, "ES256 requires an EC key on curve P-256");
					return false;
				}
				return true;
			}
		case TG_JWT_HS256:
			break;
	}
	tg_jwt_set_err(err, errlen, "HS256 does not use a public key");
	return false;
}

/* Read a whole (small) file into a malloc'd NUL-terminated buffer. */
static char *
read_small_file(const char *path, size_t *outlen, char *err, size_t errlen)
{
	FILE	   *f = fopen(path, "rb");
	char	   *buf;
	size_t		n;

	if (f == NULL)
	{
		tg_jwt_set_err(err, errlen, "could not open public key file \"%s\"", path);
		return NULL;
	}
	buf = malloc(MAX_PEM_FILE_BYTES + 1);
	if (buf == NULL)
	{
		fclose(f);
		tg_jwt_set_err(err, errlen, "out of memory");
		return NULL;
	}
	n = fread(buf, 1, MAX_PEM_FILE_BYTES + 1, f);
	if (ferror(f) || n > MAX_PEM_FILE_BYTES)
	{
		fclose(f);
		free(buf);
		tg_jwt_set_err(err, errlen, "could not read public key file \"%s\" (or larger than %d bytes)",
				path, MAX_PEM_FILE_BYTES);
		return NULL;
	}
	fclose(f);
	buf[n] = '\0';
	*outlen = n;
	return buf;
}

bool
tg_jwt_key_load_pem(TgJwtKey *key, TgJwtAlg alg, const char *pem,
					char *err, size_t errlen)
{
	char	   *text;
	size_t		len = 0;
	EVP_PKEY   *pkey;

	memset(key, 0, sizeof(*key));
	if (alg != TG_JWT_RS256 && alg != TG_JWT_ES256)
	{
		tg_jwt_set_err(err, errlen, "%s does not use a public key", tg_jwt_alg_name(alg));
		return false;
	}
	if (pem == NULL || pem[0] == '\0')
	{
		tg_jwt_set_err(err, errlen, "no public key given");
		return false;
	}
	if (strstr(pem, "-----BEGIN") != NULL)
		text = unescape_newlines(pem, &len);
	else
		text = read_small_file(pem, &len, err, errlen);
	if (text == NULL)
	{
		if (strstr(pem, "-----BEGIN") != NULL)
			tg_jwt_set_err(err, errlen, "out of memory");
		return false;
	}
	pkey = pem_to_pubkey(text, len, err, errlen);
	free(text);
	if (pkey == NULL)
		return false;
	if (!pubkey_matches(pkey, alg, err, errlen))
	{
		EVP_PKEY_free(pkey);
		return false;
	}
	key->alg = alg;
	key->pkey = pkey;
	return true;
}

bool
tg_jwt_key_init_from_config(TgJwtKey *key, const char *secret,
							char *err, size_t errlen)
{
	char	   *text;
	size_t		len = 0;
	bool		ok;

	memset(key, 0, sizeof(*key));
	if (secret == NULL || secret[0] == '\0')
	{
		tg_jwt_set_err(err, errlen, "no JWT secret configured");
		return false;
	}
	text = unescape_newlines(secret, &len);
	if (text == NULL)
	{
		tg_jwt_set_err(err, errlen, "out of memory");
		return false;
	}
	if (strstr(text, "-----BEGIN") != NULL)
	{
		EVP_PKEY   *pkey = pem_to_pubkey(text, len, err, errlen);
		TgJwtAlg	alg;

		ok = false;
		if (pkey != NULL)
		{
			alg = EVP_PKEY_get_base_id(pkey) == EVP_PKEY_EC ? TG_JWT_ES256 : TG_JWT_RS256;
			if (pubkey_matches(pkey, alg, err, errlen))
			{
				key->alg = alg;
				key->pkey = pkey;
				ok = true;
			}
			else
				EVP_PKEY_free(pkey);
		}
	}
	else
		ok = tg_jwt_key_init_hmac(key, text, len, err, errlen);
	OPENSSL_cleanse(text, len);
	free(text);
	return ok;
}

void
tg_jwt_key_free(TgJwtKey *key)
{
	if (key == NULL)
		return;
	if (key->secret)
	{
		OPENSSL_cleanse(key->secret, key->secret_len);
		free(key->secret);
	}
	if (key->pkey)
		EVP_PKEY_free(key->pkey);
	memset(key, 0, sizeof(*key));
}

TgJwtSecretCheck
tg_jwt_check_secret(TgJwtAlg alg, const char *secret, bool production,
					char *why, size_t whylen)
{
	size_t		len = 0;

	if (why && whylen)
		why[0] = '\0';
	if (secret == NULL || secret[0] == '\0')
	{
		if (production)
		{
			tg_jwt_set_err(why, whylen, "a JWT secret or public key is required in production");
			return TG_JWT_SECRET_FATAL;
		}
		tg_jwt_set_err(why, whylen, "no JWT secret configured");
		return TG_JWT_SECRET_MISSING;
	}
	if (strcmp(secret, TG_JWT_DEV_SECRET) == 0)
	{
		tg_jwt_set_err(why, whylen, "the JWT secret is the public development default \"%s\"%s",
				TG_JWT_DEV_SECRET,
				production ? ", refused in production" : "; do not use it in production");
		return production ? TG_JWT_SECRET_FATAL : TG_JWT_SECRET_WARN;
	}
	if (alg == TG_JWT_HS256)
	{
		/* length as used: literal "\n" pairs count as one byte */
		for (const char *p = secret; *p; p++)
		{
			if (p[0] == '\\' && p[1] == 'n')
				p++;
			len++;
		}
		if (len < TG_JWT_MIN_HMAC_SECRET_BYTES)
		{
			tg_jwt_set_err(why, whylen, "the HS256 secret has %zu bytes; at least %d are required%s",
					len, TG_JWT_MIN_HMAC_SECRET_BYTES,
					production ? " in production" : " for production");
			return production ? TG_JWT_SECRET_FATAL : TG_JWT_SECRET_WARN;
		}
	}
	return TG_JWT_SECRET_OK;
}

