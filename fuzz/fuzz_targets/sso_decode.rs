//! SSO token decoding (`scopegate::auth::sso::token`): fuzzed token text
//! through `decode` with fixed company keys, legacy format accepted and
//! refused, and fuzzed bytes straight into `payload` (what a forged legacy
//! ciphertext can make the decryption produce). Nothing may panic, and an
//! accepted payload meets the field rules.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use scopegate::auth::sso::token::{self, Format, Keys, Rules, SsoPayload, Zone};

/// 2027-01-15T08:00:00Z.
const NOW: i64 = 1_800_000_000;

/// The company of the seeds in corpus/sso_decode/ (secure key, company id).
static KEYS: LazyLock<Keys> = LazyLock::new(|| Keys::derive(b"abcdef0123456789SECUREKEY", "37000"));
static RULES: LazyLock<[Rules; 2]> = LazyLock::new(|| {
    [
        Rules {
            leeway: 30,
            zone: Zone::UTC,
        },
        Rules {
            leeway: 300,
            zone: Zone::parse("Europe/London").expect("IANA zone"),
        },
    ]
});

fn check(p: &SsoPayload) {
    assert!(!p.first_name.is_empty() && p.first_name.len() <= token::MAX_FIELD_LEN);
    assert!(!p.last_name.is_empty() && p.last_name.len() <= token::MAX_FIELD_LEN);
    assert!(
        token::valid_email(&p.email),
        "invalid email accepted: {:?}",
        p.email
    );
    for s in [&p.first_name, &p.last_name, &p.email]
        .into_iter()
        .chain(p.mobile.as_ref())
        .chain(p.reference.as_ref())
    {
        assert!(
            !s.chars().any(char::is_control),
            "control character accepted: {s:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    for rules in RULES.iter() {
        if let Ok(p) = token::payload(data, rules.zone) {
            check(&p);
            let _ = token::check_expiry(&p, NOW, rules.leeway);
        }
    }

    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = token::canonical(text);
    let family = token::legacy_family(text);
    assert!(family.is_none() || Format::of(text) == Format::Legacy);
    let _ = Zone::parse(text);
    let _ = token::parse_expires(text, RULES[1].zone);

    for rules in RULES.iter() {
        let with_legacy = token::decode(text, &KEYS, true, *rules, NOW);
        let v2_only = token::decode(text, &KEYS, false, *rules, NOW);
        match Format::of(text) {
            Format::V2 => assert_eq!(with_legacy, v2_only),
            Format::Legacy => {
                assert_eq!(v2_only, Err(token::SsoError::LegacyRefused));
                if rules.zone == Zone::UTC {
                    let old = token::decode_legacy(text, &KEYS.legacy, NOW, rules.leeway, 0);
                    assert_eq!(old, with_legacy, "decode_legacy and decode disagree");
                }
            }
        }
        if let Ok(p) = &with_legacy {
            check(p);
            assert!(
                NOW <= p.expires.saturating_add(rules.leeway),
                "expired token accepted"
            );
        }
    }
});
