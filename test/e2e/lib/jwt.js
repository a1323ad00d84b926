'use strict';
// JWT minting with node:crypto only (HS256 / RS256 / ES256), plus helpers to
// build deliberately broken tokens for the auth-failure tests.
const crypto = require('node:crypto');

function b64url(buf) {
  return Buffer.from(buf).toString('base64').replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_');
}

function b64json(obj) {
  return b64url(Buffer.from(JSON.stringify(obj), 'utf8'));
}

function defaultClaims(extra = {}) {
  const now = Math.floor(Date.now() / 1000);
  return { sub: 'e2e-user', userId: 'e2e-user', roles: ['USER'], iat: now, exp: now + 3600, ...extra };
}

// sign({alg, key, claims, header}) → compact JWS.
//   HS256: key = secret string (UTF-8 bytes are the HMAC key, as TopGun does)
//   RS256: key = PEM private key or KeyObject
//   ES256: key = PEM private key or KeyObject (P-256), JOSE r||s signature
function sign({ alg = 'HS256', key, claims = defaultClaims(), header = {} } = {}) {
  const h = { alg, typ: 'JWT', ...header };
  const input = `${b64json(h)}.${b64json(claims)}`;
  let sig;
  switch (alg) {
    case 'HS256':
      sig = crypto.createHmac('sha256', Buffer.from(key, 'utf8')).update(input).digest();
      break;
    case 'HS512':
      sig = crypto.createHmac('sha512', Buffer.from(key, 'utf8')).update(input).digest();
      break;
    case 'RS256':
      sig = crypto.sign('sha256', Buffer.from(input), key);
      break;
    case 'ES256':
      sig = crypto.sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
      break;
    case 'none':
      return `${input}.`;
    default:
      throw new Error(`unsupported alg ${alg}`);
  }
  return `${input}.${b64url(sig)}`;
}

function hs256(secret, claims) {
  return sign({ alg: 'HS256', key: secret, claims: claims || defaultClaims() });
}

function rsaKeyPair() {
  return crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
}

function ecKeyPair() {
  return crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
}

module.exports = { sign, hs256, b64url, b64json, defaultClaims, rsaKeyPair, ecKeyPair };
