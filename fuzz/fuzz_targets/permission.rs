//! Bookeo permission names and route requirements
//! (`scopegate::auth::api_key::{Permission, Requirement}`). Nothing may
//! panic; a parsed permission prints as its input, parses back to itself,
//! is one the vendor offers and implies itself; a parsed requirement prints
//! and parses back.
#![no_main]

use std::str::FromStr;

use http::Method;
use libfuzzer_sys::fuzz_target;
use scopegate::auth::api_key::{Permission, Requirement, Rights};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };

    if let Ok(p) = Permission::from_str(s) {
        let shown = p.to_string();
        assert_eq!(shown, s, "Display does not round-trip");
        assert_eq!(Permission::from_str(&shown), Ok(p));
        assert!(p.implies(p), "{p} does not imply itself");
        assert!(Permission::every().contains(&p), "{p} is not offered");
        let expanded = p.expand();
        assert!(expanded.contains(&p));
        for q in &expanded {
            assert!(p.implies(*q));
            assert_eq!(q.area, p.area);
        }
        for q in Permission::every() {
            // implies is a partial order: antisymmetric.
            if p.implies(q) && q.implies(p) {
                assert_eq!(p, q);
            }
        }
    }

    if let Ok(r) = Requirement::parse(s) {
        for m in [Method::GET, Method::POST, Method::DELETE] {
            let need = r.need(&m);
            let _ = need.reach_in(&Permission::every());
        }
        match r {
            Requirement::Fixed(need) => {
                let shown = need.to_string();
                assert_eq!(shown, s);
                assert_eq!(Requirement::parse(&shown), Ok(r));
            }
            Requirement::ByMethod(area) => {
                assert_eq!(area.name(), s);
                assert_eq!(r.need(&Method::GET).rights, Rights::R);
            }
        }
    }
});
