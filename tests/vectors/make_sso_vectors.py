#!/usr/bin/env python3
"""Mints BookingBug SSO interop vectors with Python's `cryptography`, following
the vendor's Java generator step by step (an implementation independent of
scopegate's): key = SHA1(secure_key + company_id)[:16]; the first 16 plaintext
bytes XORed with the IV "OpenSSL for Ruby"; AES-128-CBC with that IV and PKCS#7;
base64; URL-encoded once. Output: sso_legacy.json (committed; the Rust tests
read it and need no Python).

    pip install cryptography==48.0.0 && python3 make_sso_vectors.py > sso_legacy.json

The tests decode at `now`; expiries are fixed around it.
"""
import base64
import hashlib
import json
import urllib.parse

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

COMPANY_ID = "37000"
SECURE_KEY = "abcdef0123456789SECUREKEY"
IV = b"OpenSSL for Ruby"
NOW = 1_800_000_000  # 2027-01-15T08:00:00Z


def key(secure_key=SECURE_KEY, company_id=COMPANY_ID):
    return hashlib.sha1((secure_key + company_id).encode()).digest()[:16]


def encrypt(plaintext: bytes, k=None) -> bytes:
    data = bytearray(plaintext)
    for i in range(min(16, len(data))):
        data[i] ^= IV[i]
    padder = padding.PKCS7(128).padder()
    padded = padder.update(bytes(data)) + padder.finalize()
    enc = Cipher(algorithms.AES(k or key()), modes.CBC(IV)).encryptor()
    return enc.update(padded) + enc.finalize()


def token(payload, k=None, raw=None, chunk=False) -> str:
    body = raw if raw is not None else json.dumps(payload, separators=(",", ":")).encode()
    b64 = base64.b64encode(encrypt(body, k)).decode()
    if chunk:  # old commons-codec chunked at 76 characters with CRLF
        b64 = "\r\n".join(b64[i:i + 76] for i in range(0, len(b64), 76))
    return urllib.parse.quote(b64, safe="")


def person(expires, **extra):
    p = {"first_name": "John", "last_name": "Smith", "email": "smith@example.com",
         "expires": expires}
    p.update(extra)
    return p


ONE_HOUR_AHEAD_PARIS = "2027-01-15T10:00:00+01:00"  # NOW + 1 h, written in +01:00
vectors = {
    "generator": "Python cryptography (vendor's Java steps)",
    "company_id": COMPANY_ID,
    "secure_key": SECURE_KEY,
    "now": NOW,
    "accept": [
        {"name": "Ruby shape: expires with an offset, one hour ahead",
         "token": token(person(ONE_HOUR_AHEAD_PARIS, mobile="0123456789",
                                reference="external_reference")),
         "email": "smith@example.com", "reference": "external_reference"},
        {"name": "C# shape: expires in UTC with Z",
         "token": token(person("2027-01-15T08:30:00Z")), "email": "smith@example.com"},
        {"name": "Java shape: expires without a zone (UTC)",
         "token": token(person("2027-01-15T08:30:00")), "email": "smith@example.com"},
        {"name": "long payload, base64 chunked with CRLF",
         "token": token(person("2027-01-15T08:30:00Z", reference="r" * 120), chunk=True),
         "email": "smith@example.com"},
        {"name": "unicode names",
         "token": token(person("2027-01-15T08:30:00Z", first_name="Jöns", last_name="Ørsted")),
         "email": "smith@example.com"},
    ],
    "reject": [
        {"name": "expired an hour ago",
         "token": token(person("2027-01-15T07:00:00Z"))},
        {"name": "expired in an offset that looks like the future in UTC",
         "token": token(person("2027-01-15T08:30:00+02:00"))},
        {"name": "another company's key",
         "token": token(person("2027-01-15T08:30:00Z"), k=key(company_id="99999"))},
        {"name": "another secure key",
         "token": token(person("2027-01-15T08:30:00Z"), k=key(secure_key="nope"))},
        {"name": "not JSON", "token": token(None, raw=b"first_name=John&email=x")},
        {"name": "missing email",
         "token": token({"first_name": "J", "last_name": "S", "expires": "2027-01-15T08:30:00Z"})},
        {"name": "email not a string",
         "token": token(person("2027-01-15T08:30:00Z", email=["a@b.c"]))},
        {"name": "bad email syntax", "token": token(person("2027-01-15T08:30:00Z", email="smith"))},
        {"name": "control character in a name",
         "token": token(person("2027-01-15T08:30:00Z", first_name="Jo\nhn"))},
        {"name": "expires unreadable", "token": token(person("tomorrow"))},
        {"name": "not base64", "token": "%%%not-base64%%%"},
        {"name": "truncated ciphertext", "token": token(person("2027-01-15T08:30:00Z"))[:-8]},
    ],
}
print(json.dumps(vectors, indent=1, ensure_ascii=False))
