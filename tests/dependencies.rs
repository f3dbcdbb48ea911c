//! Dependency hygiene, checked offline against `Cargo.lock`: the crates on
//! the request path are at versions with the published fixes, and there is
//! one copy of each (one HTTP/2 stack, one TLS stack). The advisory database
//! itself (`cargo audit` / `cargo deny check advisories`) needs GitHub, which
//! the build machines cannot reach; these floors are the advisories that
//! matter to scopegate, written down.

const LOCK: &str = include_str!("../Cargo.lock");

/// Every locked version of `name`.
fn versions(name: &str) -> Vec<(u64, u64, u64)> {
    let mut out = Vec::new();
    let mut lines = LOCK.lines();
    while let Some(line) = lines.next() {
        if line == format!("name = \"{name}\"") {
            let v = lines
                .next()
                .and_then(|l| l.strip_prefix("version = \""))
                .and_then(|l| l.strip_suffix('"'))
                .expect("a version line follows the name");
            let mut parts = v
                .split(['.', '-', '+'])
                .map(|p| p.parse::<u64>().unwrap_or(0));
            out.push((
                parts.next().unwrap_or(0),
                parts.next().unwrap_or(0),
                parts.next().unwrap_or(0),
            ));
        }
    }
    out
}

#[test]
fn request_path_crates_carry_the_published_fixes() {
    // (crate, the lowest fixed version, why)
    let floors: &[(&str, (u64, u64, u64), &str)] = &[
        (
            "h2",
            (0, 4, 4),
            "HTTP/2 CONTINUATION flood (RUSTSEC-2024-0332); rapid reset fixed earlier",
        ),
        (
            "hyper",
            (1, 0, 0),
            "the 0.14 request-smuggling fixes are all in 1.x",
        ),
        (
            "rustls",
            (0, 23, 5),
            "complete_io infinite loop on a close_notify (RUSTSEC-2024-0336)",
        ),
        (
            "ring",
            (0, 17, 12),
            "AES panic with overflow checks (RUSTSEC-2025-0009)",
        ),
        (
            "idna",
            (1, 0, 0),
            "punycode labels accepted that should not be (RUSTSEC-2024-0421)",
        ),
    ];
    for (name, floor, why) in floors {
        let found = versions(name);
        assert!(!found.is_empty(), "{name} is not in Cargo.lock");
        for v in &found {
            assert!(v >= floor, "{name} {v:?} is older than {floor:?}: {why}");
        }
    }
}

#[test]
fn one_http2_stack_and_one_tls_stack() {
    for name in ["h2", "hyper", "rustls", "ring"] {
        assert_eq!(versions(name).len(), 1, "{name}: {:?}", versions(name));
    }
    for absent in ["openssl", "native-tls", "aws-lc-rs"] {
        assert!(versions(absent).is_empty(), "{absent} is in Cargo.lock");
    }
}
