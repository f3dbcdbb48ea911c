//! TLS end to end, with a CA and certificates made by the test (rcgen): the
//! public listener (HTTP/1.1 and h2 chosen by ALPN, X-Forwarded-Proto,
//! plain HTTP refused, the certificate reloaded by a config reload and by the
//! file watcher, an unusable one never served), `https` upstreams (a
//! configured CA, the Mozilla roots, mTLS) and `scopegate check`.

mod common;

use std::{
    convert::Infallible,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use common::{process, Behavior, Gate, Upstream, PUBLIC_ROUTES, RAW_WAIT};
use http::{Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper::{body::Incoming, service::service_fn};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SerialNumber,
};
use rustls::{
    pki_types::{CertificateDer, PrivateKeyDer, ServerName},
    ClientConfig, RootCertStore, ServerConfig,
};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A test CA and a directory for the files made from it.
struct Pki {
    dir: tempfile::TempDir,
    ca: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate (PEM) and its key (PEM, PKCS#8).
struct Leaf {
    cert: String,
    key: String,
}

impl Leaf {
    fn der(&self) -> CertificateDer<'static> {
        use rustls::pki_types::pem::PemObject;
        CertificateDer::from_pem_slice(self.cert.as_bytes()).unwrap()
    }
}

impl Pki {
    fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "scopegate test CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Self {
            dir: tempfile::tempdir().unwrap(),
            ca,
        }
    }

    /// A server certificate for localhost and 127.0.0.1.
    fn server(&self, cn: &str, serial: u64) -> Leaf {
        self.leaf(cn, serial, ExtendedKeyUsagePurpose::ServerAuth)
    }

    fn client(&self, cn: &str) -> Leaf {
        self.leaf(cn, 99, ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn leaf(&self, cn: &str, serial: u64, usage: ExtendedKeyUsagePurpose) -> Leaf {
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.serial_number = Some(SerialNumber::from(serial));
        params.extended_key_usages = vec![usage];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    fn write(&self, name: &str, content: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        path
    }

    fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        roots
    }
}

/// `[listen]` with TLS, `extra` under `[listen.tls]`, one plain upstream and
/// the public routes.
fn gate_toml(up: SocketAddr, cert: &Path, key: &Path, extra_tls: &str) -> String {
    format!(
        r#"
[listen]
address = "127.0.0.1:0"
drain_timeout = "5s"

[listen.tls]
cert_file = {cert:?}
key_file = {key:?}
{extra_tls}

[admin]
address = "127.0.0.1:0"

[[upstream]]
name = "backend"
url = "http://{up}"
connect_timeout = "1s"
response_timeout = "2s"

{PUBLIC_ROUTES}
"#
    )
}

/// A TLS gate in front of a recording upstream, with a fresh CA and cert A.
struct TlsSetup {
    pki: Pki,
    upstream: Upstream,
    gate: Gate,
    config: PathBuf,
    cert_file: PathBuf,
    key_file: PathBuf,
    a: Leaf,
}

impl TlsSetup {
    async fn start(extra_tls: &str) -> Self {
        let pki = Pki::new();
        let a = pki.server("cert-a", 1);
        let cert_file = pki.write("cert.pem", &a.cert);
        let key_file = pki.write("key.pem", &a.key);
        let upstream = Upstream::start(Behavior::Ok).await;
        let toml = gate_toml(upstream.addr, &cert_file, &key_file, extra_tls);
        let config = pki.write("scopegate.toml", &toml);
        let gate = Gate::start(&toml).await;
        Self {
            pki,
            upstream,
            gate,
            config,
            cert_file,
            key_file,
            a,
        }
    }
}

/// What a client saw of one TLS connection.
struct Conn {
    stream: tokio_rustls::client::TlsStream<TcpStream>,
}

impl Conn {
    fn alpn(&self) -> Option<Vec<u8>> {
        self.stream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec)
    }

    fn peer_cert(&self) -> CertificateDer<'static> {
        self.stream.get_ref().1.peer_certificates().unwrap()[0].clone()
    }
}

fn client_config(roots: RootCertStore, alpn: &[&[u8]]) -> ClientConfig {
    let mut c = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    c
}

async fn connect(addr: SocketAddr, config: ClientConfig) -> std::io::Result<Conn> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").unwrap();
    let stream = tokio::time::timeout(
        Duration::from_secs(5),
        TlsConnector::from(Arc::new(config)).connect(name, tcp),
    )
    .await
    .expect("handshake within 5s")?;
    Ok(Conn { stream })
}

/// One GET over a TLS connection, HTTP/2 when ALPN chose h2, else HTTP/1.1.
async fn get_over(conn: Conn, path: &str) -> (Response<Bytes>, Version) {
    let h2 = conn.alpn().as_deref() == Some(b"h2");
    let io = TokioIo::new(conn.stream);
    let resp = if h2 {
        let (mut sender, c) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .unwrap();
        tokio::spawn(c);
        let req = Request::get(format!("https://localhost{path}"))
            .body(Full::<Bytes>::default())
            .unwrap();
        sender.send_request(req).await.unwrap()
    } else {
        let (mut sender, c) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(c);
        let req = Request::get(path)
            .header("host", "localhost")
            .body(Full::<Bytes>::default())
            .unwrap();
        sender.send_request(req).await.unwrap()
    };
    let version = resp.version();
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (Response::from_parts(parts, body), version)
}

/// The end-entity certificate a new handshake with `addr` presents.
async fn presented(addr: SocketAddr, pki: &Pki) -> CertificateDer<'static> {
    connect(addr, client_config(pki.roots(), &[b"http/1.1"]))
        .await
        .expect("handshake")
        .peer_cert()
}

#[tokio::test]
async fn https_end_to_end_over_http1_and_h2_chosen_by_alpn() {
    let t = TlsSetup::start("").await;

    let conn = connect(t.gate.addr, client_config(t.pki.roots(), &[b"http/1.1"]))
        .await
        .unwrap();
    assert_eq!(conn.alpn().as_deref(), Some(&b"http/1.1"[..]));
    let (resp, version) = get_over(conn, "/v2/bookings").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(version, Version::HTTP_11);
    let rec = t.upstream.single();
    assert_eq!(rec.target, "/v2/bookings");
    assert_eq!(rec.one("x-forwarded-proto").as_deref(), Some("https"));
    assert_eq!(rec.one("x-forwarded-host").as_deref(), Some("localhost"));

    let conn = connect(
        t.gate.addr,
        client_config(t.pki.roots(), &[b"h2", b"http/1.1"]),
    )
    .await
    .unwrap();
    assert_eq!(conn.alpn().as_deref(), Some(&b"h2"[..]));
    let (resp, version) = get_over(conn, "/v2/bookings?x=1").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(version, Version::HTTP_2);
    let recs = t.upstream.records();
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[1].target, "/v2/bookings?x=1");
    assert_eq!(recs[1].one("x-forwarded-proto").as_deref(), Some("https"));

    // A client that offers no ALPN still gets HTTP/1.1 (detected).
    let conn = connect(t.gate.addr, client_config(t.pki.roots(), &[]))
        .await
        .unwrap();
    assert_eq!(conn.alpn(), None);
    let (resp, version) = get_over(conn, "/open").await;
    assert_eq!((resp.status(), version), (StatusCode::OK, Version::HTTP_11));

    // A client that does not trust the CA is refused at the handshake.
    let e = connect(t.gate.addr, client_config(RootCertStore::empty(), &[]))
        .await
        .err()
        .expect("untrusted");
    assert!(e.to_string().contains("UnknownIssuer"), "{e}");
    assert_eq!(t.upstream.count(), 3);
}

#[tokio::test]
async fn min_version_1_3_refuses_a_tls_1_2_client() {
    let t = TlsSetup::start(r#"min_version = "1.3""#).await;
    let tls12 = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(t.pki.roots())
        .with_no_client_auth();
    assert!(connect(t.gate.addr, tls12).await.is_err());
    let conn = connect(t.gate.addr, client_config(t.pki.roots(), &[]))
        .await
        .unwrap();
    assert_eq!(
        conn.stream.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    assert_eq!(t.upstream.count(), 0);
}

#[tokio::test]
async fn plain_http_to_the_tls_listener_gets_no_http_response() {
    let t = TlsSetup::start("").await;
    let out = common::raw(
        t.gate.addr,
        b"GET /v2/bookings HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        RAW_WAIT,
    )
    .await;
    assert!(!out.contains("HTTP/1."), "{out:?}");
    assert!(common::statuses(&out).is_empty());
    assert_eq!(t.upstream.count(), 0);
}

#[tokio::test]
async fn reload_replaces_the_certificate_and_an_unusable_one_is_never_served() {
    let t = TlsSetup::start("").await;
    assert_eq!(presented(t.gate.addr, &t.pki).await, t.a.der());

    // Garbage: the reload is refused with the key path, cert A stays.
    std::fs::write(&t.cert_file, "not a certificate").unwrap();
    let e = t.gate.reload(&t.config).unwrap_err().to_string();
    assert!(e.contains("listen.tls.cert_file"), "{e}");
    assert!(e.contains("cert.pem"), "{e}");
    assert_eq!(presented(t.gate.addr, &t.pki).await, t.a.der());

    // A key that is not the certificate's: refused too, naming the key file.
    let b = t.pki.server("cert-b", 2);
    std::fs::write(&t.cert_file, &b.cert).unwrap();
    let e = t.gate.reload(&t.config).unwrap_err().to_string();
    assert!(e.contains("listen.tls.key_file"), "{e}");
    assert!(e.contains("does not match"), "{e}");
    assert!(!e.contains("PRIVATE KEY"), "{e}");
    assert_eq!(presented(t.gate.addr, &t.pki).await, t.a.der());

    // Cert B with its key: new handshakes present B.
    std::fs::write(&t.key_file, &b.key).unwrap();
    t.gate.reload(&t.config).unwrap();
    assert_eq!(presented(t.gate.addr, &t.pki).await, b.der());
    let conn = connect(t.gate.addr, client_config(t.pki.roots(), &[b"h2"]))
        .await
        .unwrap();
    assert_eq!(get_over(conn, "/open").await.0.status(), StatusCode::OK);
}

#[tokio::test]
async fn changed_certificate_files_are_picked_up_without_a_reload() {
    let t = TlsSetup::start("").await;
    assert_eq!(presented(t.gate.addr, &t.pki).await, t.a.der());

    let c = t.pki.server("cert-c", 3);
    std::fs::write(&t.key_file, &c.key).unwrap();
    std::fs::write(&t.cert_file, &c.cert).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(6);
    while presented(t.gate.addr, &t.pki).await != c.der() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the watcher did not serve the new certificate"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Garbage in the key file: after the watcher has seen it, C is still served.
    std::fs::write(&t.key_file, "-----BEGIN PRIVATE KEY-----\nAAAA\n").unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(presented(t.gate.addr, &t.pki).await, c.der());
}

/// A TLS upstream: HTTP/1.1 over rustls, recording who connected.
struct TlsUpstream {
    addr: SocketAddr,
    served: Arc<Mutex<Vec<Served>>>,
}

#[derive(Clone, Debug)]
struct Served {
    sni: Option<String>,
    alpn: Option<Vec<u8>>,
    client_cert: bool,
    target: String,
}

impl TlsUpstream {
    async fn start(pki: &Pki, require_client_cert: bool) -> Self {
        use rustls::pki_types::pem::PemObject;
        let leaf = pki.server("upstream", 50);
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = if require_client_cert {
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(pki.roots()),
                provider(),
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let mut config = builder
            .with_single_cert(
                vec![leaf.der()],
                PrivateKeyDer::from_pem_slice(leaf.key.as_bytes()).unwrap(),
            )
            .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let served = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&served);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, log) = (acceptor.clone(), Arc::clone(&log));
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let (_, session) = tls.get_ref();
                    let who = Served {
                        sni: session.server_name().map(str::to_string),
                        alpn: session.alpn_protocol().map(<[u8]>::to_vec),
                        client_cert: session.peer_certificates().is_some(),
                        target: String::new(),
                    };
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let mut who = who.clone();
                        who.target = req.uri().to_string();
                        log.lock().unwrap().push(who);
                        async {
                            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("tls ok"))))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        Self { addr, served }
    }

    fn served(&self) -> Vec<Served> {
        self.served.lock().unwrap().clone()
    }
}

/// A plain gate whose upstream `backend` is `url` with `settings` added.
async fn gate_to(url: &str, settings: &str) -> Gate {
    Gate::start(&format!(
        r#"
[listen]
address = "127.0.0.1:0"

[[upstream]]
name = "backend"
url = "{url}"
connect_timeout = "2s"
response_timeout = "2s"
{settings}

{PUBLIC_ROUTES}
"#
    ))
    .await
}

#[tokio::test]
async fn https_upstream_with_a_configured_ca() {
    let pki = Pki::new();
    let up = TlsUpstream::start(&pki, false).await;
    let ca = pki.write("ca.pem", &pki.ca_pem());
    let gate = gate_to(
        &format!("https://localhost:{}/base", up.addr.port()),
        &format!("ca_file = {ca:?}"),
    )
    .await;
    let reply = common::get(&gate.url("/v2/bookings?q=1")).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(&reply.body[..], b"tls ok");
    let served = up.served();
    assert_eq!(served.len(), 1);
    assert_eq!(served[0].target, "/base/v2/bookings?q=1");
    assert_eq!(served[0].sni.as_deref(), Some("localhost"));
    assert_eq!(served[0].alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert!(!served[0].client_cert);
}

#[tokio::test]
async fn https_upstream_with_the_default_roots_does_not_trust_the_test_ca() {
    let pki = Pki::new();
    let up = TlsUpstream::start(&pki, false).await;
    let gate = gate_to(&format!("https://localhost:{}", up.addr.port()), "").await;
    let reply = common::get(&gate.url("/v2/bookings")).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_eq!(reply.error_code(), "upstream_unavailable");
    assert!(up.served().is_empty());
}

#[tokio::test]
async fn https_upstream_requiring_a_client_certificate() {
    let pki = Pki::new();
    let up = TlsUpstream::start(&pki, true).await;
    let ca = pki.write("ca.pem", &pki.ca_pem());
    let client = pki.client("scopegate");
    let cert = pki.write("client.pem", &client.cert);
    let key = pki.write("client.key", &client.key);
    let url = format!("https://127.0.0.1:{}", up.addr.port());

    let with = gate_to(
        &url,
        &format!("ca_file = {ca:?}\nclient_cert_file = {cert:?}\nclient_key_file = {key:?}"),
    )
    .await;
    let reply = common::get(&with.url("/v2/bookings")).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let served = up.served();
    assert_eq!(served.len(), 1);
    assert!(served[0].client_cert);
    // An IP address is verified against the certificate but sent as no SNI.
    assert_eq!(served[0].sni, None);

    let without = gate_to(&url, &format!("ca_file = {ca:?}")).await;
    let reply = common::get(&without.url("/v2/bookings")).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_eq!(reply.error_code(), "upstream_unavailable");
    assert_eq!(up.served().len(), 1, "nothing more was served");
}

#[tokio::test]
async fn connect_timeout_bounds_the_upstream_tls_handshake() {
    // Accepts TCP, never answers the ClientHello.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&held);
    tokio::spawn(async move {
        while let Ok((s, _)) = silent.accept().await {
            keep.lock().unwrap().push(s);
        }
    });
    let gate = Gate::start(&format!(
        r#"
[listen]
address = "127.0.0.1:0"

[[upstream]]
name = "backend"
url = "https://127.0.0.1:{}"
connect_timeout = "300ms"
response_timeout = "5s"

{PUBLIC_ROUTES}
"#,
        addr.port()
    ))
    .await;
    let started = std::time::Instant::now();
    let reply = common::get(&gate.url("/v2/bookings")).await;
    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(reply.error_code(), "upstream_timeout");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(held.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn tls_settings_are_validated_with_their_key_paths() {
    let pki = Pki::new();
    let a = pki.server("a", 1);
    let other = pki.server("other", 2);
    let cert = pki.write("cert.pem", &a.cert);
    let wrong_key = pki.write("wrong.key", &other.key);
    let up: SocketAddr = "127.0.0.1:9".parse().unwrap();

    // The binary: a missing certificate file.
    let missing = pki.dir.path().join("missing.pem");
    let toml = gate_toml(up, &missing, &wrong_key, "");
    let config = pki.write("missing.toml", &toml);
    let out = process::run_to_end(&["check", "--config", config.to_str().unwrap()], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("listen.tls.cert_file"), "{stderr}");
    assert!(stderr.contains("missing.pem"), "{stderr}");

    // A key that does not match: named by its key path, its contents never shown.
    let toml = gate_toml(up, &cert, &wrong_key, r#"min_version = "1.1""#);
    let config = pki.write("mismatch.toml", &toml);
    let out = process::run_to_end(&["check", "--config", config.to_str().unwrap()], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("listen.tls.key_file"), "{stderr}");
    assert!(stderr.contains("does not match"), "{stderr}");
    assert!(stderr.contains("listen.tls.min_version"), "{stderr}");
    let key_body: String = other.key.lines().nth(1).unwrap().chars().take(20).collect();
    assert!(!stderr.contains(&key_body), "{stderr}");

    // A valid pair: check passes.
    let key = pki.write("key.pem", &a.key);
    let config = pki.write("ok.toml", &gate_toml(up, &cert, &key, ""));
    let out = process::run_to_end(&["check", "--config", config.to_str().unwrap()], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Upstream settings: TLS files on an http URL, a lone client cert, a bad CA.
    let garbage = pki.write("garbage.pem", "not pem");
    let e = scopegate::Config::from_toml(&format!(
        r#"
[[upstream]]
name = "plain"
url = "http://127.0.0.1:9"
ca_file = {garbage:?}

[[upstream]]
name = "lone"
url = "https://127.0.0.1:9"
client_cert_file = {cert:?}

[[upstream]]
name = "bad-ca"
url = "https://127.0.0.1:9"
ca_file = {garbage:?}

[[upstream]]
name = "mismatch"
url = "https://127.0.0.1:9"
client_cert_file = {cert:?}
client_key_file = {wrong_key:?}
"#
    ))
    .unwrap_err()
    .to_string();
    for expected in [
        "upstream[0].ca_file: only applies to an https:// url",
        "upstream[1].client_key_file: client_cert_file needs client_key_file",
        "upstream[2].ca_file:",
        "upstream[3].client_key_file: the key in",
    ] {
        assert!(e.contains(expected), "{expected:?} in:\n{e}");
    }
}
