//! A CBC bit-flipping forgery of a BookingBug legacy SSO token, against both
//! token formats.
//!
//! The legacy format is AES-128-CBC under a zero IV with no MAC, so anyone
//! holding a token can flip its ciphertext bits. XORing `delta` into block
//! C[i] XORs `delta` into plaintext block P[i+1] exactly, and turns P[i] into
//! 16 bytes nobody controls. In `sso_cbc_forgery.json` (from
//! `vectors/make_sso_forgery_vector.py`), P[i+1] is `","email":"smith` and P[i]
//! lies inside the `last_name` value, so the flip turns smith@example.com into
//! admin@example.com and garbles the last name.
//!
//! What was found:
//! - A naive flip is refused: the garbled block is almost never valid inside a
//!   JSON string under scopegate's strict checks (UTF-8, no quote, backslash
//!   or control character), about (93/256)^16 ≈ 1 in 1.1e7. Of 2,000 random
//!   flips below, none is accepted.
//! - But the weakness is real: the script, playing the site that mints tokens
//!   and varying the 16 `last_name` characters, found an accepted forgery after
//!   16,942,563 candidates (about 4.5 s of batched AES). An attacker without
//!   the key needs that many tokens or decryption-oracle queries, which the
//!   per-client failure limit stops long before; the format itself stops
//!   nothing.
//! - A company that accepts only `v2` refuses the forged legacy token outright,
//!   and the same flip of a `v2` (AES-256-GCM) token's ciphertext, which would
//!   turn smith into admin since GCM encrypts in counter mode, fails the tag,
//!   as does every flipped bit of the nonce or the tag.

use aes::cipher::{BlockEncrypt, KeyInit};
use base64::{
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
    Engine as _,
};
use scopegate::auth::sso::{
    mint_legacy, mint_v2,
    token::{decode, open_legacy, V2_PREFIX},
    Keys, Rules, SsoError, Zone,
};
use serde_json::Value;

const VECTOR: &str = include_str!("vectors/sso_cbc_forgery.json");
const RULES: Rules = Rules {
    leeway: 30,
    zone: Zone::UTC,
};
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

struct Vector {
    v: Value,
    keys: Keys,
    now: i64,
    /// C[block] is flipped; P[block + 1] holds `","email":"smith`.
    block: usize,
    delta: [u8; 16],
}

fn vector() -> Vector {
    let v: Value = serde_json::from_str(VECTOR).unwrap();
    let keys = Keys::derive(
        v["secure_key"].as_str().unwrap().as_bytes(),
        v["company_id"].as_str().unwrap(),
    );
    let hex = v["delta_hex"].as_str().unwrap();
    let mut delta = [0u8; 16];
    for (i, d) in delta.iter_mut().enumerate() {
        *d = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    Vector {
        now: v["now"].as_i64().unwrap(),
        block: v["block"].as_u64().unwrap() as usize,
        keys,
        delta,
        v,
    }
}

impl Vector {
    fn str(&self, field: &str) -> &str {
        self.v[field].as_str().unwrap()
    }

    /// A token from the file as the query parser hands it over (decoded once).
    fn received(&self, field: &str) -> String {
        as_received(self.str(field))
    }
}

fn as_received(token: &str) -> String {
    form_urlencoded::parse(format!("t={token}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap()
}

fn xor_at(buf: &mut [u8], at: usize, delta: &[u8]) {
    for (b, d) in buf[at..at + delta.len()].iter_mut().zip(delta) {
        *b ^= d;
    }
}

#[test]
fn legacy_accepts_the_found_forgery_and_refuses_the_naive_one() {
    let t = vector();
    let original = decode(&t.received("original"), &t.keys, true, RULES, t.now).unwrap();
    assert_eq!(original.email, "smith@example.com");

    // The weakness itself: a token nobody minted, for another customer, is
    // accepted. It took the minting site 16.9 million last names (the count
    // is in the file) to find one whose flipped twin garbles its last name
    // into 16 bytes that are still a valid JSON string; the attacker without
    // the key would need as many tokens or oracle queries.
    let forged = decode(&t.received("forged"), &t.keys, true, RULES, t.now).unwrap();
    assert_eq!(forged.email, t.str("forged_email"));
    assert_eq!(forged.email, "admin@example.com");
    assert_eq!(forged.last_name, t.str("forged_last_name"));
    assert_ne!(forged.last_name, original.last_name);
    assert_eq!(forged.first_name, original.first_name);
    assert_eq!(forged.expires, original.expires);
    assert!(t.v["candidates"].as_u64().unwrap() > 1_000_000);

    // The same flip of the first candidate's token: the usual outcome.
    // It decrypts (padding intact) with the email changed exactly, and is
    // refused for its garbled last name (here not even UTF-8).
    let naive = t.received("naive_forged");
    let plain = open_legacy(&naive, &t.keys.legacy).unwrap();
    let next = 16 * (t.block + 1);
    assert_eq!(&plain[next..next + 16], b"\",\"email\":\"admin");
    assert_eq!(t.str("naive_refusal"), "UTF-8");
    assert!(std::str::from_utf8(&plain).is_err());
    assert_eq!(
        decode(&naive, &t.keys, true, RULES, t.now),
        Err(SsoError::Json)
    );
}

#[test]
fn a_company_accepting_only_v2_refuses_the_forgery() {
    let t = vector();
    for field in ["forged", "original", "naive_forged"] {
        assert_eq!(
            decode(&t.received(field), &t.keys, false, RULES, t.now),
            Err(SsoError::LegacyRefused),
            "{field}"
        );
    }
}

/// GCM's keystream block for plaintext block `k`: AES(nonce || be32(2 + k)).
fn gcm_keystream(key: &[u8; 32], nonce: &[u8], len: usize) -> Vec<u8> {
    let aes = aes::Aes256::new(key.into());
    let mut out = Vec::with_capacity(len + 16);
    for k in 0..len.div_ceil(16) {
        let mut block = [0u8; 16];
        block[..NONCE_LEN].copy_from_slice(nonce);
        block[NONCE_LEN..].copy_from_slice(&(2 + k as u32).to_be_bytes());
        let mut b = block.into();
        aes.encrypt_block(&mut b);
        out.extend_from_slice(&b);
    }
    out.truncate(len);
    out
}

#[test]
fn v2_refuses_the_same_flip_and_every_flipped_nonce_or_tag_bit() {
    let t = vector();
    let json = t.str("original_json").as_bytes();
    let v2 = mint_v2(json, &t.keys.v2);
    assert_eq!(
        decode(&v2, &t.keys, false, RULES, t.now).unwrap().email,
        "smith@example.com"
    );
    let raw = URL_SAFE_NO_PAD.decode(&v2[V2_PREFIX.len()..]).unwrap();
    assert_eq!(raw.len(), NONCE_LEN + json.len() + TAG_LEN);
    let seal = |r: &[u8]| format!("{V2_PREFIX}{}", URL_SAFE_NO_PAD.encode(r));

    // The same delta at the same plaintext offsets (GCM is counter mode: a
    // ciphertext bit is a plaintext bit, with no garbled block at all).
    let offset = 16 * (t.block + 1);
    assert_eq!(&json[offset..offset + 16], b"\",\"email\":\"smith");
    let mut flipped = raw.clone();
    xor_at(&mut flipped, NONCE_LEN + offset, &t.delta);

    // Without the tag it would read admin@example.com ...
    let (nonce, rest) = flipped.split_at(NONCE_LEN);
    let body = &rest[..json.len()];
    let stream = gcm_keystream(&t.keys.v2, nonce, body.len());
    let unchecked: Vec<u8> = body.iter().zip(&stream).map(|(c, k)| c ^ k).collect();
    let unchecked = String::from_utf8(unchecked).unwrap();
    assert_eq!(
        unchecked,
        t.str("original_json")
            .replace("smith@example.com", "admin@example.com")
    );
    // ... and the tag refuses it.
    assert_eq!(
        decode(&seal(&flipped), &t.keys, false, RULES, t.now),
        Err(SsoError::Cipher)
    );
    assert_eq!(
        decode(&seal(&flipped), &t.keys, true, RULES, t.now),
        Err(SsoError::Cipher)
    );

    let tag_start = raw.len() - TAG_LEN;
    let bits = (0..NONCE_LEN * 8).chain(tag_start * 8..raw.len() * 8);
    let mut tried = 0;
    for bit in bits {
        let mut r = raw.clone();
        r[bit / 8] ^= 1 << (bit % 8);
        assert_eq!(
            decode(&seal(&r), &t.keys, true, RULES, t.now),
            Err(SsoError::Cipher),
            "bit {bit}"
        );
        tried += 1;
    }
    assert_eq!(tried, (NONCE_LEN + TAG_LEN) * 8);
}

/// SplitMix64: a fixed sequence, no dependency.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn bytes16(&mut self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.next().to_le_bytes());
        out[8..].copy_from_slice(&self.next().to_le_bytes());
        out
    }
}

#[test]
fn random_single_block_flips_of_a_legacy_token_are_refused() {
    let t = vector();
    let ct = STANDARD.decode(t.received("original")).unwrap();
    let blocks = ct.len() / 16;
    let mut rng = SplitMix(0x5C0E_6A7E);
    let mut accepted = Vec::new();
    let mut refusals = std::collections::BTreeMap::<String, u32>::new();
    for n in 0..2_000 {
        let (block, delta) = if n % 2 == 0 {
            // Any block, any non-zero delta.
            let mut d = rng.bytes16();
            d[0] |= 1;
            ((rng.next() % blocks as u64) as usize, d)
        } else {
            // The attack's shape: C[block] flipped so that "smith" becomes
            // another lowercase name, as the attacker would try it.
            let mut d = [0u8; 16];
            let r = rng.next().to_le_bytes();
            for (i, smith) in b"smith".iter().enumerate() {
                let to = b'a' + r[i] % 26;
                d[11 + i] = smith ^ to;
            }
            d[11] ^= u8::from(d[11..].iter().all(|b| *b == 0)); // not a no-op
            (t.block, d)
        };
        let mut forged = ct.clone();
        xor_at(&mut forged, 16 * block, &delta);
        match decode(&STANDARD.encode(&forged), &t.keys, true, RULES, t.now) {
            Ok(p) => accepted.push((n, block, p.email)),
            Err(e) => *refusals.entry(format!("{e:?}")).or_default() += 1,
        }
    }
    // Each is accepted with a probability of about 1e-7: none of 2,000.
    assert_eq!(accepted, vec![], "refusals: {refusals:?}");
    eprintln!("2,000 random flips, all refused: {refusals:?}");
}

#[test]
fn the_file_is_what_its_script_says() {
    let t = vector();
    // The original token is exactly scopegate's own legacy minting of the JSON.
    assert_eq!(
        mint_legacy(t.str("original_json").as_bytes(), &t.keys.legacy),
        t.str("original")
    );
    assert_eq!(
        mint_legacy(t.str("naive_json").as_bytes(), &t.keys.legacy),
        {
            // naive_forged is the flip of the naive token: undo it.
            let mut ct = STANDARD.decode(t.received("naive_forged")).unwrap();
            xor_at(&mut ct, 16 * t.block, &t.delta);
            percent_encoding::utf8_percent_encode(
                &STANDARD.encode(ct),
                percent_encoding::NON_ALPHANUMERIC,
            )
            .to_string()
        }
    );
    // The forgery differs from the original in C[block] only, by delta.
    let orig = STANDARD.decode(t.received("original")).unwrap();
    let forged = STANDARD.decode(t.received("forged")).unwrap();
    let diff: Vec<u8> = orig.iter().zip(&forged).map(|(a, b)| a ^ b).collect();
    let mut expected = vec![0u8; orig.len()];
    expected[16 * t.block..16 * t.block + 16].copy_from_slice(&t.delta);
    assert_eq!(diff, expected);
}
