//! Path normalization (`scopegate::path::normalize`) and route lookup
//! (`RouteTable::lookup`, fixed table in fixtures/routes.toml). Nothing may
//! panic; normalization is idempotent and keeps its documented invariants;
//! a route found for a normalized path has a pattern that matches it with
//! the same parameters.
#![no_main]

use std::sync::LazyLock;

use http::Method;
use libfuzzer_sys::fuzz_target;
use scopegate::{path, routes::Lookup, Config};

static CONFIG: LazyLock<Config> = LazyLock::new(|| {
    Config::from_toml(include_str!("../fixtures/routes.toml")).expect("fixtures/routes.toml")
});

fn check_normalized(n: &str) {
    assert!(n.starts_with('/'), "{n:?}");
    assert!(!n.contains("//"), "{n:?}");
    let upper = n.to_ascii_uppercase();
    for bad in ["%2F", "%5C", "%00", "\\", "#"] {
        assert!(!upper.contains(bad), "{n:?} contains {bad}");
    }
    assert!(!n.bytes().any(|b| b < 0x21 || b == 0x7f), "{n:?}");
    for seg in n.split('/') {
        let head = seg.split(';').next().unwrap_or(seg);
        assert!(head != "." && head != "..", "dot segment in {n:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(once) = path::normalize(raw) else {
        return;
    };
    check_normalized(&once);
    let twice = path::normalize(&once).expect("a normalized path normalizes");
    assert_eq!(twice, once, "normalize is not idempotent on {raw:?}");

    let routes = &CONFIG.routes;
    for host in [None, Some("admin.example.com")] {
        for method in [Method::GET, Method::POST, Method::DELETE] {
            match routes.lookup(host, &method, &once) {
                Lookup::Found(route, params) => {
                    let again = route.pattern.matches(&once).unwrap_or_else(|| {
                        panic!("{} found for {once:?} but does not match", route.name)
                    });
                    assert_eq!(again, params);
                    for (_, v) in &params.0 {
                        assert!(!v.is_empty() && !v.contains('/'), "param {v:?} of {once:?}");
                    }
                    assert!(route.host.as_deref().is_none_or(|h| Some(h) == host));
                }
                Lookup::MethodNotAllowed(allowed) => {
                    assert!(!allowed.is_empty() && !allowed.contains(&method));
                }
                Lookup::NotFound => {}
            }
        }
    }
});
