//! Validation of the SSO settings: `[sso]` and `[[sso_company]]`.

use super::{raw, Checker};
use crate::auth::{
    sso::{Company, CompanyKey, Handout, Identity, SessionSettings, Sso, Zone},
    ScopeValue,
};

/// An optional header name: `""` turns the carrier off.
fn optional_header(c: &mut Checker, path: &str, v: &str) -> Option<http::HeaderName> {
    if v.is_empty() {
        None
    } else {
        c.header_name(path, v)
    }
}

fn cookie_name_ok(n: &str) -> bool {
    !n.is_empty()
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

pub(super) fn compile(c: &mut Checker, s: &raw::RawSso, raw: &[raw::RawSsoCompany]) -> Sso {
    if s.param.is_empty() || crate::auth::squash(&s.param).is_empty() {
        c.err("sso.param", "must be a parameter name");
    }
    let header = optional_header(c, "sso.header", &s.header);
    let cookie = (!s.cookie.is_empty()).then(|| s.cookie.clone());
    if cookie.as_deref().is_some_and(|n| !cookie_name_ok(n)) {
        c.err("sso.cookie", format!("{:?} is not a cookie name", s.cookie));
    }
    let company_header = optional_header(c, "sso.company_header", &s.company_header);

    let ss = &s.session;
    let handout = match ss.handout.as_str() {
        "none" => None,
        "cookie" => {
            if !cookie_name_ok(&ss.cookie_name) {
                c.err(
                    "sso.session.cookie_name",
                    format!("{:?} is not a cookie name", ss.cookie_name),
                );
            }
            if !ss.cookie_path.starts_with('/')
                || ss
                    .cookie_path
                    .bytes()
                    .any(|b| b == b';' || b.is_ascii_control())
            {
                c.err("sso.session.cookie_path", "must be a path starting with /");
            }
            if Some(&ss.cookie_name) == cookie.as_ref() {
                c.err(
                    "sso.session.cookie_name",
                    "must differ from sso.cookie (the token's own cookie)",
                );
            }
            Some(Handout::Cookie {
                name: ss.cookie_name.clone(),
                path: ss.cookie_path.clone(),
            })
        }
        "header" => c
            .header_name("sso.session.header", &ss.header)
            .map(Handout::Header),
        other => {
            c.err(
                "sso.session.handout",
                format!("unknown handout {other:?} (expected \"none\", \"cookie\" or \"header\")"),
            );
            None
        }
    };
    let session = handout.map(|handout| {
        let idle = c.nonzero("sso.session.idle", ss.idle.0);
        let max_lifetime = c.nonzero("sso.session.max_lifetime", ss.max_lifetime.0);
        if max_lifetime < idle {
            c.err("sso.session.max_lifetime", "must be at least idle");
        }
        SessionSettings {
            handout,
            idle,
            max_lifetime,
        }
    });

    let companies = raw
        .iter()
        .enumerate()
        .filter_map(|(i, r)| company(c, i, r, raw))
        .collect();
    Sso {
        companies,
        param: s.param.clone(),
        header,
        cookie,
        company_param: s.company_param.clone().filter(|p| !p.is_empty()),
        company_header,
        session,
    }
}

fn company(
    c: &mut Checker,
    i: usize,
    r: &raw::RawSsoCompany,
    all: &[raw::RawSsoCompany],
) -> Option<Company> {
    let path = format!("sso_company[{i}]");
    let id_value = ScopeValue::new(&r.company_id)
        .map_err(|e| {
            c.err(
                format!("{path}.company_id"),
                format!("{:?} cannot be sent as a header: {e}", r.company_id),
            )
        })
        .ok();
    if all[..i].iter().any(|o| o.company_id == r.company_id) {
        c.err(
            format!("{path}.company_id"),
            format!("duplicate company id {:?}", r.company_id),
        );
    }
    let mut keys = Vec::new();
    let shorthand =
        r.secure_key.is_some() || r.secure_key_env.is_some() || r.secure_key_file.is_some();
    if shorthand {
        keys.extend(c.secret(
            &path,
            "secure_key",
            &r.secure_key,
            &r.secure_key_env,
            &r.secure_key_file,
        ));
    } else if r.key.is_empty() {
        c.err(
            &path,
            "one of secure_key_env, secure_key_file or secure_key (or a [[sso_company.key]]) is required",
        );
    }
    for (j, k) in r.key.iter().enumerate() {
        keys.extend(c.secret(
            &format!("{path}.key[{j}]"),
            "secure_key",
            &k.secure_key,
            &k.secure_key_env,
            &k.secure_key_file,
        ));
    }
    let identity = match r.identity.as_str() {
        "email" => Identity::Email,
        "reference" => Identity::Reference,
        other => {
            c.err(
                format!("{path}.identity"),
                format!("unknown identity key {other:?} (expected \"email\" or \"reference\")"),
            );
            Identity::Email
        }
    };
    let zone = Zone::parse(&r.timezone).unwrap_or_else(|| {
        c.err(
            format!("{path}.timezone"),
            format!(
                "unknown zone {:?} (expected \"UTC\", an offset such as \"+01:00\", or an IANA name such as \"Europe/London\")",
                r.timezone
            ),
        );
        Zone::UTC
    });
    if r.leeway.0 > std::time::Duration::from_secs(600) {
        c.err(format!("{path}.leeway"), "must be at most 10 minutes");
    }
    if r.accept_legacy {
        c.warnings.push(format!(
            "{path}: accepts legacy SSO tokens, which have no MAC (bits of a token can be flipped); set accept_legacy = false once its website mints v2 tokens"
        ));
    }
    Some(Company {
        id: r.company_id.clone(),
        id_value: id_value?,
        keys: keys
            .iter()
            .map(|k| CompanyKey::new(k.expose(), &r.company_id))
            .collect(),
        identity,
        rules: crate::auth::sso::Rules {
            leeway: r.leeway.0.as_secs() as i64,
            zone,
        },
        accept_legacy: r.accept_legacy,
        forward_names: r.forward_names,
        cors_origins: super::cors_origins(c, &format!("{path}.cors_origins"), &r.cors_origins),
    })
}
