//! The customer overview page (`examples/customer-overview/`), served on an
//! origin of its own so that its calls to scopegate are cross-origin (CORS).
//!
//! A tiny static file server: GET and HEAD of the files of one flat
//! directory, by a fixed list of file types. Any other name (a
//! subdirectory, `..`, a percent-escape, a backslash, a dotfile, an unknown
//! extension) is 404 without touching the file system; any other method is
//! 405. Every answer carries a Content-Security-Policy that lets the page
//! run its own script and style and call only the gate.

use std::{
    convert::Infallible,
    io,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{net::TcpListener, task::JoinHandle};

/// The file types served, by extension.
const CONTENT_TYPES: &[(&str, &str)] = &[
    ("html", "text/html; charset=utf-8"),
    ("js", "text/javascript; charset=utf-8"),
    ("css", "text/css; charset=utf-8"),
    ("svg", "image/svg+xml"),
    ("png", "image/png"),
    ("ico", "image/x-icon"),
];

/// The file a request path names, and its content type: `/` is
/// `index.html`; anything else must be `/` and one plain file name
/// (`[A-Za-z0-9._-]`, not starting with `.`) of a known type.
pub fn file_for(path: &str) -> Option<(&str, &'static str)> {
    let name = match path {
        "/" => "index.html",
        p => p.strip_prefix('/')?,
    };
    let plain = !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    let (_, ext) = name.rsplit_once('.')?;
    let (_, content_type) = CONTENT_TYPES.iter().find(|(e, _)| *e == ext)?;
    plain.then_some((name, *content_type))
}

/// A running page server.
pub struct Site {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Site {
    /// `http://<addr>`: the page's origin.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting; connections still open end with the runtime.
    pub fn shutdown(self) {
        self.task.abort();
    }
}

/// Serves the files of `dir` on `addr` (HTTP/1.1); the page may call `gate`
/// (an origin, `http://127.0.0.1:8080`) and nothing else.
pub async fn start(addr: SocketAddr, dir: PathBuf, gate: &str) -> io::Result<Site> {
    let csp = format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         connect-src {gate}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    );
    let csp = HeaderValue::from_str(&csp).map_err(io::Error::other)?;
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(serve(listener, Arc::from(dir), csp));
    Ok(Site { addr, task })
}

async fn serve(listener: TcpListener, dir: Arc<Path>, csp: HeaderValue) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "page server: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (dir, csp) = (Arc::clone(&dir), csp.clone());
        let service = service_fn(move |req: Request<Incoming>| {
            let (dir, csp) = (Arc::clone(&dir), csp.clone());
            async move { Ok::<_, Infallible>(respond(&dir, csp, &req).await) }
        });
        tokio::spawn(async move {
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "page server: connection ended with an error");
            }
        });
    }
}

async fn respond(dir: &Path, csp: HeaderValue, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let (status, content_type, body) = if !matches!(*req.method(), Method::GET | Method::HEAD) {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            Bytes::from_static(b"method not allowed\n"),
        )
    } else {
        let found = match file_for(req.uri().path()) {
            Some((name, content_type)) => tokio::fs::read(dir.join(name))
                .await
                .ok()
                .map(|b| (content_type, b)),
            None => None,
        };
        match found {
            Some((content_type, bytes)) => (StatusCode::OK, content_type, Bytes::from(bytes)),
            None => (
                StatusCode::NOT_FOUND,
                "text/plain; charset=utf-8",
                Bytes::from_static(b"not found\n"),
            ),
        }
    };
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CONTENT_SECURITY_POLICY, csp);
    if status == StatusCode::METHOD_NOT_ALLOWED {
        h.insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn only_plain_names_of_known_types_are_served() {
        assert_eq!(
            file_for("/"),
            Some(("index.html", "text/html; charset=utf-8"))
        );
        assert_eq!(
            file_for("/overview.js"),
            Some(("overview.js", "text/javascript; charset=utf-8"))
        );
        for refused in [
            "",
            "/../Cargo.toml",
            "/..",
            "/%2e%2e/Cargo.toml",
            "/..%2FCargo.toml",
            "/a/index.html",
            "/..\\index.html",
            "/.hidden.css",
            "//etc/passwd.css",
            "/index.html%00.css",
            "/README.md",
            "/index",
            "/index.HTML",
        ] {
            assert_eq!(file_for(refused), None, "{refused}");
        }
    }

    /// One raw HTTP/1.1 exchange with a server of the real page directory.
    async fn exchange(request: &str) -> String {
        let dir = PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/customer-overview"
        ));
        let site = start("127.0.0.1:0".parse().unwrap(), dir, "http://127.0.0.1:8080")
            .await
            .unwrap();
        let mut conn = tokio::net::TcpStream::connect(site.addr).await.unwrap();
        conn.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        conn.read_to_string(&mut response).await.unwrap();
        site.shutdown();
        response
    }

    fn get(target: &str) -> String {
        format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    }

    #[tokio::test]
    async fn serves_the_page_with_its_types_and_policy() {
        let r = exchange(&get("/")).await;
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        assert!(
            r.contains("content-type: text/html; charset=utf-8\r\n"),
            "{r}"
        );
        assert!(r.contains("x-content-type-options: nosniff\r\n"), "{r}");
        assert!(r.contains("connect-src http://127.0.0.1:8080;"), "{r}");
        assert!(r.contains("<script src=\"overview.js\""), "{r}");
        let r = exchange(&get("/overview.css")).await;
        assert!(
            r.contains("content-type: text/css; charset=utf-8\r\n"),
            "{r}"
        );
    }

    #[tokio::test]
    async fn refuses_traversal_and_other_methods() {
        for target in [
            "/../Cargo.toml",
            "/%2e%2e/Cargo.toml",
            "/../../examples/demo/main.rs",
        ] {
            let r = exchange(&get(target)).await;
            assert!(r.starts_with("HTTP/1.1 404"), "{target}: {r}");
            assert!(!r.contains("[package]"), "{target}: {r}");
        }
        let r = exchange(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 405"), "{r}");
        assert!(r.contains("allow: GET, HEAD\r\n"), "{r}");
    }
}
