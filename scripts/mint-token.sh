#!/usr/bin/env bash
#
# scripts/mint-token.sh — print a development HS256 JWT for the local cluster.
#
#   scripts/mint-token.sh [SUB] [TTL_SECONDS] [SECRET_FILE]
#
# SUB defaults to "dev-user", TTL to 86400 s, SECRET_FILE to .topgun/jwt_secret.
# The token carries {sub, userId, roles:["USER"], iat, exp}.  Uses only
# openssl, so it works without node.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
sub="${1:-dev-user}"
ttl="${2:-86400}"
secret_file="${3:-$repo/.topgun/jwt_secret}"
[ -r "$secret_file" ] || { echo "cannot read $secret_file (run scripts/setup.sh first)" >&2; exit 1; }
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
json_escape() { printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g'; }
now="$(date +%s)"
header='{"alg":"HS256","typ":"JWT"}'
s="$(json_escape "$sub")"
payload="{\"sub\":\"$s\",\"userId\":\"$s\",\"roles\":[\"USER\"],\"iat\":$now,\"exp\":$((now + ttl))}"
signing_input="$(printf '%s' "$header" | b64url).$(printf '%s' "$payload" | b64url)"
sig="$(printf '%s' "$signing_input" | openssl dgst -sha256 -mac HMAC -macopt "key:$(cat "$secret_file")" -binary | b64url)"
printf '%s.%s\n' "$signing_input" "$sig"
