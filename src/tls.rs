//! TLS with rustls (ring provider only): the public listener's certificate,
//! reloadable without a restart, and the client side toward `https` upstreams.
//!
//! Invariants:
//! - key files are secrets: every error names the file, never its contents
//!   (PEM parser errors, which may quote a line, are not passed on);
//! - a certificate and key replace the served ones only after both parsed and
//!   the key matched the certificate; anything else keeps what is served.

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, OnceLock},
};

use arc_swap::ArcSwap;
use rustls::{
    crypto::CryptoProvider,
    pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer},
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
    ClientConfig, RootCertStore, ServerConfig, SupportedProtocolVersion,
};
use sha2::Digest as _;

/// The one crypto provider of the process (ring).
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    Arc::clone(PROVIDER.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider())))
}

/// The lowest TLS version the public listener accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MinVersion {
    Tls12,
    Tls13,
}

impl MinVersion {
    fn versions(self) -> &'static [&'static SupportedProtocolVersion] {
        static TLS13_ONLY: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];
        match self {
            MinVersion::Tls12 => rustls::ALL_VERSIONS,
            MinVersion::Tls13 => TLS13_ONLY,
        }
    }
}

/// Which of a certificate/key pair a problem is about (the config key path
/// ends in it: `listen.tls.cert_file`, `upstream[0].client_key_file`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Cert,
    Key,
}

/// Why a certificate or key could not be used. Names the file, never its
/// contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    pub part: Part,
    pub message: String,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for FileError {}

fn read(part: Part, path: &Path) -> Result<Vec<u8>, FileError> {
    std::fs::read(path).map_err(|e| FileError {
        part,
        message: format!("cannot read {}: {}", path.display(), e.kind()),
    })
}

/// Every certificate of a PEM file (a chain: leaf first), at least one.
pub fn parse_certs(pem: &[u8], path: &Path) -> Result<Vec<CertificateDer<'static>>, FileError> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(pem).collect();
    match certs {
        Ok(c) if !c.is_empty() => Ok(c),
        _ => Err(FileError {
            part: Part::Cert,
            message: format!(
                "{} holds no valid PEM certificate (expected -----BEGIN CERTIFICATE-----)",
                path.display()
            ),
        }),
    }
}

/// The first private key of a PEM file (PKCS#8, PKCS#1 RSA or SEC1 EC).
pub fn parse_key(pem: &[u8], path: &Path) -> Result<PrivateKeyDer<'static>, FileError> {
    // The parser's own error may quote a line of the file: it is not shown.
    PrivateKeyDer::from_pem_slice(pem).map_err(|_| FileError {
        part: Part::Key,
        message: format!(
            "{} holds no valid PEM private key (PKCS#8, RSA or EC)",
            path.display()
        ),
    })
}

/// Reads and checks a certificate chain and its key.
pub fn load_pair(cert: &Path, key: &Path) -> Result<CertifiedKey, FileError> {
    let cert_pem = read(Part::Cert, cert)?;
    let key_pem = read(Part::Key, key)?;
    pair_from_pem(&cert_pem, cert, &key_pem, key)
}

fn pair_from_pem(
    cert_pem: &[u8],
    cert: &Path,
    key_pem: &[u8],
    key: &Path,
) -> Result<CertifiedKey, FileError> {
    let chain = parse_certs(cert_pem, cert)?;
    let der = parse_key(key_pem, key)?;
    let signing = provider()
        .key_provider
        .load_private_key(der)
        .map_err(|_| FileError {
            part: Part::Key,
            message: format!(
                "{}: the private key is not usable (unsupported type or invalid)",
                key.display()
            ),
        })?;
    let pair = CertifiedKey::new(chain, signing);
    match pair.keys_match() {
        Ok(()) => Ok(pair),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(FileError {
                part: Part::Key,
                message: format!(
                    "the key in {} does not match the certificate in {}",
                    key.display(),
                    cert.display()
                ),
            })
        }
        // The key type cannot tell its public key: nothing to compare.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(pair),
        Err(e) => Err(FileError {
            part: Part::Cert,
            message: format!("{}: the certificate is not usable: {e}", cert.display()),
        }),
    }
}

/// The content hash of a certificate/key pair (never shown).
fn fingerprint(cert_pem: &[u8], key_pem: &[u8]) -> [u8; 32] {
    let mut h = sha2::Sha256::new();
    h.update((cert_pem.len() as u64).to_be_bytes());
    h.update(cert_pem);
    h.update(key_pem);
    h.finalize().into()
}

/// The validated `[listen.tls]`: the files and the pair read from them at load.
#[derive(Clone)]
pub struct ListenTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub min_version: MinVersion,
    key: Arc<CertifiedKey>,
    fingerprint: Option<[u8; 32]>,
}

impl fmt::Debug for ListenTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListenTls")
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .field("min_version", &self.min_version)
            .finish_non_exhaustive()
    }
}

impl ListenTls {
    /// Reads both files and checks that the key matches the certificate.
    pub fn load(
        cert_file: PathBuf,
        key_file: PathBuf,
        min_version: MinVersion,
    ) -> Result<Self, FileError> {
        let cert_pem = read(Part::Cert, &cert_file)?;
        let key_pem = read(Part::Key, &key_file)?;
        let key = pair_from_pem(&cert_pem, &cert_file, &key_pem, &key_file)?;
        Ok(Self {
            fingerprint: Some(fingerprint(&cert_pem, &key_pem)),
            cert_file,
            key_file,
            min_version,
            key: Arc::new(key),
        })
    }
}

/// The public listener's certificate: what every new handshake presents.
/// Replaced by a configuration reload and by the file watcher
/// ([`CertResolver::poll`]); handshakes in progress keep the one they began with.
pub struct CertResolver {
    current: ArcSwap<CertifiedKey>,
    watched: Mutex<Watched>,
}

struct Watched {
    cert_file: PathBuf,
    key_file: PathBuf,
    /// Of the content last acted on (served, or refused and logged);
    /// `None` after a read failure.
    fingerprint: Option<[u8; 32]>,
}

impl fmt::Debug for CertResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CertResolver")
    }
}

/// What one [`CertResolver::poll`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Polled {
    Unchanged,
    Reloaded,
    /// The files changed but cannot be used: the served pair stays.
    Refused(FileError),
}

impl CertResolver {
    pub fn new(tls: &ListenTls) -> Arc<Self> {
        Arc::new(Self {
            current: ArcSwap::new(Arc::clone(&tls.key)),
            watched: Mutex::new(Watched {
                cert_file: tls.cert_file.clone(),
                key_file: tls.key_file.clone(),
                fingerprint: tls.fingerprint,
            }),
        })
    }

    /// Serves the pair a reloaded configuration read (already validated),
    /// and watches its files from now on.
    pub fn replace(&self, tls: &ListenTls) {
        let mut w = self.watched.lock().unwrap_or_else(|p| p.into_inner());
        self.current.store(Arc::clone(&tls.key));
        w.cert_file = tls.cert_file.clone();
        w.key_file = tls.key_file.clone();
        w.fingerprint = tls.fingerprint;
    }

    /// Re-reads the files when their content changed since the last look, and
    /// serves the new pair when it is valid.
    pub fn poll(&self) -> Polled {
        let mut w = self.watched.lock().unwrap_or_else(|p| p.into_inner());
        let read = read(Part::Cert, &w.cert_file)
            .and_then(|c| read(Part::Key, &w.key_file).map(|k| (c, k)));
        let (cert_pem, key_pem) = match read {
            Ok(both) => both,
            Err(e) if w.fingerprint.is_some() => {
                w.fingerprint = None;
                return Polled::Refused(e);
            }
            Err(_) => return Polled::Unchanged,
        };
        let fp = fingerprint(&cert_pem, &key_pem);
        if w.fingerprint == Some(fp) {
            return Polled::Unchanged;
        }
        w.fingerprint = Some(fp);
        match pair_from_pem(&cert_pem, &w.cert_file, &key_pem, &w.key_file) {
            Ok(pair) => {
                self.current.store(Arc::new(pair));
                Polled::Reloaded
            }
            Err(e) => Polled::Refused(e),
        }
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// The protocols offered to clients, preferred first.
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// The public listener's rustls configuration, presenting `resolver`'s pair.
pub fn server_config(resolver: Arc<CertResolver>, min: MinVersion) -> Arc<ServerConfig> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(min.versions())
        .expect("ring supports TLS 1.2 and 1.3")
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// Trust anchors toward an upstream: a configured CA file (only it), or the
/// Mozilla roots of `webpki-roots`.
pub enum Roots {
    WebPki,
    Ca(Vec<CertificateDer<'static>>),
}

/// The rustls client configuration toward an `https` upstream: ALPN
/// `http/1.1` only (the upstream client speaks HTTP/1.1), TLS 1.2 and 1.3,
/// and the client certificate for mTLS when given.
pub fn client_config(
    roots: Roots,
    client_auth: Option<CertifiedKey>,
) -> Result<ClientConfig, rustls::Error> {
    let mut store = RootCertStore::empty();
    match roots {
        Roots::WebPki => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Roots::Ca(certs) => {
            for c in certs {
                store.add(c)?;
            }
        }
    }
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(MinVersion::Tls12.versions())?
        .with_root_certificates(store);
    let mut config = match client_auth {
        Some(pair) => {
            builder.with_client_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(pair)))
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// A client configuration that trusts nothing: the connector of a plain
/// `http` upstream never uses it.
pub fn unused_client_config() -> Arc<ClientConfig> {
    static UNUSED: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    Arc::clone(UNUSED.get_or_init(|| {
        Arc::new(
            ClientConfig::builder_with_provider(provider())
                .with_protocol_versions(MinVersion::Tls12.versions())
                .expect("ring supports TLS 1.2 and 1.3")
                .with_root_certificates(RootCertStore::empty())
                .with_no_client_auth(),
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_never_quote_the_file() {
        let secret = b"-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1tYXRlcmlhbA==!!\n-----END PRIVATE KEY-----\n";
        let e = parse_key(secret, Path::new("/k.pem")).unwrap_err();
        assert_eq!(e.part, Part::Key);
        assert!(e.message.contains("/k.pem"), "{e}");
        assert!(!e.message.contains("c2Vj"), "{e}");
        let e = parse_certs(b"garbage", Path::new("/c.pem")).unwrap_err();
        assert_eq!(e.part, Part::Cert);
    }
}
