//! The demo's backend: a small, in-memory stand-in for the legacy booking API
//! that scopegate fronts.
//!
//! Like the real legacy API it has no authentication of its own and believes
//! whatever `X-Scope-*` headers arrive, which is exactly why scopegate strips
//! the client's. To make that visible, every response echoes the scope headers
//! the backend received: as `"received_scope"` in the JSON body and as their
//! comma-joined names in the `X-Demo-Received-Scope` response header.
//!
//! Endpoints (JSON `{"data": ...}`, errors `{"error": {"code", "message"}}`):
//!
//! - `GET  /v2/health`
//! - `GET  /v2/resources`, `GET /v2/resources/{id}` (a static list)
//! - `GET  /v2/bookings?search=field:value;field:value` (see [`parse_search`])
//! - `POST /v2/bookings` (creates a tentative booking)
//! - `GET  /v2/bookings/{id}`
//! - `PUT  /v2/bookings/{id}/{action}` (see [`Action`])
//! - `GET  /bench`, a fixed body for `benches/load.sh` (no `received_scope`
//!   in the body; the header is still set)

use std::{
    collections::BTreeMap,
    convert::Infallible,
    io,
    net::SocketAddr,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::{body::Incoming, service::service_fn};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
};
use serde::{de::DeserializeOwned, Deserialize};
use serde_json::{json, Value};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

/// Largest request body the backend reads.
const MAX_BODY: usize = 64 * 1024;
/// Every booking follows the same state graph.
const GRAPH: &str = "confirm_decline";
const ECHO_HEADER: &str = "x-demo-received-scope";
const BENCH_BODY: &str = r#"{"data":{"id":"b-bench","state":"confirmed","graph":"confirm_decline","customer":{"name":"Bench Mark","email":"bench@example.com"},"resource":"room-a","start":"2030-01-01T09:00:00Z","end":"2030-01-01T10:00:00Z","meta":{"ref":"BENCH-0001","source":"load.sh"},"possible_actions":["cancel_by_customer","reschedule_by_customer","cancel"]}}"#;

/// The static resources: id, name, capacity.
const RESOURCES: &[(&str, &str, u32)] = &[
    ("room-a", "Meeting room A", 8),
    ("room-b", "Meeting room B", 4),
    ("desk-12", "Hot desk 12", 1),
];

// ---------------------------------------------------------------- model --

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Tentative,
    Confirmed,
    Cancelled,
    Completed,
}

impl State {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "tentative" => Self::Tentative,
            "confirmed" => Self::Confirmed,
            "cancelled" => Self::Cancelled,
            "completed" => Self::Completed,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Tentative => "tentative",
            Self::Confirmed => "confirmed",
            Self::Cancelled => "cancelled",
            Self::Completed => "completed",
        }
    }
}

/// What `PUT /v2/bookings/{id}/{action}` can do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Confirm,
    Decline,
    CancelByCustomer,
    RescheduleByCustomer,
    Cancel,
}

impl Action {
    const ALL: [Action; 5] = [
        Self::Confirm,
        Self::Decline,
        Self::CancelByCustomer,
        Self::RescheduleByCustomer,
        Self::Cancel,
    ];

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Confirm => "confirm",
            Self::Decline => "decline",
            Self::CancelByCustomer => "cancel_by_customer",
            Self::RescheduleByCustomer => "reschedule_by_customer",
            Self::Cancel => "cancel",
        }
    }

    /// The state after this action, or `None` when `from` does not allow it.
    pub fn next(self, from: State) -> Option<State> {
        use {Action::*, State::*};
        match (self, from) {
            (Confirm, Tentative) => Some(Confirmed),
            (Decline, Tentative) => Some(Cancelled),
            (CancelByCustomer | Cancel, Tentative | Confirmed) => Some(Cancelled),
            (RescheduleByCustomer, Tentative | Confirmed) => Some(from),
            _ => None,
        }
    }
}

fn possible_actions(state: State) -> Vec<&'static str> {
    Action::ALL
        .into_iter()
        .filter(|a| a.next(state).is_some())
        .map(Action::as_str)
        .collect()
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Customer {
    pub name: String,
    pub email: String,
}

#[derive(Clone, Debug)]
pub struct Booking {
    pub id: String,
    pub state: State,
    pub customer: Customer,
    pub resource: String,
    pub start: String,
    pub end: String,
    pub meta: BTreeMap<String, String>,
}

impl Booking {
    fn view(&self) -> Value {
        json!({
            "id": self.id,
            "state": self.state.as_str(),
            "graph": GRAPH,
            "customer": { "name": self.customer.name, "email": self.customer.email },
            "resource": self.resource,
            "start": self.start,
            "end": self.end,
            "meta": self.meta,
            "possible_actions": possible_actions(self.state),
        })
    }
}

/// Body of `POST /v2/bookings`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewBooking {
    customer: Customer,
    resource: String,
    start: String,
    end: String,
    #[serde(default)]
    meta: BTreeMap<String, String>,
}

/// Body of `PUT .../reschedule_by_customer`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reschedule {
    pub start: String,
    pub end: String,
}

/// A refusal, rendered as `{"error": {"code", "message"}}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// For 405: the `Allow` header.
    allow: Option<&'static str>,
}

fn error(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
    let (message, allow) = (message.into(), None);
    ApiError {
        status,
        code,
        message,
        allow,
    }
}

fn bad(code: &'static str, message: impl Into<String>) -> ApiError {
    error(StatusCode::BAD_REQUEST, code, message)
}

fn not_found(what: &str) -> ApiError {
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no such {what}"),
    )
}

fn method_not_allowed(allow: &'static str) -> ApiError {
    let e = error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("allowed: {allow}"),
    );
    ApiError {
        allow: Some(allow),
        ..e
    }
}

// --------------------------------------------------------------- search --

/// One `field:value` term of a search; all terms must match.
#[derive(Debug, PartialEq, Eq)]
pub enum Filter {
    Id(String),
    State(State),
    /// Compared case-insensitively.
    Email(String),
    /// Lower case; `*` matches any run of characters.
    Name(String),
    Meta(String, String),
}

/// Parses the (already form-decoded) `search` value: `;`-separated
/// `field:value` terms, split at the first `:`. Fields: `id`, `state`,
/// `customer.email`, `customer.name` (the only one allowing `*`), `meta.<name>`.
pub fn parse_search(search: &str) -> Result<Vec<Filter>, ApiError> {
    let invalid = |msg: String| bad("invalid_search", msg);
    let mut filters = Vec::new();
    for term in search.split(';').filter(|t| !t.is_empty()) {
        let Some((field, value)) = term.split_once(':') else {
            return Err(invalid(format!("search term {term:?} is not field:value")));
        };
        let filter = match field {
            "id" => Filter::Id(value.into()),
            "state" => Filter::State(
                State::parse(value).ok_or_else(|| invalid(format!("unknown state {value:?}")))?,
            ),
            "customer.email" => Filter::Email(value.to_lowercase()),
            "customer.name" => Filter::Name(value.to_lowercase()),
            _ => match field.strip_prefix("meta.") {
                Some(name) if !name.is_empty() => Filter::Meta(name.into(), value.into()),
                _ => {
                    return Err(invalid(format!(
                        "unknown search field {field:?} (supported: id, state, \
                         customer.email, customer.name, meta.<name>)"
                    )))
                }
            },
        };
        if value.contains('*') && !matches!(filter, Filter::Name(_)) {
            return Err(invalid(format!(
                "'*' is only allowed in customer.name, not in {field}"
            )));
        }
        filters.push(filter);
    }
    Ok(filters)
}

impl Filter {
    pub fn matches(&self, b: &Booking) -> bool {
        match self {
            Filter::Id(id) => b.id == *id,
            Filter::State(s) => b.state == *s,
            Filter::Email(e) => b.customer.email.to_lowercase() == *e,
            Filter::Name(pattern) => wildcard(pattern, &b.customer.name.to_lowercase()),
            Filter::Meta(k, v) => b.meta.get(k) == Some(v),
        }
    }
}

/// `*` matches any run of characters (including none); the rest is literal.
fn wildcard(pattern: &str, text: &str) -> bool {
    let mut pieces = pattern.split('*');
    let first = pieces.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let pieces: Vec<&str> = pieces.collect();
    let Some((last, middle)) = pieces.split_last() else {
        return rest.is_empty(); // no '*' at all: exact match
    };
    for piece in middle {
        match rest.find(piece) {
            Some(i) => rest = &rest[i + piece.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// The single `search` parameter of a query string, form-decoded. No
/// parameter is an empty search; a repeated one is refused, so no layer in
/// front can check one value while this backend uses another.
fn search_param(query: Option<&str>) -> Result<String, ApiError> {
    let mut found = None;
    for pair in query.unwrap_or_default().split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if form_decode(k) == "search" {
            if found.is_some() {
                return Err(bad("invalid_search", "search given more than once"));
            }
            found = Some(form_decode(v));
        }
    }
    Ok(found.unwrap_or_default())
}

fn form_decode(s: &str) -> String {
    let plus_as_space = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus_as_space)
        .decode_utf8_lossy()
        .into_owned()
}

/// `YYYY-MM-DDTHH:MM:SSZ`, so that string order is time order.
fn is_utc_timestamp(s: &str) -> bool {
    const SHAPE: &[u8] = b"dddd-dd-ddTdd:dd:ddZ";
    s.len() == SHAPE.len()
        && s.bytes().zip(SHAPE).all(|(c, &p)| match p {
            b'd' => c.is_ascii_digit(),
            _ => c == p,
        })
}

fn check_times(start: &str, end: &str) -> Result<(), ApiError> {
    if !is_utc_timestamp(start) || !is_utc_timestamp(end) {
        return Err(bad(
            "invalid_time",
            "start and end must look like 2030-01-31T09:00:00Z",
        ));
    }
    if start >= end {
        return Err(bad("invalid_time", "start must be before end"));
    }
    Ok(())
}

// ---------------------------------------------------------------- store --

const CUSTOMERS: [(&str, &str); 3] = [
    ("Ada Lovelace", "ada@example.com"),
    ("Grace Hopper", "grace@example.com"),
    ("Alan Turing", "alan@example.org"),
];

/// `meta` pairs of a seeded booking.
type Meta = &'static [(&'static str, &'static str)];

/// Id number, state, customer, resource, day of January 2030, meta.
#[rustfmt::skip]
const SEED: &[(u32, State, usize, &str, &str, Meta)] = &[
    (1001, State::Confirmed, 0, "room-a",  "07", &[("ref", "ADA-7"), ("source", "web")]),
    (1002, State::Tentative, 0, "room-b",  "08", &[("ref", "ADA-8"), ("source", "phone")]),
    (1003, State::Cancelled, 0, "desk-12", "02", &[("ref", "ADA-2")]),
    (1004, State::Confirmed, 1, "room-a",  "09", &[("ref", "GH-9"), ("source", "web")]),
    (1005, State::Completed, 1, "room-b",  "03", &[("ref", "GH-3")]),
    (1006, State::Tentative, 2, "desk-12", "10", &[("ref", "AT-10"), ("source", "web")]),
];

/// The bookings, in creation order.
pub struct Store {
    bookings: Vec<Booking>,
    next_id: u32,
}

impl Store {
    pub fn seeded() -> Self {
        let bookings = SEED
            .iter()
            .map(|&(n, state, who, resource, day, meta)| Booking {
                id: format!("b-{n}"),
                state,
                customer: Customer {
                    name: CUSTOMERS[who].0.into(),
                    email: CUSTOMERS[who].1.into(),
                },
                resource: resource.into(),
                start: format!("2030-01-{day}T09:00:00Z"),
                end: format!("2030-01-{day}T10:30:00Z"),
                meta: meta.iter().map(|&(k, v)| (k.into(), v.into())).collect(),
            })
            .collect();
        Self {
            bookings,
            next_id: 1007,
        }
    }

    pub fn search(&self, filters: &[Filter]) -> Vec<&Booking> {
        self.bookings
            .iter()
            .filter(|b| filters.iter().all(|f| f.matches(b)))
            .collect()
    }

    fn get(&self, id: &str) -> Result<&Booking, ApiError> {
        self.bookings
            .iter()
            .find(|b| b.id == id)
            .ok_or_else(|| not_found("booking"))
    }

    /// Applies `action`; `reschedule` carries the new times for
    /// `reschedule_by_customer` and is ignored otherwise.
    pub fn apply(
        &mut self,
        id: &str,
        action: Action,
        reschedule: Option<Reschedule>,
    ) -> Result<&Booking, ApiError> {
        let booking = self
            .bookings
            .iter_mut()
            .find(|b| b.id == id)
            .ok_or_else(|| not_found("booking"))?;
        let Some(next) = action.next(booking.state) else {
            return Err(error(
                StatusCode::CONFLICT,
                "invalid_transition",
                format!(
                    "cannot {} a {} booking",
                    action.as_str(),
                    booking.state.as_str()
                ),
            ));
        };
        if action == Action::RescheduleByCustomer {
            let r = reschedule.ok_or_else(|| {
                bad(
                    "invalid_body",
                    "reschedule_by_customer needs {\"start\", \"end\"}",
                )
            })?;
            check_times(&r.start, &r.end)?;
            (booking.start, booking.end) = (r.start, r.end);
        }
        booking.state = next;
        Ok(booking)
    }

    fn create(&mut self, new: NewBooking) -> Result<&Booking, ApiError> {
        if !RESOURCES.iter().any(|(id, ..)| *id == new.resource) {
            return Err(bad("unknown_resource", "no such resource"));
        }
        if new.customer.name.trim().is_empty() || !new.customer.email.contains('@') {
            return Err(bad(
                "invalid_customer",
                "customer needs a name and an email",
            ));
        }
        check_times(&new.start, &new.end)?;
        let id = format!("b-{}", self.next_id);
        self.next_id += 1;
        self.bookings.push(Booking {
            id,
            state: State::Tentative,
            customer: new.customer,
            resource: new.resource,
            start: new.start,
            end: new.end,
            meta: new.meta,
        });
        Ok(&self.bookings[self.bookings.len() - 1])
    }
}

// ------------------------------------------------------------- handlers --

type Shared = Arc<Mutex<Store>>;

/// A successful answer: status and the `data` member.
type Reply = (StatusCode, Value);

fn ok(data: Value) -> Result<Reply, ApiError> {
    Ok((StatusCode::OK, data))
}

fn resource_view(&(id, name, capacity): &(&str, &str, u32)) -> Value {
    json!({ "id": id, "name": name, "capacity": capacity })
}

/// GET also allows HEAD (hyper leaves out the body).
fn require_get(method: &Method, allow: &'static str) -> Result<(), ApiError> {
    match *method {
        Method::GET | Method::HEAD => Ok(()),
        _ => Err(method_not_allowed(allow)),
    }
}

async fn route(store: &Shared, req: Request<Incoming>) -> Result<Reply, ApiError> {
    let (parts, body) = req.into_parts();
    let method = &parts.method;
    let path = parts.uri.path().trim_start_matches('/');
    let segments: Vec<&str> = path.split('/').collect();
    let lock = || store.lock().unwrap_or_else(PoisonError::into_inner);
    match segments[..] {
        ["v2", "health"] => {
            require_get(method, "GET, HEAD")?;
            ok(json!({ "status": "ok" }))
        }
        ["v2", "resources"] => {
            require_get(method, "GET, HEAD")?;
            ok(RESOURCES.iter().map(resource_view).collect())
        }
        ["v2", "resources", id] => {
            require_get(method, "GET, HEAD")?;
            let r = RESOURCES.iter().find(|r| r.0 == id);
            ok(resource_view(r.ok_or_else(|| not_found("resource"))?))
        }
        ["v2", "bookings"] if method == Method::POST => {
            let new: NewBooking = parse_json(&read_body(body).await?)?;
            Ok((StatusCode::CREATED, lock().create(new)?.view()))
        }
        ["v2", "bookings"] => {
            require_get(method, "GET, HEAD, POST")?;
            let filters = parse_search(&search_param(parts.uri.query())?)?;
            ok(lock()
                .search(&filters)
                .into_iter()
                .map(Booking::view)
                .collect())
        }
        // The signed-in customer's own bookings: this backend trusts the
        // customer scopegate proved (an SSO token or its session).
        ["v2", "me", "bookings"] => {
            require_get(method, "GET, HEAD")?;
            let email = parts
                .headers
                .get("x-scope-customer-email")
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| {
                    error(
                        StatusCode::UNAUTHORIZED,
                        "no_customer",
                        "no X-Scope-Customer-Email",
                    )
                })?;
            ok(lock()
                .search(&[Filter::Email(email.to_lowercase())])
                .into_iter()
                .map(Booking::view)
                .collect())
        }
        ["v2", "bookings", id] => {
            require_get(method, "GET, HEAD")?;
            ok(lock().get(id)?.view())
        }
        ["v2", "bookings", id, action] => {
            if method != Method::PUT {
                return Err(method_not_allowed("PUT"));
            }
            let action = Action::parse(action).ok_or_else(|| not_found("action"))?;
            let body = read_body(body).await?;
            let reschedule = match action {
                Action::RescheduleByCustomer if !body.is_empty() => Some(parse_json(&body)?),
                _ => None,
            };
            ok(lock().apply(id, action, reschedule)?.view())
        }
        _ => Err(not_found("endpoint")),
    }
}

async fn read_body(body: Incoming) -> Result<Bytes, ApiError> {
    match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("request body is larger than {MAX_BODY} bytes"),
        )),
        Err(_) => Err(bad("invalid_body", "could not read the request body")),
    }
}

fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| bad("invalid_json", format!("request body: {e}")))
}

/// The request headers a backend would read as scope headers: names starting
/// with `x-scope-`, also when spelled with `_` (CGI-style backends fold it).
fn received_scope(headers: &HeaderMap) -> BTreeMap<String, String> {
    const PREFIX: &[u8] = b"x-scope-";
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let n = name.as_str().as_bytes();
        let is_scope = n.len() >= PREFIX.len()
            && n.iter()
                .zip(PREFIX)
                .all(|(&c, &p)| c == p || (c == b'_' && p == b'-'));
        if is_scope {
            let value = String::from_utf8_lossy(value.as_bytes());
            out.entry(name.as_str().to_owned())
                .and_modify(|v| {
                    v.push_str(", ");
                    v.push_str(&value);
                })
                .or_insert_with(|| value.into_owned());
        }
    }
    out
}

async fn handle(store: Shared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let scope = received_scope(req.headers());
    let echo = HeaderValue::from_str(&scope.keys().cloned().collect::<Vec<_>>().join(","))
        .unwrap_or(HeaderValue::from_static(""));
    let is_get = matches!(*req.method(), Method::GET | Method::HEAD);
    let (status, body, allow) = if req.uri().path() == "/bench" && is_get {
        (
            StatusCode::OK,
            Bytes::from_static(BENCH_BODY.as_bytes()),
            None,
        )
    } else {
        let (status, mut body, allow) = match route(&store, req).await {
            Ok((status, data)) => (status, json!({ "data": data }), None),
            Err(e) => (
                e.status,
                json!({ "error": { "code": e.code, "message": e.message } }),
                e.allow,
            ),
        };
        body["received_scope"] = json!(scope);
        (status, Bytes::from(body.to_string()), allow)
    };
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(ECHO_HEADER, echo);
    if let Some(allow) = allow {
        h.insert(header::ALLOW, HeaderValue::from_static(allow));
    }
    resp
}

// --------------------------------------------------------------- server --

/// A running backend.
pub struct Backend {
    pub addr: SocketAddr,
    stop: oneshot::Sender<Duration>,
    task: JoinHandle<()>,
}

/// Binds `addr` and serves HTTP/1.1 and HTTP/2 (h2c) until [`Backend::shutdown`].
pub async fn start(addr: SocketAddr) -> io::Result<Backend> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel();
    let store = Arc::new(Mutex::new(Store::seeded()));
    let task = tokio::spawn(serve(listener, store, stopped));
    Ok(Backend { addr, stop, task })
}

impl Backend {
    /// Stops accepting, lets open connections finish their requests for up
    /// to `deadline`, then returns.
    pub async fn shutdown(self, deadline: Duration) {
        let _ = self.stop.send(deadline);
        let _ = self.task.await;
    }
}

async fn serve(listener: TcpListener, store: Shared, mut stop: oneshot::Receiver<Duration>) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    let deadline = loop {
        let stream = tokio::select! {
            d = &mut stop => break d.unwrap_or(Duration::ZERO),
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "backend: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let store = Arc::clone(&store);
        let service = service_fn(move |req| {
            let store = Arc::clone(&store);
            async move { Ok::<_, Infallible>(handle(store, req).await) }
        });
        let conn = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "backend: connection ended with an error");
            }
        });
    };
    drop(listener);
    if tokio::time::timeout(deadline, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("backend: drain deadline passed; dropping open connections");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn ids(store: &Store, search: &str) -> Vec<String> {
        let filters = parse_search(search).expect("valid search");
        store
            .search(&filters)
            .iter()
            .map(|b| b.id.clone())
            .collect()
    }

    #[test]
    fn search_terms_all_have_to_match() {
        let s = Store::seeded();
        assert_eq!(
            ids(&s, ""),
            ["b-1001", "b-1002", "b-1003", "b-1004", "b-1005", "b-1006"]
        );
        assert_eq!(
            ids(&s, "customer.email:ADA@example.com;state:confirmed"),
            ["b-1001"]
        );
        assert_eq!(ids(&s, "meta.source:web"), ["b-1001", "b-1004", "b-1006"]);
        assert_eq!(ids(&s, "id:b-1005"), ["b-1005"]);
        // The value is split at the first ':' only.
        assert_eq!(ids(&s, "meta.ref:GH-9;meta.source:web"), ["b-1004"]);
        assert!(ids(&s, "meta.ref:x:y").is_empty());
    }

    #[test]
    fn wildcard_only_for_customer_name() {
        let s = Store::seeded();
        assert_eq!(ids(&s, "customer.name:gr*"), ["b-1004", "b-1005"]);
        assert_eq!(ids(&s, "customer.name:*TURING"), ["b-1006"]);
        assert_eq!(
            ids(&s, "customer.name:a*l*e"),
            ["b-1001", "b-1002", "b-1003"]
        );
        assert!(ids(&s, "customer.name:ada").is_empty());
        let e = parse_search("customer.email:*@example.com").unwrap_err();
        assert_eq!(
            (e.status, e.code),
            (StatusCode::BAD_REQUEST, "invalid_search")
        );
    }

    #[test]
    fn unknown_fields_and_malformed_terms_are_refused() {
        for bad in [
            "password:x",
            "meta.:x",
            "state",
            "state:gone",
            "customer:ada",
        ] {
            let e = parse_search(bad).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{bad}");
        }
    }

    #[test]
    fn the_search_parameter_is_form_decoded_and_single() {
        let q = Some("x=1&search=customer.name%3AGrace+H*%3Bstate:completed");
        assert_eq!(
            search_param(q).unwrap(),
            "customer.name:Grace H*;state:completed"
        );
        assert_eq!(search_param(None).unwrap(), "");
        assert!(search_param(Some("search=id:a&search=id:b")).is_err());
    }

    #[test]
    fn transitions_follow_the_graph() {
        let mut s = Store::seeded();
        let b = s.apply("b-1001", Action::CancelByCustomer, None).unwrap();
        assert_eq!(b.state, State::Cancelled);
        assert!(possible_actions(b.state).is_empty());
        let e = s.apply("b-1001", Action::Confirm, None).unwrap_err();
        assert_eq!(
            (e.status, e.code),
            (StatusCode::CONFLICT, "invalid_transition")
        );
        assert_eq!(
            s.apply("b-1002", Action::Confirm, None).unwrap().state,
            State::Confirmed
        );
        assert_eq!(
            s.apply("b-1006", Action::Decline, None).unwrap().state,
            State::Cancelled
        );
        let e = s.apply("b-1005", Action::Cancel, None).unwrap_err();
        assert_eq!(e.status, StatusCode::CONFLICT);
        assert_eq!(
            s.apply("b-9999", Action::Cancel, None).unwrap_err().status,
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn reschedule_needs_valid_times() {
        let mut s = Store::seeded();
        assert_eq!(
            s.apply("b-1004", Action::RescheduleByCustomer, None)
                .unwrap_err()
                .status,
            StatusCode::BAD_REQUEST
        );
        let times = |start: &str, end: &str| {
            Some(Reschedule {
                start: start.into(),
                end: end.into(),
            })
        };
        let backwards = times("2030-02-01T10:00:00Z", "2030-02-01T09:00:00Z");
        assert!(s
            .apply("b-1004", Action::RescheduleByCustomer, backwards)
            .is_err());
        let b = s
            .apply(
                "b-1004",
                Action::RescheduleByCustomer,
                times("2030-02-01T09:00:00Z", "2030-02-01T10:00:00Z"),
            )
            .unwrap();
        assert_eq!(
            (b.state, b.start.as_str()),
            (State::Confirmed, "2030-02-01T09:00:00Z")
        );
    }

    /// One raw HTTP/1.1 exchange with a fresh backend.
    async fn exchange(request: &str) -> String {
        let backend = start("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let mut conn = tokio::net::TcpStream::connect(backend.addr).await.unwrap();
        conn.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        conn.read_to_string(&mut response).await.unwrap();
        backend.shutdown(Duration::from_secs(1)).await;
        response
    }

    #[tokio::test]
    async fn scope_headers_are_echoed_in_body_and_header() {
        let r = exchange(
            "GET /v2/health HTTP/1.1\r\nHost: x\r\nX-Scope-Route: health\r\nX_Scope_App: forged\r\n\
             Connection: close\r\n\r\n",
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        assert!(
            r.contains("x-demo-received-scope: x-scope-route,x_scope_app\r\n"),
            "{r}"
        );
        assert!(
            r.contains(r#""received_scope":{"x-scope-route":"health","x_scope_app":"forged"}"#),
            "{r}"
        );
    }

    #[tokio::test]
    async fn bad_json_is_a_json_400() {
        let body = "{\"start\": 1";
        let r = exchange(&format!(
            "POST /v2/bookings HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ))
        .await;
        assert!(r.starts_with("HTTP/1.1 400"), "{r}");
        assert!(r.contains(r#""error":{"code":"invalid_json","#), "{r}");
    }
}
