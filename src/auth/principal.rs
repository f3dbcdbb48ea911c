//! The verified identity a scheme hands to the scope-header writer.

use http::HeaderValue;

/// Longest value scopegate will write into a scope header.
pub const MAX_SCOPE_VALUE: usize = 512;

/// A value proven safe to write into a header: bounded, no control characters,
/// no commas (so no backend can read it as a list). Constructing one is the only
/// way to get a value into a scope header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScopeValue(HeaderValue);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScopeValueError {
    #[error("empty value")]
    Empty,
    #[error("value longer than {MAX_SCOPE_VALUE} bytes")]
    TooLong,
    #[error("control character or comma in value")]
    Forbidden,
}

impl ScopeValue {
    pub fn new(v: &str) -> Result<Self, ScopeValueError> {
        Self::check(v)?;
        // Non-ASCII is allowed (internationalized emails) as opaque UTF-8 bytes.
        HeaderValue::from_bytes(v.as_bytes())
            .map(Self)
            .map_err(|_| ScopeValueError::Forbidden)
    }

    fn shared(v: bytes::Bytes) -> Result<Self, ScopeValueError> {
        HeaderValue::from_maybe_shared(v)
            .map(Self)
            .map_err(|_| ScopeValueError::Forbidden)
    }

    fn check(v: &str) -> Result<(), ScopeValueError> {
        if v.is_empty() {
            return Err(ScopeValueError::Empty);
        }
        if v.len() > MAX_SCOPE_VALUE {
            return Err(ScopeValueError::TooLong);
        }
        let forbidden = if v.is_ascii() {
            v.bytes().any(|b| b.is_ascii_control() || b == b',')
        } else {
            v.chars().any(|c| c.is_control() || c == ',')
        };
        if forbidden {
            return Err(ScopeValueError::Forbidden);
        }
        Ok(())
    }

    /// A list meant as one (`X-Scope-Permissions`): every item a valid
    /// value without commas, joined by `,`.
    pub fn list(items: &[String]) -> Result<Self, ScopeValueError> {
        for item in items {
            Self::new(item)?;
        }
        let joined = items.join(",");
        if joined.len() > 4 * MAX_SCOPE_VALUE {
            return Err(ScopeValueError::TooLong);
        }
        HeaderValue::from_str(&joined)
            .map(Self)
            .map_err(|_| ScopeValueError::Empty)
    }

    pub fn header_value(&self) -> &HeaderValue {
        &self.0
    }
}

/// The customer a Timekit token names: its subject claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subject {
    /// `X-Scope-Subject`: `<field>=<claim>`.
    pub header: ScopeValue,
    /// `X-Scope-Customer-Email`, when the subject is an email: the claim
    /// part of `header`, sharing its bytes.
    pub email: Option<ScopeValue>,
    /// Where `field` ends in `header`.
    field_len: usize,
}

impl Subject {
    /// Checks that the subject can be written into headers.
    pub fn new(field: &str, claim: &str) -> Result<Self, ScopeValueError> {
        let mut text = String::with_capacity(field.len() + 1 + claim.len());
        text.push_str(field);
        text.push('=');
        text.push_str(claim);
        // The claim is part of the checked whole, so only its emptiness is
        // left to check for the email header.
        ScopeValue::check(&text)?;
        let bytes = bytes::Bytes::from(text);
        let email = match field {
            "customer.email" if claim.is_empty() => return Err(ScopeValueError::Empty),
            "customer.email" => Some(ScopeValue::shared(bytes.slice(field.len() + 1..))?),
            _ => None,
        };
        Ok(Self {
            header: ScopeValue::shared(bytes)?,
            email,
            field_len: field.len(),
        })
    }

    fn text(&self) -> &str {
        // Built from two `&str` and `=`.
        std::str::from_utf8(self.header.header_value().as_bytes()).unwrap_or_default()
    }

    /// `customer.email` or `meta.<name>`.
    pub fn field(&self) -> &str {
        self.text().get(..self.field_len).unwrap_or_default()
    }

    /// The claim's value, as signed.
    pub fn claim(&self) -> &str {
        self.text().get(self.field_len + 1..).unwrap_or_default()
    }
}

/// What a verified action link allows: one action on one booking, and the
/// upstream call it becomes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionGrant {
    /// `X-Scope-Booking-Id`.
    pub booking_id: ScopeValue,
    /// `X-Scope-Action`.
    pub action: ScopeValue,
    pub upstream_method: http::Method,
    /// The upstream path, before the route's `upstream_path_prefix`.
    pub upstream_path: String,
    /// Where to send the browser once the upstream accepted the action.
    pub redirect: Option<url::Url>,
    /// The single-use mark to claim before forwarding, and how long to keep it.
    pub once: Option<(crate::store::Key, std::time::Duration)>,
}

/// A customer identity (or a booking grant) proven by a Timekit token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Customer {
    pub credential: super::Scheme,
    /// The app slug, also `X-Scope-App`.
    pub app_slug: String,
    pub app: ScopeValue,
    /// Always present for signed search; optional in action links.
    pub subject: Option<Subject>,
    /// Action links only.
    pub action: Option<Box<ActionGrant>>,
    /// The token's `exp` (unix seconds), when it has one.
    pub expires: Option<u64>,
}

/// Who a request proved to be. Each scheme adds its variant with the fields the
/// header contract needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// A public route: nothing was proven, so nothing is asserted.
    Anonymous,
    Customer(Box<Customer>),
    /// A business reached through an API key (and how far).
    ApiKey(Box<super::api_key::KeyHolder>),
    /// A customer proven by an SSO token or an SSO session.
    Sso(Box<super::sso::SsoCustomer>),
    /// A business proven by a session (or, later, an API key).
    Business {
        credential: super::Scheme,
        /// `X-Scope-Business`.
        business: ScopeValue,
    },
}

impl Principal {
    /// The verified Timekit customer (signed search, action link), if any.
    pub fn customer(&self) -> Option<&Customer> {
        match self {
            Principal::Customer(c) => Some(c),
            Principal::Anonymous
            | Principal::Business { .. }
            | Principal::Sso(_)
            | Principal::ApiKey(_) => None,
        }
    }

    /// The value of `X-Scope-Credential`, if any.
    pub fn credential(&self) -> Option<&'static str> {
        match self {
            Principal::Anonymous => None,
            Principal::Customer(c) => Some(c.credential.name()),
            Principal::Sso(_) => Some(super::Scheme::Sso.name()),
            Principal::ApiKey(_) => Some(super::Scheme::ApiKey.name()),
            Principal::Business { credential, .. } => Some(credential.name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_values_refuse_what_could_split_or_list() {
        assert!(ScopeValue::new("marty@example.com").is_ok());
        assert!(ScopeValue::new("jöns@exämple.se").is_ok());
        assert_eq!(ScopeValue::new(""), Err(ScopeValueError::Empty));
        assert_eq!(
            ScopeValue::new("a\r\nX-Evil: 1"),
            Err(ScopeValueError::Forbidden)
        );
        assert_eq!(ScopeValue::new("a\0b"), Err(ScopeValueError::Forbidden));
        assert_eq!(ScopeValue::new("a,b"), Err(ScopeValueError::Forbidden));
        assert_eq!(
            ScopeValue::new(&"x".repeat(MAX_SCOPE_VALUE + 1)),
            Err(ScopeValueError::TooLong)
        );
    }

    #[test]
    fn a_subject_is_checked_whole_and_keeps_its_parts() {
        let s = Subject::new("customer.email", "jöns@exämple.se").unwrap();
        assert_eq!(
            (s.field(), s.claim()),
            ("customer.email", "jöns@exämple.se")
        );
        assert_eq!(s.header.header_value(), "customer.email=jöns@exämple.se");
        assert_eq!(s.email.unwrap().header_value(), "jöns@exämple.se");
        let m = Subject::new("meta.id", "").unwrap();
        assert_eq!(
            (m.field(), m.claim(), m.email.is_none()),
            ("meta.id", "", true)
        );
        assert_eq!(
            Subject::new("customer.email", ""),
            Err(ScopeValueError::Empty)
        );
        assert_eq!(
            Subject::new("customer.email", "a@b.c,x@y.z"),
            Err(ScopeValueError::Forbidden)
        );
        assert_eq!(
            Subject::new("meta.id", &"x".repeat(MAX_SCOPE_VALUE)),
            Err(ScopeValueError::TooLong)
        );
    }
}
