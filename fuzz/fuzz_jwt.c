/*
 * fuzz_jwt.c — libFuzzer target for src/auth/jwt.c and src/auth/json_claims.c.
 *
 * Each input is used three ways:
 *  1. verified as a token against a fixed HS256 key and a fixed ES256 key
 *     (reaches the length cap, segmenting, base64url, header JSON, alg
 *     pinning and the signature code);
 *  2. treated as "header.payload", signed here with the HS256 key and then
 *     verified, so that the signature always matches and the payload JSON
 *     and claim checks are exercised too;
 *  3. parsed as a JSON document and walked completely (iterators, string
 *     decoding, numbers).
 * Invariants are checked with abort(): results are in range, failures carry
 * an error text, successful claims are well-formed C strings within limits.
 */
#include "auth/jwt.h"
#include "auth/json_claims.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#define FUZZ_SECRET	"fuzz-secret-0123456789abcdefghijklmnop"
#define FUZZ_NOW	((int64_t) 1736000000)

/* Public half of the fixed P-256 key that signed the ES256 seeds. */
static const char fuzz_ec_pem[] =
"-----BEGIN PUBLIC KEY-----\n"
"MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEgqTzd6nRPaUC2YFsgTW5tlq6zfOn\n"
"S2/q17IIPjI0rsJ6p2M+VzYpYB9yKGMrutP/vVbpf1fBsp+Ac5UN1zVTRA==\n"
"-----END PUBLIC KEY-----\n";

static TgJwtKey hs_key;
static TgJwtKey es_key;

int			LLVMFuzzerInitialize(int *argc, char ***argv);
int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char		err[256];

	if (!tg_jwt_key_init_hmac(&hs_key, FUZZ_SECRET, strlen(FUZZ_SECRET), err, sizeof(err)) ||
		!tg_jwt_key_load_pem(&es_key, TG_JWT_ES256, fuzz_ec_pem, err, sizeof(err)))
	{
		fprintf(stderr, "fuzz_jwt: key setup failed: %s\n", err);
		abort();
	}
	return 0;
}

static void
check_cstr(const char *s, size_t cap)
{
	if (memchr(s, '\0', cap + 1) == NULL)
		abort();
}

static void
check_result(TgJwtResult r, const TgJwtClaims *c, const char *err)
{
	if (r < TG_JWT_OK || r > TG_JWT_BAD_CLAIMS)
		abort();
	if (r != TG_JWT_OK)
	{
		if (err[0] == '\0')
			abort();
		return;
	}
	if (err[0] != '\0')
		abort();
	if (c->nroles < 0 || c->nroles > TG_JWT_MAX_ROLES)
		abort();
	for (int i = 0; i < c->nroles; i++)
		check_cstr(c->roles[i], TG_JWT_MAX_ROLE_BYTES);
	check_cstr(c->sub, TG_JWT_MAX_ID_BYTES);
	check_cstr(c->user_id, TG_JWT_MAX_ID_BYTES);
	if (c->roles_defaulted && (c->nroles != 1 || strcmp(c->roles[0], "USER") != 0))
		abort();
	if (c->has_sub && !c->has_user_id)
		abort();
}

static void
walk(const TgJsonValue *v, int depth)
{
	TgJsonIter	it;
	TgJsonValue k,
				e;
	char		buf[64];
	double		d;

	if (depth > TG_JSON_TOKEN_MAX_DEPTH + 1)
		abort();
	switch (v->type)
	{
		case TG_JSON_OBJECT:
			if (!tg_json_iter_init(&it, v))
				abort();
			while (tg_json_object_next(&it, &k, &e))
			{
				if (k.type != TG_JSON_STRING)
					abort();
				walk(&k, depth + 1);
				walk(&e, depth + 1);
			}
			break;
		case TG_JSON_ARRAY:
			if (!tg_json_iter_init(&it, v))
				abort();
			while (tg_json_array_next(&it, &e))
				walk(&e, depth + 1);
			break;
		case TG_JSON_STRING:
			{
				long		n = tg_json_string_decode(v, buf, sizeof(buf), NULL);

				/* a validated string decodes unless it is too long */
				if (n < 0 && v->len < 8)
					abort();
				if (n >= 0 && (size_t) n >= sizeof(buf))
					abort();
				(void) tg_json_string_equals(v, "alg");
			}
			break;
		case TG_JSON_NUMBER:
			(void) tg_json_number(v, &d);
			break;
		default:
			break;
	}
}

static void
b64url(const unsigned char *in, size_t n, char *out)
{
	static const char al[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t		o = 0,
				i;

	for (i = 0; i + 3 <= n; i += 3)
	{
		unsigned	v = (in[i] << 16) | (in[i + 1] << 8) | in[i + 2];

		out[o++] = al[v >> 18];
		out[o++] = al[(v >> 12) & 63];
		out[o++] = al[(v >> 6) & 63];
		out[o++] = al[v & 63];
	}
	if (n - i == 1)
	{
		out[o++] = al[in[i] >> 2];
		out[o++] = al[(in[i] & 3) << 4];
	}
	else if (n - i == 2)
	{
		out[o++] = al[in[i] >> 2];
		out[o++] = al[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
		out[o++] = al[(in[i + 1] & 15) << 2];
	}
	out[o] = '\0';
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	TgJwtClaims c;
	char		err[128];
	TgJwtResult r;
	char	   *tok;
	size_t		cap = TG_JWT_HARD_MAX_TOKEN_BYTES;

	/* exact-size heap copy so that ASan sees any read past the end */
	tok = malloc(size ? size : 1);
	if (size)
		memcpy(tok, data, size);

	/* 1. raw token */
	r = tg_jwt_verify(&hs_key, tok, size, FUZZ_NOW, 0, cap, 0, &c, err, sizeof(err));
	check_result(r, &c, err);
	r = tg_jwt_verify(&es_key, tok, size, FUZZ_NOW, 30, cap, TG_JWT_REQUIRE_EXP, &c, err, sizeof(err));
	check_result(r, &c, err);

	/* 2. "header.payload" signed here */
	if (size <= cap - 44)
	{
		unsigned char mac[32];
		unsigned int maclen = 0;
		char	   *signed_tok = malloc(size + 45);

		HMAC(EVP_sha256(), FUZZ_SECRET, (int) strlen(FUZZ_SECRET), data, size, mac, &maclen);
		memcpy(signed_tok, data, size);
		signed_tok[size] = '.';
		b64url(mac, sizeof(mac), signed_tok + size + 1);
		r = tg_jwt_verify(&hs_key, signed_tok, size + 44, FUZZ_NOW, 0, cap, 0, &c, err, sizeof(err));
		check_result(r, &c, err);
		/* a signature that matched cannot be reported as bad */
		if (r == TG_JWT_BAD_SIGNATURE)
			abort();
		free(signed_tok);
	}

	/* 3. raw JSON */
	{
		TgJsonValue root;

		if (tg_json_parse(tok, size, TG_JSON_TOKEN_MAX_DEPTH, &root))
		{
			if (root.start < tok || root.start + root.len > tok + size)
				abort();
			walk(&root, 0);
		}
	}
	free(tok);
	return 0;
}
