//! Timekit action links: the configured actions, the upstream call each one
//! becomes, where a link may redirect to, and minting links for listings.
//!
//! A link is `<public_base><link_path>?signature=<JWT>`, the path being
//! `/v2/bookings/{id}/external_action/{action}` unless configured otherwise.
//! Minted tokens carry `booking_id`, `action`, `app_slug`, the customer's
//! subject claim, `iat`, `exp` and a random `jti`.

use std::{collections::HashMap, time::Duration};

use http::Method;
use serde_json::{Map, Value};
use url::Url;

use crate::auth::Apps;

/// Longest booking id accepted in a path or claim.
pub const MAX_BOOKING_ID: usize = 128;

/// Booking ids travel in paths unescaped, so they are limited to URL
/// unreserved characters (no `/`, `%`, `?`, `#` or anything a normalizer changes).
pub fn valid_booking_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_BOOKING_ID
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'))
}

/// A path with `{id}` and `{action}` placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate(String);

impl PathTemplate {
    /// `template` must start with `/` and contain `{id}`; `{action}` is optional.
    pub fn parse(template: &str) -> Result<Self, String> {
        if !template.starts_with('/') {
            return Err("must start with '/'".into());
        }
        if !template.contains("{id}") {
            return Err("must contain {id}".into());
        }
        let rest = template.replace("{id}", "x").replace("{action}", "x");
        if rest.contains(['{', '}', '?', '#', '%']) {
            return Err("only {id} and {action} may be substituted; no query or escapes".into());
        }
        match crate::path::normalize(&rest) {
            Ok(n) if n == rest => Ok(Self(template.to_string())),
            _ => Err("must be a normalized path".into()),
        }
    }

    /// Fills the placeholders; `id` and `action` are already known to be
    /// unreserved characters only.
    pub fn render(&self, id: &str, action: &str) -> String {
        self.0.replace("{id}", id).replace("{action}", action)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One action a link may carry.
#[derive(Debug)]
pub struct Action {
    pub name: String,
    /// Methods the link itself is accepted with (a browser follows it with GET).
    pub methods: Vec<Method>,
    /// The upstream call it becomes.
    pub upstream_method: Method,
    pub upstream_path: PathTemplate,
    pub single_use: bool,
    /// Lifetime of links scopegate mints; also how long a single-use mark of a
    /// token without `exp` is kept.
    pub ttl: Duration,
    /// Refuse tokens without `exp` (vendor-minted links carry none).
    pub require_exp: bool,
    /// Origins `redirect` may point to; falls back to the global list.
    pub redirect_origins: Option<Vec<url::Origin>>,
}

/// How scopegate finds bookings in a listing and which actions each allows.
#[derive(Debug)]
pub struct ListingSettings {
    /// JSON pointer to the bookings array (or a single booking object).
    pub pointer: String,
    pub max_bytes: usize,
    /// Larger listings pass through without links (each link costs an HMAC).
    pub max_bookings: usize,
    /// Forward `include=customer_action_links` to the upstream too.
    pub forward_include: bool,
    pub id_field: String,
    pub state_field: String,
    pub possible_actions_field: String,
    /// State → actions, used when a booking has no `possible_actions`.
    pub state_actions: HashMap<String, Vec<String>>,
}

/// Everything about action links, compiled from `[action_links]` and `[[action]]`.
#[derive(Debug)]
pub struct ActionLinks {
    pub actions: Vec<Action>,
    /// Scheme, host and optional path prefix of generated links; without it,
    /// listings are not enriched.
    pub public_base: Option<String>,
    pub link_path: PathTemplate,
    pub redirect_origins: Vec<url::Origin>,
    pub listing: ListingSettings,
}

impl Default for ActionLinks {
    fn default() -> Self {
        Self {
            actions: Vec::new(),
            public_base: None,
            link_path: PathTemplate("/v2/bookings/{id}/external_action/{action}".into()),
            redirect_origins: Vec::new(),
            listing: ListingSettings {
                pointer: "/data".into(),
                max_bytes: 1024 * 1024,
                max_bookings: 500,
                forward_include: false,
                id_field: "id".into(),
                state_field: "state".into(),
                possible_actions_field: "possible_actions".into(),
                state_actions: HashMap::from([(
                    "confirmed".to_string(),
                    vec![
                        "cancel_by_customer".to_string(),
                        "reschedule_by_customer".to_string(),
                    ],
                )]),
            },
        }
    }
}

/// Parses an origin for the allow-list: `scheme://host[:port]`, nothing more.
pub fn parse_origin(v: &str) -> Result<url::Origin, String> {
    let u = Url::parse(v).map_err(|e| format!("{v:?} is not a URL: {e}"))?;
    if !matches!(u.scheme(), "https" | "http") {
        return Err(format!("{v:?} must be an http or https origin"));
    }
    if u.path() != "/" || u.query().is_some() || u.fragment().is_some() || !u.username().is_empty()
    {
        return Err(format!(
            "{v:?} must be an origin only (scheme, host, port), e.g. \"https://shop.example.com\""
        ));
    }
    Ok(u.origin())
}

/// The URL a `redirect` parameter may send the browser to: absolute http(s),
/// no credentials, at most 2 KiB, and of an allowed origin. Returned in the
/// URL parser's serialization, which is what the `Location` header carries.
pub fn check_redirect(raw: &str, allowed: &[url::Origin]) -> Option<Url> {
    if raw.len() > 2048 || raw.chars().any(|c| c.is_control() || c == '\\') {
        return None;
    }
    let u = Url::parse(raw).ok()?;
    let ok = matches!(u.scheme(), "https" | "http")
        && u.username().is_empty()
        && u.password().is_none()
        && allowed.contains(&u.origin());
    ok.then_some(u)
}

impl ActionLinks {
    pub fn get(&self, name: &str) -> Option<&Action> {
        self.actions.iter().find(|a| a.name == name)
    }

    /// Whether listings can be enriched at all.
    pub fn can_mint(&self) -> bool {
        self.public_base.is_some() && !self.actions.is_empty()
    }

    /// The origins a redirect of `action` may go to.
    pub fn origins<'a>(&'a self, action: &'a Action) -> &'a [url::Origin] {
        action
            .redirect_origins
            .as_deref()
            .unwrap_or(&self.redirect_origins)
    }

    /// A signed link for one action on one booking, for one customer.
    pub fn mint(&self, apps: &Apps, link: &Link<'_>, now: u64) -> Result<String, MintLinkError> {
        let Link {
            app,
            booking_id,
            action,
            subject,
            ttl,
        } = *link;
        if !valid_booking_id(booking_id) {
            return Err(MintLinkError::BookingId);
        }
        let base = self.public_base.as_deref().unwrap_or("");
        let mut claims = Map::new();
        claims.insert("booking_id".into(), booking_id.into());
        claims.insert("action".into(), action.name.as_str().into());
        if let Some((field, value)) = subject {
            claims.insert(field.into(), value.into());
        }
        let ttl = ttl.unwrap_or(action.ttl).as_secs();
        claims.insert("iat".into(), now.into());
        claims.insert("exp".into(), now.saturating_add(ttl).into());
        claims.insert(
            "jti".into(),
            Value::String(format!("{:032x}", rand::random::<u128>())),
        );
        let token = apps.mint(app, claims, now)?;
        let path = self.link_path.render(booking_id, &action.name);
        Ok(format!("{base}{path}?signature={token}"))
    }
}

/// What one link is for.
#[derive(Clone, Copy)]
pub struct Link<'a> {
    pub app: &'a str,
    pub booking_id: &'a str,
    pub action: &'a Action,
    /// The customer's claim (`customer.email` or `meta.<name>`) and value.
    pub subject: Option<(&'a str, &'a str)>,
    /// Default: the action's `ttl`.
    pub ttl: Option<Duration>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MintLinkError {
    #[error("booking id must be 1-{MAX_BOOKING_ID} characters of [A-Za-z0-9._~-]")]
    BookingId,
    #[error(transparent)]
    App(#[from] crate::auth::apps::MintError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_follow_only_allowed_origins() {
        let allowed = vec![parse_origin("https://shop.example.com").unwrap()];
        let ok = check_redirect("https://shop.example.com/done?x=1", &allowed).unwrap();
        assert_eq!(ok.as_str(), "https://shop.example.com/done?x=1");
        assert!(check_redirect("https://shop.example.com:443/a", &allowed).is_some());
        for bad in [
            "https://evil.example/",
            "http://shop.example.com/",
            "https://shop.example.com.evil.example/",
            "https://shop.example.com@evil.example/",
            "https://user@shop.example.com/",
            "//evil.example/",
            "/relative",
            "javascript:alert(1)",
            "https:\\\\evil.example",
            "https://shop.example.com/\r\nSet-Cookie: a=b",
            "https://shop.example.com:8443/",
            "",
        ] {
            assert!(check_redirect(bad, &allowed).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn origins_must_be_bare() {
        assert!(parse_origin("https://a.example").is_ok());
        assert!(parse_origin("https://a.example/").is_ok());
        assert!(parse_origin("https://a.example/path").is_err());
        assert!(parse_origin("ftp://a.example").is_err());
        assert!(parse_origin("a.example").is_err());
    }

    #[test]
    fn booking_ids_are_unreserved_only() {
        assert!(valid_booking_id("58190fc6-1ec0-4ebb-b627-7ce6aa9fc703"));
        for bad in ["", ".", "..", "a/b", "a%2F", "a b", "a?b", "a#b", "ä"] {
            assert!(!valid_booking_id(bad), "{bad:?}");
        }
        assert!(!valid_booking_id(&"a".repeat(MAX_BOOKING_ID + 1)));
    }

    #[test]
    fn path_templates_substitute_only_known_placeholders() {
        let t = PathTemplate::parse("/v2/bookings/{id}/{action}").unwrap();
        assert_eq!(t.render("b1", "cancel"), "/v2/bookings/b1/cancel");
        assert!(PathTemplate::parse("v2/{id}").is_err());
        assert!(PathTemplate::parse("/v2/bookings").is_err());
        assert!(PathTemplate::parse("/v2/{id}/{other}").is_err());
        assert!(PathTemplate::parse("/v2/{id}?x=1").is_err());
        assert!(PathTemplate::parse("/v2/../{id}").is_err());
    }
}
