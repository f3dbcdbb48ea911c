//! `[listen.tls]` and the TLS settings of `https` upstreams: every file is
//! read and checked at load (so `scopegate check` and a reload see what a
//! start would), and a problem names the key path and the file, never the
//! file's contents.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use super::{raw, Checker};
use crate::tls::{self, FileError, ListenTls, MinVersion, Part, Roots};

/// A `*_file` path, relative ones against the config file's directory.
fn resolve(c: &Checker, p: &Path) -> PathBuf {
    match &c.base {
        Some(b) if p.is_relative() => b.join(p),
        _ => p.to_path_buf(),
    }
}

/// Records `e` under `cert_key` or `key_key`, whichever file it is about.
fn report(c: &mut Checker, e: FileError, cert_key: &str, key_key: &str) {
    let key = match e.part {
        Part::Cert => cert_key,
        Part::Key => key_key,
    };
    c.err(key, e.message);
}

pub(super) fn compile_listen(
    c: &mut Checker,
    raw: Option<&raw::RawListenTls>,
) -> Option<ListenTls> {
    let raw = raw?;
    let min = match raw.min_version.as_deref() {
        None | Some("1.2") => MinVersion::Tls12,
        Some("1.3") => MinVersion::Tls13,
        Some(other) => {
            c.err(
                "listen.tls.min_version",
                format!("unknown version {other:?} (expected \"1.2\" or \"1.3\")"),
            );
            MinVersion::Tls12
        }
    };
    let (cert, key) = (resolve(c, &raw.cert_file), resolve(c, &raw.key_file));
    ListenTls::load(cert, key, min)
        .map_err(|e| report(c, e, "listen.tls.cert_file", "listen.tls.key_file"))
        .ok()
}

/// The client configuration of an upstream: `Some` for `https`, `None` for
/// `http` (where the TLS settings are an error).
pub(super) fn compile_upstream(
    c: &mut Checker,
    path: &str,
    u: &raw::RawUpstream,
    https: bool,
) -> Option<Arc<rustls::ClientConfig>> {
    if !https {
        for (key, set) in [
            ("ca_file", u.ca_file.is_some()),
            ("client_cert_file", u.client_cert_file.is_some()),
            ("client_key_file", u.client_key_file.is_some()),
        ] {
            if set {
                c.err(format!("{path}.{key}"), "only applies to an https:// url");
            }
        }
        return None;
    }
    let before = c.problems.len();
    let roots = match &u.ca_file {
        None => Some(Roots::WebPki),
        Some(f) => {
            let f = resolve(c, f);
            std::fs::read(&f)
                .map_err(|e| format!("cannot read {}: {}", f.display(), e.kind()))
                .and_then(|pem| tls::parse_certs(&pem, &f).map_err(|e| e.message))
                .map(Roots::Ca)
                .map_err(|m| c.err(format!("{path}.ca_file"), m))
                .ok()
        }
    };
    let (cert_key, key_key) = (
        format!("{path}.client_cert_file"),
        format!("{path}.client_key_file"),
    );
    let client = match (&u.client_cert_file, &u.client_key_file) {
        (None, None) => None,
        (Some(cert), Some(key)) => {
            let (cert, key) = (resolve(c, cert), resolve(c, key));
            tls::load_pair(&cert, &key)
                .map_err(|e| report(c, e, &cert_key, &key_key))
                .ok()
        }
        (Some(_), None) => {
            c.err(key_key, "client_cert_file needs client_key_file");
            None
        }
        (None, Some(_)) => {
            c.err(cert_key, "client_key_file needs client_cert_file");
            None
        }
    };
    if c.problems.len() != before {
        return None;
    }
    let roots = roots?;
    match tls::client_config(roots, client) {
        Ok(config) => Some(Arc::new(config)),
        Err(e) => {
            c.err(format!("{path}.ca_file"), format!("not a usable CA: {e}"));
            None
        }
    }
}
