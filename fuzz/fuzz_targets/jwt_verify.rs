//! Strict HS256 verification (`scopegate::auth::jwt`) of a fuzzed token
//! against fixed apps (fixtures/apps.toml) at a fixed time. Nothing may
//! panic; a token that verifies belongs to a configured app, verifies the
//! same way through every entry point, and still verifies once re-minted
//! from its own claims.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use scopegate::{auth::jwt, Config};
use serde_json::Value;

/// 2027-01-15T08:00:00Z.
const NOW: u64 = 1_800_000_000;
const LEEWAY: u64 = 30;
const SHOP_KEY: &[u8] = b"live_api_key_shop_7nzvc7wsBQQISLeFSVhROys9V1bUJ1z7";

static CONFIG: LazyLock<Config> = LazyLock::new(|| {
    Config::from_toml(include_str!("../fixtures/apps.toml")).expect("fixtures/apps.toml")
});

/// The whole payload of a token that verified (so it is a JSON object).
fn payload(token: &str) -> serde_json::Map<String, Value> {
    use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
    let p = token.split('.').nth(1).expect("three parts");
    let bytes = URL_SAFE_NO_PAD.decode(p).expect("base64url");
    serde_json::from_slice(&bytes).expect("a JSON object")
}

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let apps = &CONFIG.auth.apps;

    let named = jwt::verify(token, NOW, LEEWAY, |s| apps.policy(s));
    let any = jwt::verify_or_search(
        token,
        NOW,
        LEEWAY,
        |s| apps.policy(s),
        apps.candidates(None),
    );
    let only_shop = ["shop".to_string()];
    let _ = jwt::verify_or_search(
        token,
        NOW,
        LEEWAY,
        |s| apps.policy(s),
        apps.candidates(Some(&only_shop)),
    );
    let by_key = jwt::check_signature(token, SHOP_KEY);

    if let Ok(v) = &named {
        assert!(apps.0.contains_key(&v.app_slug));
        assert_eq!(
            v.claims.get("app_slug"),
            Some(&Value::String(v.app_slug.clone()))
        );
        let other = any
            .as_ref()
            .expect("verify accepted, verify_or_search refused");
        assert_eq!(other.app_slug, v.app_slug);
        assert_eq!(other.claims, v.claims);
        if v.app_slug == "shop" {
            assert!(by_key.is_ok(), "verified for shop but not with shop's key");
        }
    }
    if let Ok(v) = &any {
        assert!(apps.0.contains_key(&v.app_slug));
        match v.claims.get("app_slug") {
            None => {}
            Some(Value::String(s)) => {
                assert_eq!(*s, v.app_slug);
                assert!(
                    named.is_ok(),
                    "verify_or_search accepted a named token verify refused"
                );
            }
            Some(other) => panic!("accepted a non-string app_slug {other:?}"),
        }
        // Re-minted from its own payload, it verifies to the same claims.
        let mut claims = payload(token);
        claims.remove("app_slug");
        let again = apps
            .mint(&v.app_slug, claims, NOW)
            .expect("mint for a verified app");
        let w = jwt::verify(&again, NOW, LEEWAY, |s| apps.policy(s))
            .unwrap_or_else(|e| panic!("re-minted token refused: {e:?}"));
        assert_eq!(w.app_slug, v.app_slug);
        let mut expected = v.claims.clone();
        expected.app_slug = Some(v.app_slug.clone().into());
        assert_eq!(w.claims, expected);
    }
    if let Err(e) = &named {
        let _ = e.cause();
    }
});
