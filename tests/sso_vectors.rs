//! BookingBug SSO tokens minted by implementations independent of scopegate's,
//! each following the vendor's generator step by step, decoded by scopegate's
//! legacy decoder at a fixed clock:
//! - `sso_legacy.json`: Python `cryptography` (make_sso_vectors.py);
//! - `sso_java.json`: a JDK-only port of the vendor's Java class
//!   (java/SsoVectors.java via make_java_sso_vectors.sh), another company id
//!   and secure key.

use scopegate::auth::sso::{decode_legacy, legacy_key, SsoError};
use serde_json::Value;

const FILES: [(&str, &str); 2] = [
    ("sso_legacy.json", include_str!("vectors/sso_legacy.json")),
    ("sso_java.json", include_str!("vectors/sso_java.json")),
];

/// The query parser decodes a parameter once, as it would `sso-token=...`.
fn as_received(token: &str) -> String {
    form_urlencoded::parse(format!("t={token}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap()
}

/// A vector file, its company's key and its clock.
fn load(json: &str) -> (Value, [u8; 16], i64) {
    let v: Value = serde_json::from_str(json).unwrap();
    let key = legacy_key(
        v["secure_key"].as_str().unwrap().as_bytes(),
        v["company_id"].as_str().unwrap(),
    );
    let now = v["now"].as_i64().unwrap();
    (v, key, now)
}

fn check_file(file: &str, json: &str) {
    let (v, key, now) = load(json);
    for case in v["accept"].as_array().unwrap() {
        let name = format!("{file}: {}", case["name"]);
        let text = as_received(case["token"].as_str().unwrap());
        let p = decode_legacy(&text, &key, now, 30, 0).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(p.email, case["email"].as_str().unwrap(), "{name}");
        if let Some(r) = case.get("reference") {
            assert_eq!(p.reference.as_deref(), r.as_str(), "{name}");
        }
        assert!(p.expires > now, "{name}");
    }
    for case in v["reject"].as_array().unwrap() {
        let text = as_received(case["token"].as_str().unwrap());
        assert!(
            decode_legacy(&text, &key, now, 30, 0).is_err(),
            "{file}: {} was accepted",
            case["name"]
        );
    }
}

#[test]
fn tokens_from_the_vendor_recipe_decode_exactly_as_expected() {
    for (file, json) in FILES {
        check_file(file, json);
    }
}

#[test]
fn a_token_whose_plus_signs_became_spaces_still_decodes() {
    for (file, json) in FILES {
        let (v, key, now) = load(json);
        let mut tried = 0;
        for case in v["accept"].as_array().unwrap() {
            // One form-decoding too many: `%2B` → `+` → ` `.
            let once = as_received(case["token"].as_str().unwrap());
            if !once.contains('+') {
                continue;
            }
            tried += 1;
            let twice = as_received(&once);
            assert!(twice.contains(' '));
            assert!(
                decode_legacy(&twice, &key, now, 30, 0).is_ok(),
                "{file}: {}",
                case["name"]
            );
            // And stripped padding (and trailing line breaks).
            let stripped = once.trim_end_matches(['=', '\r', '\n']);
            assert!(decode_legacy(stripped, &key, now, 30, 0).is_ok());
        }
        assert!(tried > 0, "{file}: no vector has a '+' to test with");
    }
}

#[test]
fn a_java_token_is_read_in_the_configured_zone() {
    for (file, json) in FILES {
        let (v, key, now) = load(json);
        let java = v["accept"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"].as_str().unwrap().starts_with("Java"))
            .unwrap_or_else(|| panic!("{file}: no Java-shaped vector"));
        let text = as_received(java["token"].as_str().unwrap());
        // Without a zone, at most an hour ahead in UTC; read as UTC+2 it has
        // ended at least an hour ago.
        assert!(decode_legacy(&text, &key, now, 30, 0).is_ok(), "{file}");
        assert_eq!(
            decode_legacy(&text, &key, now, 30, 2 * 3600),
            Err(SsoError::Expired),
            "{file}"
        );
    }
}

/// `v2` tokens minted by Python `cryptography` (AESGCM) and by the generator
/// snippets in `examples/sso-generators/` (Python, Node, Ruby), read by the
/// decoder in v2-only mode: the format is exactly the documented layout.
#[test]
fn v2_tokens_from_independent_generators_decode_and_tampering_is_refused() {
    use scopegate::auth::sso::{token, Keys, Rules, Zone};
    let v: Value = serde_json::from_str(include_str!("vectors/sso_v2.json")).unwrap();
    let keys = Keys::derive(
        v["secure_key"].as_str().unwrap().as_bytes(),
        v["company_id"].as_str().unwrap(),
    );
    let now = v["now"].as_i64().unwrap();
    let rules = Rules {
        leeway: 30,
        zone: Zone::UTC,
    };
    let accept = v["accept"].as_array().unwrap();
    assert!(accept.len() >= 6, "the snippets' tokens are missing");
    for case in accept {
        let name = &case["name"];
        let text = as_received(case["token"].as_str().unwrap());
        let p = token::decode(&text, &keys, false, rules, now)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(p.email, case["email"].as_str().unwrap(), "{name}");
        if let Some(r) = case.get("reference") {
            assert_eq!(p.reference.as_deref(), r.as_str(), "{name}");
        }
    }
    for case in v["reject"].as_array().unwrap() {
        let text = as_received(case["token"].as_str().unwrap());
        // v2 only: no tampered or legacy token may pass.
        assert!(
            token::decode(&text, &keys, false, rules, now).is_err(),
            "{} was accepted",
            case["name"]
        );
        // With legacy accepted too, a tampered v2 token must still fail.
        assert!(
            token::decode(&text, &keys, true, rules, now).is_err() || !text.starts_with("v2."),
            "{} was accepted as legacy",
            case["name"]
        );
    }
}
