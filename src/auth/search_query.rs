//! The `search` query grammar and its binding to a signed subject.
//!
//! Grammar (decided; see the README): the raw query is split on `&`; names
//! and values are form-decoded once. `search` and `signed_search` must each
//! appear exactly once (also no `search[]`-style spellings). The `search`
//! value is split on `;` into `field:value` pairs (split at the first `:`),
//! field names `[A-Za-z0-9_.]+`, no empty pair.
//!
//! Binding: the signed pair occurs exactly once with a byte-equal value, and
//! no other pair names the subject field (compared case-insensitively).
//!
//! Backends parse queries differently (`;` as a separator, last or first of
//! repeated names, names with spaces, NUL or brackets folded, parameter-count
//! cut-offs, a second percent-decoding). So a signed-search request must have
//! parameter names from `[A-Za-z0-9_.-]`, no name that folds to `search` or
//! `signed_search` without being it, at most [`MAX_PARAMS`] parameters, no
//! malformed escape, and no `%` or control character in a search value; and
//! the upstream receives a re-serialized query (see [`canonical`]) rather than
//! the client's bytes.

use std::borrow::Cow;

/// Most parameters a signed-search query may carry (PHP, Node and `qs` stop
/// reading at 1000, and would then miss a late `search`).
pub const MAX_PARAMS: usize = 32;

/// A malformed query: answered with 400, never forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("too many query parameters")]
    TooManyParams,
    #[error("parameter name outside [A-Za-z0-9_.-]")]
    BadName,
    #[error("parameter name that backends may read as search or signed_search")]
    LookalikeName,
    #[error("malformed percent-escape in the query")]
    BadEscape,
    #[error("control character in a query value")]
    ControlChar,
    #[error("'%' or control character in a search value")]
    BadSearchValue,
    #[error("this credential takes no request body")]
    Body,
    #[error("signed search is for GET and HEAD only")]
    Method,
    #[error("`search` missing or given more than once")]
    SearchCount,
    #[error("`signed_search` given more than once")]
    SignedSearchCount,
    #[error("a credential parameter given more than once")]
    Repeated,
    #[error("a required parameter is missing")]
    Missing,
    #[error("a method override parameter (`_method`)")]
    MethodOverride,
    #[error("array-style parameter name")]
    ArrayName,
    #[error("`;` followed by a parameter inside a value")]
    HiddenParameter,
    #[error("empty search pair")]
    EmptyPair,
    #[error("search pair without ':'")]
    NoColon,
    #[error("invalid search field name")]
    FieldName,
    #[error("search field not allowed on this route")]
    FieldNotAllowed,
}

/// The binding failed: answered with the scheme's uniform 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BindError {
    #[error("the signed pair is absent from search")]
    Absent,
    #[error("the signed pair appears more than once")]
    Repeated,
    #[error("another value for the signed field")]
    OtherValue,
    #[error("the signed value cannot appear in a search")]
    UnsearchableClaim,
    #[error("a subject field outside the route's allow-list")]
    FieldNotAllowed,
}

/// One raw `&`-separated parameter and its decoded name; the value is
/// decoded when asked for (most readers only look at names, and a token
/// value is the longest part of a query).
pub struct Param<'q> {
    pub raw: &'q str,
    pub name: Cow<'q, str>,
    raw_value: &'q str,
}

impl<'q> Param<'q> {
    /// One raw parameter: the name is what comes before the first `=`.
    fn new(raw: &'q str) -> Self {
        let (name, raw_value) = match memchr::memchr(b'=', raw.as_bytes()) {
            Some(i) => (&raw[..i], &raw[i + 1..]),
            None => (raw, ""),
        };
        Param {
            raw,
            name: decode(name),
            raw_value,
        }
    }

    /// The decoded value (`+` as space, `%XX` escapes, invalid UTF-8 as U+FFFD).
    pub fn value(&self) -> Cow<'q, str> {
        decode(self.raw_value)
    }
}

/// `application/x-www-form-urlencoded` decoding of one name or value, as
/// `form_urlencoded::parse` does it; borrowed when there is nothing to decode.
pub(crate) fn decode(s: &str) -> Cow<'_, str> {
    if memchr::memchr2(b'+', b'%', s.as_bytes()).is_none() {
        return Cow::Borrowed(s);
    }
    let spaced: Vec<u8> = s
        .bytes()
        .map(|b| if b == b'+' { b' ' } else { b })
        .collect();
    let bytes: Vec<u8> = percent_encoding::percent_decode(&spaced).collect();
    match String::from_utf8(bytes) {
        Ok(s) => Cow::Owned(s),
        Err(e) => Cow::Owned(String::from_utf8_lossy(e.as_bytes()).into_owned()),
    }
}

/// The decoded values of every parameter named exactly `name`.
pub fn values(query: &str, name: &str) -> Vec<String> {
    params(query)
        .into_iter()
        .filter(|p| p.name == name)
        .map(|p| p.value().into_owned())
        .collect()
}

/// Splits a raw query into parameters (empty segments skipped).
pub fn params(query: &str) -> Vec<Param<'_>> {
    iter_params(query).collect()
}

/// The raw `&`-separated parameters, empty segments skipped, nothing decoded.
pub fn raw_params(query: &str) -> impl Iterator<Item = &str> {
    // `split('&')`, by the vectorized memchr: a token makes most of a query.
    let mut start = 0;
    memchr::memchr_iter(b'&', query.as_bytes())
        .chain(std::iter::once(query.len()))
        .map(move |end| {
            let piece = &query[start..end];
            start = end + 1;
            piece
        })
        .filter(|s| !s.is_empty())
}

/// [`params`], lazily: for readers that stop at the first match.
pub fn iter_params(query: &str) -> impl Iterator<Item = Param<'_>> {
    raw_params(query).map(Param::new)
}

/// True when a raw parameter carries `;name=` that a `;`-splitting backend
/// would read as a parameter of its own: an `=` anywhere after the first `;`.
fn hides_parameter(raw: &str) -> bool {
    let b = raw.as_bytes();
    memchr::memchr(b';', b).is_some_and(|i| memchr::memchr(b'=', &b[i + 1..]).is_some())
}

/// A parameter name as lenient backends read it: cut at NUL, leading spaces
/// dropped, lower case, every other non-alphanumeric as `_`, outer `_` trimmed.
pub fn fold(name: &str) -> String {
    let name = name.split('\0').next().unwrap_or("").trim_start();
    let mut mapped = String::with_capacity(name.len());
    mapped.extend(name.chars().map(|c| {
        if c.is_ascii_alphanumeric() {
            c.to_ascii_lowercase()
        } else {
            '_'
        }
    }));
    // The outer `_`s go in place (all ASCII, so byte offsets are char ones).
    let end = mapped.trim_end_matches('_').len();
    mapped.truncate(end);
    let start = mapped.len() - mapped.trim_start_matches('_').len();
    mapped.drain(..start);
    mapped
}

/// The checks every parameter of a credential-bearing query passes: no
/// hidden `;name=`, well-formed escapes, no control character in the value.
pub fn check_param(p: &Param<'_>) -> Result<(), QueryError> {
    if hides_parameter(p.raw) {
        return Err(QueryError::HiddenParameter);
    }
    // Most parameters (a token, a plain search) hold no `%`, no control and
    // no non-ASCII byte: one pass over them settles the other two checks.
    if !any_byte(p.raw.as_bytes(), |b| matches!(b, b'%' | 0..=0x1f | 0x7f..)) {
        return Ok(());
    }
    if !escapes_well_formed(p.raw) {
        return Err(QueryError::BadEscape);
    }
    // Without escapes, an ASCII value decodes to itself (`+` to a space):
    // its control characters are its control bytes.
    let raw = p.raw_value;
    let control = if raw.is_ascii() && !raw.contains('%') {
        raw.bytes().any(|b| b.is_ascii_control())
    } else {
        p.value().chars().any(char::is_control)
    };
    if control {
        return Err(QueryError::ControlChar);
    }
    Ok(())
}

/// Whether any byte of `s` is one `hit` picks: 32 bytes at a time without an
/// early exit inside a block, so the compiler can vectorize the test.
fn any_byte(s: &[u8], hit: impl Fn(u8) -> bool + Copy) -> bool {
    let mut blocks = s.chunks_exact(32);
    let found = blocks
        .by_ref()
        .any(|block| block.iter().fold(false, |acc, &b| acc | hit(b)));
    found || blocks.remainder().iter().any(|&b| hit(b))
}

/// Whether a name of `[A-Za-z0-9_.-]` folds (see [`fold`]) to `search` or
/// `signed_search` without being it; no allocation.
fn lookalike(name: &str) -> bool {
    if name == "search" || name == "signed_search" {
        return false;
    }
    // On such names `fold` lower-cases, maps `.` and `-` to `_`, and trims
    // the outer `_`s: the outer non-alphanumerics.
    let core = name.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    ["search", "signed_search"].iter().any(|target| {
        core.len() == target.len()
            && core.bytes().zip(target.bytes()).all(|(a, t)| {
                if a.is_ascii_alphanumeric() {
                    a.to_ascii_lowercase() == t
                } else {
                    t == b'_'
                }
            })
    })
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn escapes_well_formed(raw: &str) -> bool {
    if !raw.contains('%') {
        return true;
    }
    let b = raw.as_bytes();
    b.iter().enumerate().all(|(i, &c)| {
        c != b'%'
            || (b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    })
}

fn valid_field(f: &str) -> bool {
    !f.is_empty()
        && f.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
}

/// The parsed `search` of a signed-search request.
#[derive(Debug, PartialEq, Eq)]
pub struct Search<'q> {
    /// The decoded search value's pairs, in order.
    pub pairs: Vec<(&'q str, &'q str)>,
}

/// Checks the query shape and returns the `search` and `signed_search` values
/// (decoded; borrowed when there was nothing to decode). `signed_search` may
/// be absent (the scheme then has no credential).
pub fn extract(query: &str) -> Result<(Cow<'_, str>, Option<Cow<'_, str>>), QueryError> {
    // One split, kept on the stack: the count is judged before any parameter.
    let mut raws = [""; MAX_PARAMS];
    let mut n = 0;
    for raw in raw_params(query) {
        if n == MAX_PARAMS {
            return Err(QueryError::TooManyParams);
        }
        raws[n] = raw;
        n += 1;
    }
    let mut search = None;
    let mut signed = None;
    for p in raws[..n].iter().copied().map(Param::new) {
        check_param(&p)?;
        if p.name.starts_with("search[") || p.name.starts_with("signed_search[") {
            return Err(QueryError::ArrayName);
        }
        if !valid_name(&p.name) {
            return Err(QueryError::BadName);
        }
        if lookalike(&p.name) {
            return Err(QueryError::LookalikeName);
        }
        match &*p.name {
            "search" if search.is_some() => return Err(QueryError::SearchCount),
            "search" => search = Some(p.value()),
            "signed_search" if signed.is_some() => return Err(QueryError::SignedSearchCount),
            "signed_search" => signed = Some(p.value()),
            _ => {}
        }
    }
    let search = search.ok_or(QueryError::SearchCount)?;
    Ok((search, signed))
}

/// Whether a field can name a signed-search subject.
pub fn is_subject_field(f: &str) -> bool {
    f.eq_ignore_ascii_case("customer.email")
        || f.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("meta."))
}

/// Parses a decoded `search` value into pairs, refusing malformed ones and,
/// when `allowed` is given, fields outside it. Fields for which `always`
/// holds pass the allow-list here (the signed one is only known after the
/// token is verified; see [`bind`]).
pub fn parse_search<'q>(
    value: &'q str,
    allowed: Option<&[String]>,
    always: impl Fn(&str) -> bool,
) -> Result<Search<'q>, QueryError> {
    let mut pairs = Vec::new();
    for pair in value.split(';') {
        if pair.is_empty() {
            return Err(QueryError::EmptyPair);
        }
        let (field, v) = pair.split_once(':').ok_or(QueryError::NoColon)?;
        if !valid_field(field) {
            return Err(QueryError::FieldName);
        }
        if v.contains('%') || v.chars().any(char::is_control) {
            return Err(QueryError::BadSearchValue);
        }
        if let Some(allowed) = allowed {
            if !always(field) && !allowed.iter().any(|a| a == field) {
                return Err(QueryError::FieldNotAllowed);
            }
        }
        pairs.push((field, v));
    }
    Ok(Search { pairs })
}

/// Whether a subject value can stand in a `search` pair exactly as signed:
/// not empty, not padded, no `;` (pair separator), `*` (wildcard), `%`
/// (a second decoding) or control character.
pub fn searchable_claim(claim: &str) -> bool {
    !claim.is_empty()
        && claim.trim() == claim
        && !claim.contains([';', '*', '%'])
        && !claim.chars().any(char::is_control)
}

/// Binds the signed `field = claim` to a parsed search. Any other subject
/// field must be in `allowed` (when given).
pub fn bind(
    search: &Search<'_>,
    field: &str,
    claim: &str,
    allowed: Option<&[String]>,
) -> Result<(), BindError> {
    if !searchable_claim(claim) {
        return Err(BindError::UnsearchableClaim);
    }
    let mut found = 0;
    for (f, v) in &search.pairs {
        if f.eq_ignore_ascii_case(field) {
            if *f != field || *v != claim {
                return Err(BindError::OtherValue);
            }
            found += 1;
        } else if is_subject_field(f) && allowed.is_some_and(|a| !a.iter().any(|x| x == f)) {
            return Err(BindError::FieldNotAllowed);
        }
    }
    match found {
        0 => Err(BindError::Absent),
        1 => Ok(()),
        _ => Err(BindError::Repeated),
    }
}

/// The query re-serialized from its decoded parameters, without those named
/// in `names`: what the upstream receives, so that no backend can split it
/// differently (no raw `;`, no malformed escape). `None` when nothing remains.
pub fn canonical(query: &str, names: &[&str]) -> Option<String> {
    let mut out = form_urlencoded::Serializer::new(String::new());
    let mut any = false;
    for p in iter_params(query).filter(|p| !names.contains(&&*p.name)) {
        out.append_pair(&p.name, &p.value());
        any = true;
    }
    any.then(|| out.finish())
}

/// The raw query without the parameters whose folded name (see [`fold`]) is
/// in `names`, other bytes untouched. `None` when nothing remains.
pub fn without(query: &str, names: &[&str]) -> Option<String> {
    let kept: Vec<&str> = params(query)
        .into_iter()
        .filter(|p| !names.contains(&fold(&p.name).as_str()))
        .map(|p| p.raw)
        .collect();
    (!kept.is_empty()).then(|| kept.join("&"))
}

/// Whether a parameter of `query` is a method override (`_method`, as a
/// lenient backend reads the name), in each `;` piece too: some backends
/// split parameters there.
pub fn names_method_override(query: &str) -> bool {
    query.split(['&', ';']).any(|piece| {
        // Cheap first: only a name that spells the word out, or hides
        // letters behind an escape, is decoded.
        let name = piece.split('=').next().unwrap_or("").as_bytes();
        (name.contains(&b'%') || name.windows(6).any(|w| w.eq_ignore_ascii_case(b"method")))
            && form_urlencoded::parse(piece.as_bytes())
                .next()
                .is_some_and(|(name, _)| is_method_override(&name))
    })
}

/// `_method` as a lenient backend reads a (decoded) name: any case, any
/// number of leading underscores, leading spaces dropped and `.`/` ` read as
/// `_` (PHP), cut at `[` (`_method[]`).
fn is_method_override(name: &str) -> bool {
    // PHP cuts a name at NUL.
    let name = name.split('\0').next().unwrap_or("");
    let base = name.trim_start().split('[').next().unwrap_or("");
    let mapped: String = base
        .chars()
        .map(|c| if matches!(c, '.' | ' ') { '_' } else { c })
        .collect();
    mapped.starts_with('_')
        && mapped
            .trim_start_matches('_')
            .eq_ignore_ascii_case("method")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_override_names() {
        for n in [
            "_method",
            "_METHOD",
            "__method",
            ".method",
            " _method",
            "_method[]",
            "._method",
            "_method\0x",
        ] {
            assert!(is_method_override(n), "{n}");
        }
        for n in ["method", "_methods", "x_method"] {
            assert!(!is_method_override(n), "{n}");
        }
        for q in [
            "a=1&_method=DELETE",
            "a=1;_method=PUT",
            "%5Fmethod=x",
            "_%6Dethod=x",
            "+_method=x",
        ] {
            assert!(names_method_override(q), "{q}");
        }
        for q in ["", "method=x", "a=_method", "x_method=1", "a=%20"] {
            assert!(!names_method_override(q), "{q}");
        }
    }

    fn search_of(q: &str) -> String {
        extract(q).unwrap().0.into_owned()
    }

    #[test]
    fn the_vendor_example_parses_and_binds() {
        let (s, t) =
            extract("search=customer.email:marty@example.com;state:confirmed&signed_search=abc")
                .unwrap();
        assert_eq!(t.as_deref(), Some("abc"));
        let parsed = parse_search(&s, None, is_subject_field).unwrap();
        assert_eq!(
            parsed.pairs,
            [
                ("customer.email", "marty@example.com"),
                ("state", "confirmed")
            ]
        );
        assert_eq!(
            bind(&parsed, "customer.email", "marty@example.com", None),
            Ok(())
        );
    }

    #[test]
    fn values_are_form_decoded_exactly_once() {
        assert_eq!(
            search_of("search=customer.email%3Aa%2Bb%40x.io&signed_search=t"),
            "customer.email:a+b@x.io"
        );
        assert_eq!(
            search_of("search=meta.id:a+b&signed_search=t"),
            "meta.id:a b"
        );
        assert_eq!(
            search_of("search=meta.id:%2541&signed_search=t"),
            "meta.id:%41"
        );
        assert_eq!(search_of("%73earch=x:1&signed_search=t"), "x:1");
    }

    #[test]
    fn duplicate_and_array_parameters_are_malformed() {
        assert_eq!(
            extract("search=a:1&search=b:2&signed_search=t"),
            Err(QueryError::SearchCount)
        );
        assert_eq!(
            extract("search=a:1&%73earch=b:2"),
            Err(QueryError::SearchCount)
        );
        assert_eq!(extract("signed_search=t"), Err(QueryError::SearchCount));
        assert_eq!(
            extract("search=a:1&signed_search=t&signed_search=u"),
            Err(QueryError::SignedSearchCount)
        );
        assert_eq!(
            extract("search[]=a:1&signed_search=t"),
            Err(QueryError::ArrayName)
        );
        assert_eq!(
            extract("search=a:1&search%5B0%5D=b:1"),
            Err(QueryError::ArrayName)
        );
    }

    #[test]
    fn a_parameter_hidden_behind_a_semicolon_is_malformed() {
        assert_eq!(
            extract("search=customer.email:me@x.io&x=1;search=customer.email:victim@x.io&signed_search=t"),
            Err(QueryError::HiddenParameter)
        );
        assert_eq!(
            extract("search=customer.email:me@x.io;search=customer.email:v@x.io&signed_search=t"),
            Err(QueryError::HiddenParameter)
        );
        // A `;` between pairs without `=` is the grammar itself.
        assert!(extract("search=customer.email:me@x.io;state:confirmed&signed_search=t").is_ok());
    }

    #[test]
    fn malformed_pairs_are_refused() {
        assert_eq!(
            parse_search("a:1;;b:2", None, |_| false).unwrap_err(),
            QueryError::EmptyPair
        );
        assert_eq!(
            parse_search("a:1;", None, |_| false).unwrap_err(),
            QueryError::EmptyPair
        );
        assert_eq!(
            parse_search("a", None, |_| false).unwrap_err(),
            QueryError::NoColon
        );
        assert_eq!(
            parse_search("a b:1", None, |_| false).unwrap_err(),
            QueryError::FieldName
        );
        assert_eq!(
            parse_search(":1", None, |_| false).unwrap_err(),
            QueryError::FieldName
        );
        let allowed = vec!["state".to_string()];
        assert!(parse_search("customer.email:x;state:y", Some(&allowed), is_subject_field).is_ok());
        assert_eq!(
            parse_search(
                "customer.email:x;resource:y",
                Some(&allowed),
                is_subject_field
            )
            .unwrap_err(),
            QueryError::FieldNotAllowed
        );
    }

    #[test]
    fn the_signed_pair_must_be_there_once_with_the_same_bytes() {
        let b = |s: &str, claim: &str| {
            bind(
                &parse_search(s, None, is_subject_field).unwrap(),
                "customer.email",
                claim,
                None,
            )
        };
        assert_eq!(b("state:confirmed", "a@x.io"), Err(BindError::Absent));
        assert_eq!(
            b("customer.email:a@x.io;customer.email:a@x.io", "a@x.io"),
            Err(BindError::Repeated)
        );
        assert_eq!(
            b("customer.email:a@x.io;customer.email:v@x.io", "a@x.io"),
            Err(BindError::OtherValue)
        );
        assert_eq!(
            b("customer.email:A@x.io", "a@x.io"),
            Err(BindError::OtherValue)
        );
        assert_eq!(
            b("customer.email:a@x.io ", "a@x.io"),
            Err(BindError::OtherValue)
        );
        assert_eq!(
            b("customer.email:*", "*"),
            Err(BindError::UnsearchableClaim)
        );
        assert_eq!(
            b("customer.email:a", "a;state:x"),
            Err(BindError::UnsearchableClaim)
        );
        assert_eq!(b("customer.email:a@x.io;state:confirmed", "a@x.io"), Ok(()));
    }

    #[test]
    fn the_credential_is_removed_and_the_rest_kept_byte_for_byte() {
        assert_eq!(
            without(
                "search=customer.email:a%40x.io;state:confirmed&signed_search=t&include=x",
                &["signed_search"]
            )
            .as_deref(),
            Some("search=customer.email:a%40x.io;state:confirmed&include=x")
        );
        assert_eq!(without("signed_search=t", &["signed_search"]), None);
        assert_eq!(
            without("signed%5Fsearch=t&a=1", &["signed_search"]).as_deref(),
            Some("a=1")
        );
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        /// Queries built from the characters that matter to the grammar.
        fn query() -> impl Strategy<Value = String> {
            let piece = prop_oneof![
                Just("search=".to_string()),
                Just("signed_search=t".to_string()),
                Just("customer.email:".to_string()),
                Just("a@x.io".to_string()),
                Just("v@x.io".to_string()),
                Just("state:confirmed".to_string()),
                "[;:=&%+a-z0-9.@\\[\\]]{0,4}",
            ];
            prop::collection::vec(piece, 0..10).prop_map(|v| v.concat())
        }

        proptest! {
            #[test]
            fn every_accepted_query_holds_exactly_one_signed_pair(q in query()) {
                let Ok((search, Some(_))) = extract(&q) else { return Ok(()) };
                let Ok(parsed) = parse_search(&search, None, is_subject_field) else { return Ok(()) };
                if bind(&parsed, "customer.email", "a@x.io", None).is_ok() {
                    let signed: Vec<_> = parsed.pairs.iter().filter(|(f, _)| *f == "customer.email").collect();
                    prop_assert_eq!(signed, vec![&("customer.email", "a@x.io")]);
                    // And a `;`-splitting backend cannot find a second search parameter.
                    let hidden = q
                        .split(['&', ';'])
                        .filter(|seg| form_urlencoded::parse(seg.as_bytes()).next().is_some_and(|(n, _)| n == "search"))
                        .count();
                    prop_assert_eq!(hidden, 1);
                }
            }

            #[test]
            fn removing_a_credential_leaves_none_of_it(q in query()) {
                let rest = without(&q, &["signed_search"]).unwrap_or_default();
                prop_assert!(params(&rest).iter().all(|p| p.name != "signed_search"));
            }
        }
    }

    #[test]
    fn names_backends_would_fold_into_search_are_refused() {
        for q in [
            "search=a:1&signed_search=t&+search=b:2",
            "search=a:1&signed_search=t&search%00=b:2",
            "search=a:1&signed_search=t&search]=b:2",
            "search=a:1&signed_search=t&Search=b:2",
            "search=a:1&signed.search=t",
            "search=a:1&signed-search=t",
        ] {
            assert!(
                matches!(
                    extract(q),
                    Err(QueryError::LookalikeName | QueryError::BadName)
                ),
                "{q}: {:?}",
                extract(q)
            );
        }
        assert_eq!(fold(" Signed.Search\0x"), "signed_search");
        assert_eq!(fold("search[]"), "search");
    }

    #[test]
    fn escapes_counts_and_values_are_checked() {
        let many = "a=1&".repeat(MAX_PARAMS) + "search=a:1&signed_search=t";
        assert_eq!(extract(&many), Err(QueryError::TooManyParams));
        assert_eq!(
            extract("search=a:1%zz&signed_search=t"),
            Err(QueryError::BadEscape)
        );
        assert_eq!(
            extract("search=a:1&x=%00&signed_search=t"),
            Err(QueryError::ControlChar)
        );
        assert_eq!(
            parse_search(
                "customer.email:a;state:x%3Bcustomer.email:v",
                None,
                is_subject_field
            )
            .unwrap_err(),
            QueryError::BadSearchValue
        );
    }

    #[test]
    fn subject_fields_are_compared_without_case() {
        let p = parse_search(
            "customer.email:a@x.io;Customer.Email:v@x.io",
            None,
            is_subject_field,
        )
        .unwrap();
        assert_eq!(
            bind(&p, "customer.email", "a@x.io", None),
            Err(BindError::OtherValue)
        );
        let p = parse_search("customer.email:a@x.io;meta.id:1", None, is_subject_field).unwrap();
        let allowed = vec!["state".to_string()];
        assert_eq!(
            bind(&p, "customer.email", "a@x.io", Some(&allowed)),
            Err(BindError::FieldNotAllowed)
        );
        let p = parse_search("customer.email: a@x.io", None, is_subject_field).unwrap();
        assert_eq!(
            bind(&p, "customer.email", " a@x.io", None),
            Err(BindError::UnsearchableClaim)
        );
    }

    #[test]
    fn the_forwarded_query_is_reserialized_without_raw_separators() {
        assert_eq!(
            canonical(
                "search=state:confirmed;customer.email:a%40x.io&signed_search=t&limit=5",
                &["signed_search"]
            )
            .as_deref(),
            Some("search=state%3Aconfirmed%3Bcustomer.email%3Aa%40x.io&limit=5")
        );
        assert_eq!(canonical("signed_search=t", &["signed_search"]), None);
    }

    /// The lazy decoding and the rewritten `fold` (d741984) pinned to what
    /// they replaced: `form_urlencoded::parse` and the collect-then-trim fold.
    mod equivalences {
        use super::super::*;
        use proptest::prelude::*;

        /// The fold before d741984, verbatim.
        fn old_fold(name: &str) -> String {
            let name = name.split('\0').next().unwrap_or("").trim_start();
            let mapped: String = name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_lowercase()
                    } else {
                        '_'
                    }
                })
                .collect();
            mapped.trim_matches('_').to_string()
        }

        /// Raw query text rich in what decoding cares about: `+`, `%` with
        /// zero, one or two hex digits, escapes of non-UTF-8 bytes (lone
        /// continuation bytes, truncated sequences), `=`, `&`, NUL, non-ASCII.
        fn raw_text() -> impl Strategy<Value = String> {
            let piece = prop_oneof![
                Just("+".to_string()),
                Just("=".to_string()),
                Just("&".to_string()),
                Just("%".to_string()),
                Just("%%".to_string()),
                Just("%00".to_string()),
                Just("%2B".to_string()),
                Just("%3d".to_string()),
                Just("%26".to_string()),
                Just("%C3%A9".to_string()),
                Just("%E2%82".to_string()),
                Just("%F0%9F%98%80".to_string()),
                Just("\u{e9}".to_string()),
                Just("\u{1F600}".to_string()),
                "%[0-9a-fA-FgGzZ+%=]{0,2}",
                "%[89a-fA-F][0-9a-fA-F]",
                "[a-z0-9_.\\[\\]; ]{1,4}",
                any::<char>().prop_map(String::from),
            ];
            prop::collection::vec(piece, 0..12).prop_map(|v| v.concat())
        }

        /// Names with what `fold` and `squash` treat specially: NUL, leading
        /// Unicode whitespace, `_` and other separators, non-ASCII letters
        /// whose case mapping is ASCII or changes length (`İ`, the Kelvin
        /// sign, long s).
        fn name_text() -> impl Strategy<Value = String> {
            let piece = prop_oneof![
                Just("\0".to_string()),
                Just("_".to_string()),
                Just("__".to_string()),
                Just("-".to_string()),
                Just(" ".to_string()),
                Just("\u{3000}".to_string()),
                Just("\u{a0}".to_string()),
                Just("\t".to_string()),
                Just("\u{130}".to_string()),
                Just("\u{212a}".to_string()),
                Just("\u{df}".to_string()),
                Just("\u{17f}".to_string()),
                "[A-Za-z0-9]{1,4}",
                any::<char>().prop_map(String::from),
            ];
            prop::collection::vec(piece, 0..10).prop_map(|v| v.concat())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(4096))]

            /// Every parameter `params` yields has the name and value
            /// `form_urlencoded::parse` yields for the same raw text, in
            /// the same order (both split on `&` and skip empty pieces;
            /// the name is before the first `=`, the value after it).
            #[test]
            fn params_decode_as_form_urlencoded(q in raw_text()) {
                let ours: Vec<(String, String)> = params(&q)
                    .iter()
                    .map(|p| (p.name.to_string(), p.value().into_owned()))
                    .collect();
                let theirs: Vec<(String, String)> = form_urlencoded::parse(q.as_bytes())
                    .map(|(n, v)| (n.into_owned(), v.into_owned()))
                    .collect();
                prop_assert_eq!(ours, theirs);
            }

            /// `decode` of any text equals form_urlencoded's decoding of it
            /// as a name (text without `&` or `=`), arbitrary strings too.
            #[test]
            fn decode_is_form_urlencoded(s in prop_oneof![raw_text(), any::<String>()]) {
                let s: String = s.chars().filter(|c| *c != '&' && *c != '=').collect();
                let theirs = form_urlencoded::parse(s.as_bytes())
                    .next()
                    .map(|(n, _)| n.into_owned())
                    .unwrap_or_default();
                prop_assert_eq!(decode(&s).into_owned(), theirs);
            }

            #[test]
            fn fold_is_the_old_fold(s in prop_oneof![name_text(), any::<String>()]) {
                prop_assert_eq!(fold(&s), old_fold(&s));
            }

            /// The one-pass `squash` (d741984) is the old `fold(x).replace('_', "")`.
            #[test]
            fn squash_is_old_fold_without_underscores(s in prop_oneof![name_text(), any::<String>()]) {
                prop_assert_eq!(crate::auth::squash(&s), old_fold(&s).replace('_', ""));
            }

            /// `lookalike` is the check `extract` made with an allocated
            /// fold, on every name `extract` lets it see.
            #[test]
            fn lookalike_is_the_allocated_fold_check(
                s in prop_oneof![
                    "[A-Za-z0-9_.-]{1,16}",
                    "[_.-]{0,3}(search|SEARCH|Search|signed|SIGNED)[_.-]{0,3}(search|Search|seArch)?[_.-]{0,3}",
                ]
            ) {
                prop_assume!(valid_name(&s));
                let folded = old_fold(&s);
                let old = (folded == "search" || folded == "signed_search") && s != folded;
                prop_assert_eq!(lookalike(&s), old, "{}", s);
            }

            /// The memchr split is `split('&')` without empty pieces, and
            /// the blockwise byte test is `any`, on texts of every length.
            #[test]
            fn raw_params_and_any_byte_are_the_plain_versions(q in raw_text(), pad in 0usize..70) {
                let padded = format!("{}{q}", "a&".repeat(pad));
                let ours: Vec<&str> = raw_params(&padded).collect();
                let theirs: Vec<&str> = padded.split('&').filter(|s| !s.is_empty()).collect();
                prop_assert_eq!(ours, theirs);
                let hit = |b: u8| matches!(b, b';' | b'%' | 0..=0x1f | 0x7f..);
                prop_assert_eq!(any_byte(padded.as_bytes(), hit), padded.bytes().any(hit));
            }

            /// The one-pass `check_param` is the three checks it begins with
            /// a shortcut for.
            #[test]
            fn check_param_shortcut_changes_nothing(q in raw_text()) {
                for p in params(&q) {
                    let old = if hides_parameter(p.raw) {
                        Err(QueryError::HiddenParameter)
                    } else if !escapes_well_formed(p.raw) {
                        Err(QueryError::BadEscape)
                    } else if p.value().chars().any(char::is_control) {
                        Err(QueryError::ControlChar)
                    } else {
                        Ok(())
                    };
                    prop_assert_eq!(check_param(&p), old, "{}", p.raw);
                }
            }
        }
    }
}
