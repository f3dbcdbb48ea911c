#!/usr/bin/env python3
"""Mints scopegate SSO v2 interop vectors with Python's `cryptography` (AESGCM),
plus tokens minted by the generator snippets in examples/sso-generators/
(Node and Ruby, shelled out to at generation time only; a missing tool skips
its case with a message on stderr). Output: sso_v2.json (committed; the Rust
tests read it and need no Python, Node or Ruby).

    pip install cryptography==48.0.0 && python3 make_sso_v2_vectors.py > sso_v2.json

v2: key32 = HMAC-SHA256(secure_key, "scopegate-sso-v2:" + company_id);
token = "v2." + base64url_no_padding(nonce[12] || AES-256-GCM(key32, nonce,
json, no AAD) || tag[16]). Nonces here are fixed (SHA-256 of the case name, or
the snippets' CSPRNG replaced for the one call) so the output is deterministic;
real generators draw a fresh random nonce per token.

Before printing, every vector is checked against a small independent decoder
below (accepts decode with the expected email, rejects do not decode), and the
Python, Node and Ruby snippets are run unpatched, as their CLIs (random nonce,
real clock), and their v2 and legacy tokens decrypted here.
"""
import base64
import hashlib
import hmac
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
import types
import urllib.parse
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

COMPANY_ID = "37000"
SECURE_KEY = "abcdef0123456789SECUREKEY"
NOW = 1_800_000_000  # 2027-01-15T08:00:00Z
LEEWAY = 30
GEN = Path(__file__).resolve().parents[2] / "examples" / "sso-generators"


def key32(secure_key=SECURE_KEY, company_id=COMPANY_ID):
    msg = ("scopegate-sso-v2:" + company_id).encode()
    return hmac.new(secure_key.encode(), msg, hashlib.sha256).digest()


def fixed_nonce(name):
    return hashlib.sha256(name.encode()).digest()[:12]


def b64url(raw):
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def seal(name, plaintext: bytes, k=None, nonce=None) -> bytes:
    """nonce || ciphertext || tag."""
    nonce = nonce or fixed_nonce(name)
    return nonce + AESGCM(k or key32()).encrypt(nonce, plaintext, None)


def pjson(payload) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def token(name, payload, k=None, raw=None, nonce=None) -> str:
    return "v2." + b64url(seal(name, raw if raw is not None else pjson(payload), k, nonce))


def person(expires, **extra):
    p = {"first_name": "John", "last_name": "Smith", "email": "smith@example.com",
         "expires": expires}
    p.update(extra)
    return p


# --- an independent decoder, for the checks only ---------------------------

def parse_expires(v):
    if re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?", v):
        v += "+00:00"  # zone-less: UTC
    t = datetime.fromisoformat(v.replace("Z", "+00:00"))
    assert t.tzinfo is not None
    return int(t.timestamp())


def decode_v2(text, now, secure_key=SECURE_KEY, company_id=COMPANY_ID):
    """The payload, or raises."""
    if not text.startswith("v2.") or not re.fullmatch(r"[A-Za-z0-9_-]+", text[3:]):
        raise ValueError("not a v2 token")
    raw = base64.urlsafe_b64decode(text[3:] + "=" * (-len(text[3:]) % 4))
    if len(raw) < 12 + 16:
        raise ValueError("short")
    p = json.loads(AESGCM(key32(secure_key, company_id)).decrypt(raw[:12], raw[12:], None))
    if not isinstance(p, dict) or not all(isinstance(p.get(f), str) and p[f] for f in
                                          ("first_name", "last_name", "email", "expires")):
        raise ValueError("fields")
    if now > parse_expires(p["expires"]) + LEEWAY:
        raise ValueError("expired")
    return p


def decode_legacy(text, now, secure_key=SECURE_KEY, company_id=COMPANY_ID):
    k = hashlib.sha1((secure_key + company_id).encode()).digest()[:16]
    dec = Cipher(algorithms.AES(k), modes.CBC(bytes(16))).decryptor()
    ct = base64.b64decode(urllib.parse.unquote(text), validate=True)
    unpadder = padding.PKCS7(128).unpadder()
    p = json.loads(unpadder.update(dec.update(ct) + dec.finalize()) + unpadder.finalize())
    assert now <= parse_expires(p["expires"]) + LEEWAY
    return p


def legacy_token(payload):
    k = hashlib.sha1((SECURE_KEY + COMPANY_ID).encode()).digest()[:16]
    padder = padding.PKCS7(128).padder()
    enc = Cipher(algorithms.AES(k), modes.CBC(bytes(16))).encryptor()
    ct = enc.update(padder.update(pjson(payload)) + padder.finalize()) + enc.finalize()
    return urllib.parse.quote(base64.b64encode(ct).decode(), safe="")


# --- the snippets -----------------------------------------------------------

SNIPPET_CUSTOMER = {"first_name": "Jöns", "last_name": "Ørsted", "email": "jons@example.se",
                    "reference": "crm-42"}


def python_snippet():
    spec = importlib.util.spec_from_file_location("sso_token", GEN / "python" / "sso_token.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def python_minted(mod, name):
    """mint_v2 with its CSPRNG replaced for this one call (determinism)."""
    real = mod.secrets
    mod.secrets = types.SimpleNamespace(token_bytes=lambda n: fixed_nonce(name)[:n])
    try:
        return mod.mint_v2(COMPANY_ID, SECURE_KEY, SNIPPET_CUSTOMER, ttl_seconds=3600, now=NOW)
    finally:
        mod.secrets = real


NODE_HARNESS = """
const crypto = require('node:crypto');
const [file, nonce, company, key, customer, now] = process.argv.slice(1);
const m = require(file);
crypto.randomBytes = (n) => Buffer.from(nonce, 'hex').subarray(0, n);
console.log(m.mint_v2(company, key, JSON.parse(customer), 3600, Number(now)));
"""
RUBY_HARNESS = """
file, nonce, company, key, customer, now = ARGV
require file
OpenSSL::Random.define_singleton_method(:random_bytes) { |n| [nonce].pack('H*')[0, n] }
puts SsoToken.mint_v2(company, key, JSON.parse(customer), ttl_seconds: 3600, now: Integer(now))
"""


def harness_minted(tool, name):
    """mint_v2 of the Node or Ruby snippet, its CSPRNG replaced (determinism)."""
    exe = shutil.which(tool)
    if exe is None:
        print(f"skipped: {tool} is not installed, no {tool}-minted vector", file=sys.stderr)
        return None
    file = str(GEN / ("node/sso_token.js" if tool == "node" else "ruby/sso_token.rb"))
    argv = [file, fixed_nonce(name).hex(), COMPANY_ID, SECURE_KEY,
            json.dumps(SNIPPET_CUSTOMER), str(NOW)]
    harness = NODE_HARNESS if tool == "node" else RUBY_HARNESS
    out = subprocess.run([exe, "-e", harness, *argv], check=True, capture_output=True, text=True)
    return out.stdout.strip()


def check_clis(pymod):
    """Each snippet's CLI as a customer would run it: random nonce, real clock."""
    env = dict(os.environ, SSO_SECURE_KEY=SECURE_KEY, SSO_FIRST_NAME="Jöns")
    args = [COMPANY_ID, "--email", "jons@example.se", "--last-name", "Ørsted",
            "--reference", "crm-42", "--ttl", "600"]
    cmds = {"python": [sys.executable, str(GEN / "python/sso_token.py")],
            "node": ["node", str(GEN / "node/sso_token.js")],
            "ruby": ["ruby", str(GEN / "ruby/sso_token.rb")]}
    for lang, cmd in cmds.items():
        if shutil.which(cmd[0]) is None:
            print(f"skipped: {cmd[0]} is not installed, {lang} CLI not checked", file=sys.stderr)
            continue
        run = lambda extra: subprocess.run(cmd + args + extra, env=env, check=True,
                                           capture_output=True, text=True).stdout.strip()
        a, b = run([]), run([])
        now = int(time.time())
        for t in (a, b):
            p = decode_v2(t, now)
            assert (p["email"], p["first_name"], p["reference"]) == \
                ("jons@example.se", "Jöns", "crm-42"), (lang, p)
            assert now + 590 <= parse_expires(p["expires"]) <= now + 600, (lang, p)
        assert a[3:19] != b[3:19], f"{lang}: two tokens with the same nonce"
        p = decode_legacy(run(["--legacy"]), now)
        assert p["email"] == "jons@example.se" and p["first_name"] == "Jöns", (lang, p)
        print(f"checked: {lang} CLI v2 and legacy tokens decrypt", file=sys.stderr)


# --- the vectors ------------------------------------------------------------

HOUR_AHEAD = "2027-01-15T09:00:00Z"
BASE = person(HOUR_AHEAD)


def flip(name, at, mask=0x01, payload=BASE):
    raw = bytearray(seal(name, pjson(payload)))
    raw[at] ^= mask
    return "v2." + b64url(bytes(raw))


def email_rewritten(name, new="admin"):
    """CTR keystream: XOR the ciphertext bytes that hold "smith" into "admin"."""
    plain = pjson(BASE)
    at = 12 + plain.index(b"smith@")
    raw = bytearray(seal(name, plain))
    for i, (o, n) in enumerate(zip(b"smith", new.encode())):
        raw[at + i] ^= o ^ n
    return "v2." + b64url(bytes(raw))


def with_padding(name):
    """A token whose length needs '=' padding, and that padding appended."""
    for r in ("x", "xx", "xxx"):
        raw = seal(name, pjson(person(HOUR_AHEAD, reference=r)))
        if len(raw) % 3:
            return "v2." + base64.urlsafe_b64encode(raw).decode()
    raise AssertionError


def standard_alphabet(name):
    """A token whose url-safe text has '-' or '_', written with '+' and '/'."""
    for i in range(1000):
        raw = seal(name, pjson(BASE), nonce=fixed_nonce(f"{name} {i}"))
        if set(b64url(raw)) & {"-", "_"}:
            return "v2." + base64.b64encode(raw).decode().rstrip("=")
    raise AssertionError


pymod = python_snippet()
accept = [
    {"name": "expires one hour ahead, UTC with Z",
     "token": token("z", BASE), "email": "smith@example.com"},
    {"name": "expires one hour ahead, written in +02:00",
     "token": token("offset", person("2027-01-15T11:00:00+02:00")), "email": "smith@example.com"},
    {"name": "expires one hour ahead, without a zone (UTC)",
     "token": token("naive", person("2027-01-15T09:00:00")), "email": "smith@example.com"},
    {"name": "with mobile and reference",
     "token": token("mobile", person(HOUR_AHEAD, mobile="+44 7700 900123",
                                     reference="external_reference")),
     "email": "smith@example.com", "reference": "external_reference"},
    {"name": "minted by the Python snippet (python/sso_token.py, cryptography)",
     "token": python_minted(pymod, "python snippet"),
     "email": "jons@example.se", "reference": "crm-42"},
]
for tool, label in (("node", "Node snippet (node/sso_token.js, node:crypto)"),
                    ("ruby", "Ruby snippet (ruby/sso_token.rb, openssl)")):
    t = harness_minted(tool, label)
    if t:
        accept.append({"name": f"minted by the {label}", "token": t,
                       "email": "jons@example.se", "reference": "crm-42"})

reject = [
    {"name": "expired one hour ago", "token": token("expired", person("2027-01-15T07:00:00Z"))},
    {"name": "tag: one bit flipped (last byte)", "token": flip("tag", -1)},
    {"name": "ciphertext: one bit flipped in the email",
     "token": flip("ct bit", 12 + pjson(BASE).index(b"smith@") + 4)},
    {"name": "ciphertext: email rewritten smith@ -> admin@ by XOR (the CBC-era edit)",
     "token": email_rewritten("ct edit")},
    {"name": "nonce: one bit flipped (first byte)", "token": flip("nonce", 0)},
    {"name": "truncated: tag missing",
     "token": "v2." + b64url(seal("truncated", pjson(BASE))[:-16])},
    {"name": "key derived with another company id",
     "token": token("company", BASE, k=key32(company_id="99999"))},
    {"name": "key derived from another secure key",
     "token": token("secure key", BASE, k=key32(secure_key="nope"))},
    {"name": "base64url with '=' padding added", "token": with_padding("padding")},
    {"name": "standard base64 alphabet (+/) instead of url-safe (-_)",
     "token": standard_alphabet("standard")},
    {"name": "missing the v2. prefix", "token": token("no prefix", BASE)[3:]},
    {"name": "v3. prefix", "token": "v3." + token("v3", BASE)[3:]},
    {"name": "empty after the prefix", "token": "v2."},
    {"name": "a legacy-format token (as sent, URL-encoded)", "token": legacy_token(BASE)},
    {"name": "valid GCM, JSON without email",
     "token": token("no email", {"first_name": "John", "last_name": "Smith",
                                 "expires": HOUR_AHEAD})},
    {"name": "valid GCM, plaintext not JSON",
     "token": token("not json", None, raw=b"first_name=John&email=smith@example.com")},
]

# --- checks -----------------------------------------------------------------

for case in accept:
    p = decode_v2(case["token"], NOW)
    assert p["email"] == case["email"], case["name"]
    assert p.get("reference") == case.get("reference"), case["name"]
    assert parse_expires(p["expires"]) == NOW + 3600, case["name"]
# Each reject fails for its own reason only (names → the decoder's error).
WHY = {"expired": "expired", "tag:": "InvalidTag", "ciphertext:": "InvalidTag",
       "nonce:": "InvalidTag", "truncated": "InvalidTag", "another": "InvalidTag",
       "padding": "not a v2", "standard": "not a v2", "prefix": "not a v2",
       "legacy": "not a v2", "without email": "fields", "not JSON": "JSONDecodeError"}
for case in reject:
    try:
        decode_v2(case["token"], NOW)
    except Exception as e:
        why = [w for k, w in WHY.items() if k in case["name"]]
        assert len(why) == 1 and why[0] in f"{type(e).__name__} {e}", (case["name"], e)
        continue
    raise AssertionError(f"{case['name']} decodes")
assert decode_legacy(legacy_token(BASE), NOW)["email"] == "smith@example.com"
assert len({t["token"][3:19] for t in accept}) == len(accept), "nonce reused"
check_clis(pymod)

print(json.dumps({
    "generator": "Python cryptography AESGCM; snippets from examples/sso-generators "
                 "(Python, Node node:crypto, Ruby openssl) with their CSPRNG pinned",
    "company_id": COMPANY_ID,
    "secure_key": SECURE_KEY,
    "now": NOW,
    "accept": accept,
    "reject": reject,
}, indent=1, ensure_ascii=False))
