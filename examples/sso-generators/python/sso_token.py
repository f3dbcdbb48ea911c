#!/usr/bin/env python3
"""Mint a scopegate SSO token for the customer logged in to your site.

Dependency: the `cryptography` package (pip install cryptography) for AES;
everything else is the Python 3 standard library.

v2 (use this one; authenticated):
  key32 = HMAC-SHA256(key=secure_key, msg="scopegate-sso-v2:" + company_id)
  nonce = 12 fresh random bytes per token (never reuse one under a key)
  token = "v2." + base64url_no_padding(nonce[12] || ciphertext || tag[16])
          where ciphertext || tag = AES-256-GCM(key32, nonce, json, no AAD)
Legacy (migration only; no MAC, ciphertext bits can be flipped):
  key16 = SHA1(secure_key + company_id)[:16]
  token = urlencode(base64(AES-128-CBC(key16, iv=16 zero bytes, PKCS#7(json))))
json = {"first_name", "last_name", "email", "expires", ["mobile"], ["reference"]}

  SSO_SECURE_KEY=... python3 sso_token.py COMPANY_ID [--legacy] \
      --email E --first-name F --last-name L [--mobile M] [--reference R] [--ttl S]
"""
import argparse, base64, hashlib, hmac, json, os, secrets, time, urllib.parse
from datetime import datetime, timezone

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def _payload(customer_hash, ttl_seconds, now):
    """The customer's fields plus expires = now + ttl, UTC, e.g. 2027-01-15T09:00:00Z."""
    expires = int(time.time() if now is None else now) + int(ttl_seconds)
    p = dict(customer_hash, expires=datetime.fromtimestamp(expires, timezone.utc)
             .strftime("%Y-%m-%dT%H:%M:%SZ"))
    return json.dumps(p, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def mint_v2(company_id, secure_key, customer_hash, ttl_seconds=3600, now=None):
    key32 = hmac.new(secure_key.encode(), ("scopegate-sso-v2:" + company_id).encode(),
                     hashlib.sha256).digest()
    nonce = secrets.token_bytes(12)  # CSPRNG, fresh for every token
    sealed = AESGCM(key32).encrypt(nonce, _payload(customer_hash, ttl_seconds, now), None)
    return "v2." + base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")


def mint_legacy(company_id, secure_key, customer_hash, ttl_seconds=3600, now=None):
    key16 = hashlib.sha1((secure_key + company_id).encode()).digest()[:16]
    padder = padding.PKCS7(128).padder()
    padded = padder.update(_payload(customer_hash, ttl_seconds, now)) + padder.finalize()
    enc = Cipher(algorithms.AES(key16), modes.CBC(bytes(16))).encryptor()
    b64 = base64.b64encode(enc.update(padded) + enc.finalize()).decode()
    return urllib.parse.quote(b64, safe="")  # + / = percent-encoded, once


def main():
    ap = argparse.ArgumentParser(description="Print a scopegate SSO token.")
    ap.add_argument("company_id")
    ap.add_argument("--legacy", action="store_true", help="old format, migration only")
    for opt in ("email", "first-name", "last-name", "mobile", "reference", "ttl"):
        ap.add_argument("--" + opt, default=os.environ.get("SSO_" + opt.upper().replace("-", "_")))
    a = ap.parse_args()
    secure_key = os.environ.get("SSO_SECURE_KEY")  # never on the command line
    if not secure_key:
        ap.error("set SSO_SECURE_KEY in the environment")
    if not (a.email and a.first_name and a.last_name):
        ap.error("--email, --first-name and --last-name (or SSO_EMAIL, ...) are required")
    customer = {"first_name": a.first_name, "last_name": a.last_name, "email": a.email}
    customer.update({k: v for k, v in (("mobile", a.mobile), ("reference", a.reference)) if v})
    mint = mint_legacy if a.legacy else mint_v2
    print(mint(a.company_id, secure_key, customer, int(a.ttl or 3600)))


if __name__ == "__main__":
    main()
