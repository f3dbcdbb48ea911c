//! The signed-search query grammar (`scopegate::auth::search_query`): a raw
//! query string is split, checked, its `search` value parsed and bound to a
//! fixed `customer.email` claim. Nothing may panic, and an accepted binding
//! must hold exactly one signed pair, forwarded in a query that no
//! `;`-splitting backend reads a second `search` in.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scopegate::auth::search_query as q;

const FIELD: &str = "customer.email";
const CLAIM: &str = "marty@example.com";

/// A parameter as an owned (name, decoded value) pair.
fn owned(p: q::Param<'_>) -> (String, String) {
    let value = p.value().into_owned();
    (p.name.into_owned(), value)
}

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    let allowed = vec!["state".to_string(), "resource.id".to_string()];

    for p in q::params(query) {
        let _ = q::check_param(&p);
        let _ = q::fold(&p.name);
    }
    let _ = q::searchable_claim(query);

    // The forwarded forms of the query.
    let rest = q::without(query, &["signed_search"]).unwrap_or_default();
    assert!(
        q::params(&rest)
            .iter()
            .all(|p| q::fold(&p.name) != "signed_search"),
        "without() left a signed_search in {rest:?}"
    );
    if let Some(c) = q::canonical(query, &["signed_search"]) {
        assert!(!c.contains(';'), "canonical() kept a raw ';': {c:?}");
        let kept: Vec<_> = q::params(query)
            .into_iter()
            .filter(|p| p.name != "signed_search")
            .map(owned)
            .collect();
        let reparsed: Vec<_> = q::params(&c).into_iter().map(owned).collect();
        assert_eq!(kept, reparsed, "canonical() changed a parameter");
    }

    let Ok((search, signed)) = q::extract(query) else {
        return;
    };
    for allow in [None, Some(allowed.as_slice())] {
        let Ok(parsed) = q::parse_search(&search, allow, q::is_subject_field) else {
            continue;
        };
        for (f, v) in &parsed.pairs {
            assert!(!f.is_empty() && !v.contains('%') && !v.chars().any(char::is_control));
        }
        if q::bind(&parsed, FIELD, CLAIM, allow).is_ok() && signed.is_some() {
            let signed_pairs: Vec<_> = parsed.pairs.iter().filter(|(f, _)| *f == FIELD).collect();
            assert_eq!(signed_pairs, vec![&(FIELD, CLAIM)], "query {query:?}");
            assert!(
                parsed
                    .pairs
                    .iter()
                    .all(|(f, v)| !f.eq_ignore_ascii_case(FIELD) || (*f == FIELD && *v == CLAIM)),
                "another spelling of the subject field in {query:?}"
            );
            // A `;`-splitting backend finds one `search` parameter in what
            // the upstream receives (the re-serialized query; the client's
            // bytes may hold `&x=1;search`, which such a backend would read
            // as a second, empty `search`).
            let forwarded = q::canonical(query, &["signed_search"]).unwrap_or_default();
            let searches = forwarded
                .split(['&', ';'])
                .filter(|seg| {
                    form_urlencoded::parse(seg.as_bytes())
                        .next()
                        .is_some_and(|(n, _)| n == "search")
                })
                .count();
            assert_eq!(searches, 1, "query {query:?} forwarded as {forwarded:?}");
        }
    }
});
