//! Body types on both sides of the proxy. Bodies stream: nothing here buffers
//! more than one frame.

use std::{
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll},
};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use crate::{scope::HeaderPolicy, upstream::UpstreamBody};

/// Why forwarding a request body stopped.
#[derive(Debug, thiserror::Error)]
pub enum RequestBodyError {
    #[error("request body exceeds the configured limit")]
    TooLarge,
    #[error("client body error: {0}")]
    Client(#[from] hyper::Error),
}

/// The client's body on its way upstream: counted against the body limit, and
/// its trailers stripped like headers.
pub struct RequestBody {
    inner: Incoming,
    remaining: u64,
    policy: Arc<HeaderPolicy>,
}

impl RequestBody {
    pub fn new(inner: Incoming, limit: u64, policy: Arc<HeaderPolicy>) -> Self {
        Self {
            inner,
            remaining: limit,
            policy,
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = RequestBodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let frame = match ready!(Pin::new(&mut self.inner).poll_frame(cx)) {
            None => return Poll::Ready(None),
            Some(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
            Some(Ok(f)) => f,
        };
        let frame = match frame.into_data() {
            Ok(data) => {
                let len = data.len() as u64;
                if len > self.remaining {
                    self.remaining = 0;
                    return Poll::Ready(Some(Err(RequestBodyError::TooLarge)));
                }
                self.remaining -= len;
                Frame::data(data)
            }
            Err(frame) => match frame.into_trailers() {
                Ok(mut trailers) => {
                    self.policy.strip_trailers(&mut trailers);
                    Frame::trailers(trailers)
                }
                // Unknown frame kinds are not forwarded.
                Err(_) => return Poll::Ready(None),
            },
        };
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Called when a response body is finished or dropped (connection bookkeeping).
pub type OnDone = Box<dyn FnOnce() + Send + Sync>;

enum Inner {
    Full(Option<Bytes>),
    Upstream(UpstreamBody),
    /// Frames already read from the upstream (then found too large to
    /// rewrite), followed by the rest of its body.
    Prefixed(std::collections::VecDeque<Bytes>, UpstreamBody),
}

/// A response to the client: scopegate's own (JSON errors, admin) or the
/// upstream's, streamed.
pub struct ResponseBody {
    inner: Inner,
    on_done: Option<OnDone>,
}

impl ResponseBody {
    pub fn full(b: impl Into<Bytes>) -> Self {
        Self {
            inner: Inner::Full(Some(b.into())),
            on_done: None,
        }
    }

    /// A JSON response scopegate answers itself.
    pub fn json(status: http::StatusCode, body: impl Into<Bytes>) -> http::Response<Self> {
        let mut resp = http::Response::new(Self::full(body));
        *resp.status_mut() = status;
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        resp
    }

    pub fn empty() -> Self {
        Self {
            inner: Inner::Full(None),
            on_done: None,
        }
    }

    pub fn upstream(b: UpstreamBody) -> Self {
        Self {
            inner: Inner::Upstream(b),
            on_done: None,
        }
    }

    /// `read` (frames already taken from `rest`) followed by `rest`.
    pub fn prefixed(read: Vec<Bytes>, rest: UpstreamBody) -> Self {
        Self {
            inner: Inner::Prefixed(read.into(), rest),
            on_done: None,
        }
    }

    /// Runs `f` once the body is complete, failed or dropped.
    pub fn on_done(&mut self, f: OnDone) {
        self.on_done = Some(f);
    }

    fn done(&mut self) {
        if let Some(f) = self.on_done.take() {
            f();
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        self.done();
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let out = match &mut self.inner {
            Inner::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            // An upstream error is passed on as an error, so hyper aborts the
            // client's response instead of ending it as if it were complete.
            Inner::Upstream(b) => Pin::new(b).poll_frame(cx),
            Inner::Prefixed(read, rest) => match read.pop_front() {
                Some(b) => Poll::Ready(Some(Ok(Frame::data(b)))),
                None => Pin::new(rest).poll_frame(cx),
            },
        };
        if matches!(out, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            self.done();
        }
        out
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Full(b) => b.is_none(),
            Inner::Upstream(b) => b.is_end_stream(),
            Inner::Prefixed(read, rest) => read.is_empty() && rest.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Inner::Upstream(b) => b.size_hint(),
            Inner::Prefixed(read, rest) => {
                let buffered: u64 = read.iter().map(|b| b.len() as u64).sum();
                let mut h = SizeHint::new();
                let rest = rest.size_hint();
                h.set_lower(buffered + rest.lower());
                if let Some(u) = rest.upper() {
                    h.set_upper(buffered + u);
                }
                h
            }
        }
    }
}
