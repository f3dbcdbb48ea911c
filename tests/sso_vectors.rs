//! BookingBug SSO tokens minted by an independent implementation (Python
//! `cryptography`, following the vendor's Java generator step by step),
//! decoded by scopegate's legacy decoder at a fixed clock.

use scopegate::auth::sso::{decode_legacy, legacy_key, SsoError};
use serde_json::Value;

/// The query parser decodes a parameter once, as it would `sso-token=...`.
fn as_received(token: &str) -> String {
    form_urlencoded::parse(format!("t={token}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap()
}

#[test]
fn tokens_from_the_vendor_recipe_decode_exactly_as_expected() {
    let v: Value = serde_json::from_str(include_str!("vectors/sso_legacy.json")).unwrap();
    let key = legacy_key(
        v["secure_key"].as_str().unwrap().as_bytes(),
        v["company_id"].as_str().unwrap(),
    );
    let now = v["now"].as_i64().unwrap();
    for case in v["accept"].as_array().unwrap() {
        let text = as_received(case["token"].as_str().unwrap());
        let p = decode_legacy(&text, &key, now, 30, 0)
            .unwrap_or_else(|e| panic!("{}: {e}", case["name"]));
        assert_eq!(p.email, case["email"].as_str().unwrap(), "{}", case["name"]);
        if let Some(r) = case.get("reference") {
            assert_eq!(p.reference.as_deref(), r.as_str(), "{}", case["name"]);
        }
        assert!(p.expires > now);
    }
    for case in v["reject"].as_array().unwrap() {
        let text = as_received(case["token"].as_str().unwrap());
        assert!(
            decode_legacy(&text, &key, now, 30, 0).is_err(),
            "{} was accepted",
            case["name"]
        );
    }
}

#[test]
fn a_token_whose_plus_signs_became_spaces_still_decodes() {
    let v: Value = serde_json::from_str(include_str!("vectors/sso_legacy.json")).unwrap();
    let key = legacy_key(
        v["secure_key"].as_str().unwrap().as_bytes(),
        v["company_id"].as_str().unwrap(),
    );
    let now = v["now"].as_i64().unwrap();
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
            "{}",
            case["name"]
        );
        // And stripped padding.
        assert!(decode_legacy(once.trim_end_matches('='), &key, now, 30, 0).is_ok());
    }
    assert!(tried > 0, "no vector has a '+' to test with");
}

#[test]
fn a_java_token_is_read_in_the_configured_zone() {
    let v: Value = serde_json::from_str(include_str!("vectors/sso_legacy.json")).unwrap();
    let key = legacy_key(
        v["secure_key"].as_str().unwrap().as_bytes(),
        v["company_id"].as_str().unwrap(),
    );
    let now = v["now"].as_i64().unwrap();
    let java = v["accept"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"].as_str().unwrap().starts_with("Java"))
        .unwrap();
    let text = as_received(java["token"].as_str().unwrap());
    // 08:30 without a zone: UTC → 30 min ahead; read as UTC+2 it ended 90 min ago.
    assert!(decode_legacy(&text, &key, now, 30, 0).is_ok());
    assert_eq!(
        decode_legacy(&text, &key, now, 30, 2 * 3600),
        Err(SsoError::Expired)
    );
}
