#!/usr/bin/env python3
"""Finds a CBC bit-flipping forgery of a BookingBug legacy SSO token that
scopegate's strict legacy decoder still accepts. Output: sso_cbc_forgery.json
(committed; tests/sso_forgery.rs reads it and needs no Python).

    pip install cryptography==48.0.0
    python3 make_sso_forgery_vector.py > sso_cbc_forgery.json

The legacy format is AES-128-CBC under a zero IV with no MAC. XORing `delta`
into ciphertext block C[i] XORs `delta` into plaintext block P[i+1] exactly,
and turns P[i] into D(C[i] ^ delta) ^ C[i-1]: 16 bytes the attacker does not
control. The plaintext is laid out so that P[i+1] is `","email":"smith` and
P[i] lies wholly inside the last_name value; delta = P[i+1] ^ `","email":"admin`
turns smith@example.com into admin@example.com. The forgery is accepted only
when the garbled P[i] still reads as the inside of a JSON string that passes
scopegate's field checks; this script asks for every garbled byte to be
printable ASCII other than `"` and `\\` (stricter than scopegate needs, which
changes the odds by a small factor only): (93/256)^16, about 1 in 1.1e7.

An attacker holding one token has one garbled block per token, so ~1e7 tokens
or ~1e7 decryption-oracle queries. This script plays the omniscient minting
site instead: it varies the 16 last_name characters of P[i] (a base-62 counter
in a fixed order, so the result is deterministic) and keeps the first token
whose flipped twin passes. `naive_forged` is the same flip of the first
candidate's token: the usual outcome, refused.

The search runs in batches: every candidate P[i] of a batch goes through one
ECB encryption (C[i] = E(P[i] ^ C[i-1])), one big XOR with delta, one ECB
decryption, and one compiled regex with a per-column byte class (the class of
column j already accounts for the XOR with C[i-1][j]) over the whole buffer.
"""
import base64
import hashlib
import json
import re
import sys
import time
import urllib.parse

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

COMPANY_ID = "37000"
SECURE_KEY = "abcdef0123456789SECUREKEY"
NOW = 1_800_000_000  # 2027-01-15T08:00:00Z
EXPIRES = "2027-01-15T09:00:00Z"
FIRST_NAME = "Jo"  # makes last_name start on a block boundary
EMAIL = "smith@example.com"
FORGED_EMAIL = "admin@example.com"
TARGET = b'","email":"admin'

ALPHABET = (
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
)  # base-62 digits of the counter, most significant first
BASE = len(ALPHABET)
LOW = BASE**3  # candidates per value of the 4th-lowest digit
BATCH = LOW * 8  # 1,906,624 blocks (30.5 MB) per batch
# Bytes a forged P[i] may hold: printable ASCII, no quote, no backslash.
ALLOWED = bytes(b for b in range(0x20, 0x7F) if b not in b'"\\')


def key():
    return hashlib.sha1((SECURE_KEY + COMPANY_ID).encode()).digest()[:16]


def plaintext(last_name: str) -> bytes:
    return json.dumps(
        {
            "first_name": FIRST_NAME,
            "last_name": last_name,
            "email": EMAIL,
            "expires": EXPIRES,
        },
        separators=(",", ":"),
    ).encode()


def cbc_encrypt(plain: bytes) -> bytes:
    p = padding.PKCS7(128).padder()
    padded = p.update(plain) + p.finalize()
    e = Cipher(algorithms.AES(key()), modes.CBC(bytes(16))).encryptor()
    return e.update(padded) + e.finalize()


def cbc_decrypt(ct: bytes) -> bytes:
    d = Cipher(algorithms.AES(key()), modes.CBC(bytes(16))).decryptor()
    padded = d.update(ct) + d.finalize()
    u = padding.PKCS7(128).unpadder()
    return u.update(padded) + u.finalize()


def token(ct: bytes) -> str:
    return urllib.parse.quote(base64.b64encode(ct).decode(), safe="")


def untoken(tok: str) -> bytes:
    return base64.b64decode(urllib.parse.unquote(tok))


def flip(ct: bytes, block: int, delta: bytes) -> bytes:
    out = bytearray(ct)
    for j, d in enumerate(delta):
        out[16 * block + j] ^= d
    return bytes(out)


def name(n: int) -> str:
    digits = []
    for _ in range(16):
        n, r = divmod(n, BASE)
        digits.append(ALPHABET[r])
    return bytes(reversed(digits)).decode()


def is_control(ch: str) -> bool:
    """Rust's char::is_control: U+0000-001F and U+007F-009F."""
    o = ord(ch)
    return o <= 0x1F or 0x7F <= o <= 0x9F


def valid_email(e: str) -> bool:
    """scopegate's token::valid_email."""
    if len(e.encode()) > 254 or any(c.isspace() or is_control(c) for c in e):
        return False
    if "@" not in e:
        return False
    local, domain = e.split("@", 1)
    return (
        bool(local)
        and "@" not in domain
        and "." in domain
        and all(domain.split("."))
        and not any(c in e for c in '<>,;"\\')
    )


def check(ct: bytes):
    """scopegate's legacy decoder, field for field: the payload, or the reason
    it is refused."""
    try:
        plain = cbc_decrypt(ct)
    except ValueError:
        return None, "padding"
    try:
        text = plain.decode("utf-8")
    except UnicodeDecodeError:
        return None, "UTF-8"
    try:
        obj = json.loads(text)  # strict: raw control characters refused
    except ValueError:
        return None, "JSON"
    if not isinstance(obj, dict):
        return None, "JSON"
    for field, limit in (
        ("first_name", 256),
        ("last_name", 256),
        ("email", 254),
        ("expires", 64),
    ):
        v = obj.get(field)
        if not (
            isinstance(v, str)
            and v
            and len(v.encode()) <= limit
            and not any(map(is_control, v))
        ):
            return None, f"field {field}"
    if not valid_email(obj["email"]):
        return None, "email"
    return obj, None


def columns(start: int, count: int, chain: bytes):
    """The 16 byte columns of P[i] ^ C[i-1] for candidates start..start+count
    (start and count multiples of LOW)."""
    assert start % LOW == 0 and count % LOW == 0
    highs = range(start // LOW, (start + count) // LOW)
    cols = []
    for j in range(16):
        pos = 15 - j  # digit position, 0 = least significant
        table = bytes(b ^ chain[j] for b in range(256))
        if pos < 3:
            run = BASE**pos
            pattern = b"".join(bytes([ALPHABET[d]]) * run for d in range(BASE))
            col = pattern * (count // (run * BASE))
        else:
            col = b"".join(
                bytes([ALPHABET[(h // BASE ** (pos - 3)) % BASE]]) * LOW
                for h in highs
            )
        cols.append(col.translate(table))
    return cols


def main():
    t0 = time.monotonic()
    k = key()
    base_plain = plaintext(name(0))
    first_plain = base_plain  # the naive attacker's token
    ln_off = base_plain.index(b'"last_name":"') + len(b'"last_name":"')
    assert ln_off % 16 == 0, ln_off
    block = ln_off // 16  # P[block] is the whole last_name value
    assert base_plain[16 * (block + 1) : 16 * (block + 2)] == b'","email":"smith'
    delta = bytes(a ^ b for a, b in zip(b'","email":"smith', TARGET))
    # C[block-1] depends only on the fixed prefix.
    chain = cbc_encrypt(base_plain)[16 * (block - 1) : 16 * block]

    # Forged P[block] = D(C[block] ^ delta) ^ chain: column j of the
    # decrypted buffer passes when its byte ^ chain[j] is allowed.
    classes = b"".join(
        b"[" + b"".join(re.escape(bytes([b ^ chain[j]])) for b in ALLOWED) + b"]"
        for j in range(16)
    )
    scan = re.compile(classes, re.DOTALL)
    enc = Cipher(algorithms.AES(k), modes.ECB()).encryptor()
    dec = Cipher(algorithms.AES(k), modes.ECB()).decryptor()
    delta_rep = int.from_bytes(delta * BATCH, "little")

    found = None
    start = 0
    while found is None:
        buf = bytearray(16 * BATCH)
        for j, col in enumerate(columns(start, BATCH, chain)):
            buf[j::16] = col
        ct = enc.update(bytes(buf))
        flipped = (int.from_bytes(ct, "little") ^ delta_rep).to_bytes(len(ct), "little")
        garbled = dec.update(flipped)
        pos = 0
        while True:
            m = scan.search(garbled, pos)
            if m is None:
                break
            if m.start() % 16 == 0:
                found = start + m.start() // 16
                break
            pos = m.start() + 1  # a match across two blocks: keep looking
        start += BATCH
        print(
            f"{min(start, found + 1 if found is not None else start):>10} candidates, "
            f"{time.monotonic() - t0:6.1f}s",
            file=sys.stderr,
        )

    last_name = name(found)
    plain = plaintext(last_name)
    ct = cbc_encrypt(plain)
    forged_ct = flip(ct, block, delta)
    naive_ct = flip(cbc_encrypt(first_plain), block, delta)

    orig, why = check(ct)
    assert orig and orig["email"] == EMAIL and orig["last_name"] == last_name, why
    forged, why = check(forged_ct)
    assert forged, why
    assert forged["email"] == FORGED_EMAIL, forged
    assert forged["last_name"] != last_name and forged["first_name"] == FIRST_NAME
    assert forged["expires"] == EXPIRES
    naive, naive_why = check(naive_ct)
    assert naive is None, naive
    print(
        f"found after {found + 1} candidates in {time.monotonic() - t0:.1f}s: "
        f"last_name {last_name!r} -> forged last_name {forged['last_name']!r}; "
        f"naive flip refused ({naive_why})",
        file=sys.stderr,
    )

    out = {
        "company_id": COMPANY_ID,
        "secure_key": SECURE_KEY,
        "now": NOW,
        "block": block,
        "delta_hex": delta.hex(),
        "candidates": found + 1,
        "original_json": plain.decode(),
        "original": token(ct),
        "forged": token(forged_ct),
        "forged_email": FORGED_EMAIL,
        "forged_last_name": forged["last_name"],
        "naive_json": first_plain.decode(),
        "naive_forged": token(naive_ct),
        "naive_refusal": naive_why,
    }
    assert untoken(out["forged"]) == forged_ct
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
