//! The access record: one line per request, formatted here straight into a
//! reused buffer instead of through tracing-subscriber's field visitors.
//! Those format every field with `Debug` or `Display` through `core::fmt`;
//! at one record per request that was half the cost of a public request.
//!
//! The lines are the ones tracing-subscriber writes for the same event, byte
//! for byte apart from the clock (the tests below hold the two side by side),
//! so a parser of the earlier records reads these: in the human format
//! `name="text"` with Rust's string escapes and bare numbers, in JSON one flat
//! object with `timestamp`, `level`, the fields and `target`.

use std::{
    cell::Cell,
    io::Write as _,
    net::IpAddr,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

/// The target the record is logged under (and filtered by, in `RUST_LOG`).
pub const TARGET: &str = "scopegate::access";

/// One request's access record. Text fields are `-` when unknown.
pub struct Access<'a> {
    pub request_id: &'a str,
    pub peer: IpAddr,
    pub method: &'a str,
    /// The normalized path, never the query string.
    pub path: &'a str,
    pub route: &'a str,
    pub status: u16,
    pub scheme: &'a str,
    pub outcome: &'a str,
    pub cause: &'a str,
    pub origin: &'a str,
    pub app: &'a str,
    pub business: &'a str,
    /// A short hash of the customer, never the customer.
    pub subject: &'a str,
    /// 0 when the upstream was not asked or did not answer.
    pub upstream_status: u16,
    pub verify_micros: u64,
    pub upstream_micros: u64,
    pub micros: u64,
}

/// How lines look: the human format with or without terminal colours, or JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    Plain,
    Colour,
    Json,
}

enum Value<'a> {
    /// Client or configuration text: quoted and escaped.
    Text(&'a str),
    /// Written as it is in the human format (a method is a token, an
    /// address has no quotes), a string in JSON.
    Bare(&'a str),
    Ip(IpAddr),
    Number(u64),
}

// What nu_ansi_term writes for tracing-subscriber's styles.
const DIM: &str = "\x1b[2m";
const ITALIC: &str = "\x1b[3m";
const GREEN: &str = "\x1b[32m";
const RESET: &str = "\x1b[0m";

impl Access<'_> {
    fn fields(&self) -> [(&'static str, Value<'_>); 17] {
        use Value::*;
        [
            ("request_id", Text(self.request_id)),
            ("peer", Ip(self.peer)),
            ("method", Bare(self.method)),
            ("path", Text(self.path)),
            ("route", Text(self.route)),
            ("status", Number(self.status.into())),
            ("scheme", Text(self.scheme)),
            ("outcome", Text(self.outcome)),
            ("cause", Text(self.cause)),
            ("origin", Text(self.origin)),
            ("app", Text(self.app)),
            ("business", Text(self.business)),
            ("subject", Text(self.subject)),
            ("upstream_status", Number(self.upstream_status.into())),
            ("verify_micros", Number(self.verify_micros)),
            ("upstream_micros", Number(self.upstream_micros)),
            ("micros", Number(self.micros)),
        ]
    }

    /// Appends the record, newline included, to `out`.
    pub fn write_line(&self, out: &mut Vec<u8>, style: Style, now: SystemTime) {
        match style {
            Style::Json => {
                out.extend_from_slice(b"{\"timestamp\":\"");
                timestamp(out, now);
                out.extend_from_slice(b"\",\"level\":\"INFO\"");
                for (name, value) in self.fields() {
                    out.extend_from_slice(b",\"");
                    out.extend_from_slice(name.as_bytes());
                    out.extend_from_slice(b"\":");
                    match value {
                        Value::Text(s) | Value::Bare(s) => json_string(out, s),
                        Value::Ip(ip) => {
                            out.push(b'"');
                            address(out, ip);
                            out.push(b'"');
                        }
                        Value::Number(n) => number(out, n),
                    }
                }
                out.extend_from_slice(b",\"target\":\"");
                out.extend_from_slice(TARGET.as_bytes());
                out.extend_from_slice(b"\"}\n");
            }
            Style::Plain | Style::Colour => {
                let colour = style == Style::Colour;
                if colour {
                    out.extend_from_slice(DIM.as_bytes());
                    timestamp(out, now);
                    let _ = write!(
                        out,
                        "{RESET} {GREEN} INFO{RESET} {DIM}{TARGET}{RESET}{DIM}:{RESET}"
                    );
                } else {
                    timestamp(out, now);
                    out.extend_from_slice(b"  INFO ");
                    out.extend_from_slice(TARGET.as_bytes());
                    out.push(b':');
                }
                for (name, value) in self.fields() {
                    out.push(b' ');
                    if colour {
                        let _ = write!(out, "{ITALIC}{name}{RESET}{DIM}={RESET}");
                    } else {
                        out.extend_from_slice(name.as_bytes());
                        out.push(b'=');
                    }
                    match value {
                        Value::Text(s) => debug_string(out, s),
                        Value::Bare(s) => out.extend_from_slice(s.as_bytes()),
                        Value::Ip(ip) => address(out, ip),
                        Value::Number(n) => number(out, n),
                    }
                }
                out.push(b'\n');
            }
        }
    }
}

/// `now` in RFC 3339, UTC, to the microsecond (`2026-12-07T05:19:11.969938Z`,
/// as tracing-subscriber writes it). The part up to the second is formatted
/// once a second per thread.
fn timestamp(out: &mut Vec<u8>, now: SystemTime) {
    thread_local! {
        static SECOND: Cell<(u64, [u8; 20])> = const { Cell::new((u64::MAX, [0; 20])) };
    }
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let format = || {
        // `2026-12-07T05:19:11Z`: its first 19 bytes, then the point.
        let text = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs));
        let mut head = [b'.'; 20];
        let _ = write!(&mut head[..19], "{text}");
        head
    };
    let head = SECOND
        .try_with(|c| match c.get() {
            (s, head) if s == secs => head,
            _ => {
                let head = format();
                c.set((secs, head));
                head
            }
        })
        .unwrap_or_else(|_| format());
    out.extend_from_slice(&head);
    let mut micros = [b'0'; 7];
    let mut n = since.subsec_micros();
    for d in micros[..6].iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
    micros[6] = b'Z';
    out.extend_from_slice(&micros);
}

/// An address as `Display` writes it; IPv4 (nearly every peer) without `core::fmt`.
fn address(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                number(out, octet.into());
            }
        }
        IpAddr::V6(_) => {
            let _ = write!(out, "{ip}");
        }
    }
}

fn number(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// `s` as Rust's `{:?}` writes it; printable ASCII without quotes or
/// backslashes (nearly every value) is copied as it is.
fn debug_string(out: &mut Vec<u8>, s: &str) {
    if s.bytes()
        .all(|b| matches!(b, b' '..=b'~') && b != b'"' && b != b'\\')
    {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        let _ = write!(out, "{s:?}");
    }
}

/// `s` as a JSON string, escaped as serde_json escapes it.
fn json_string(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= b' ' && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    fn plain() -> Access<'static> {
        Access {
            request_id: "5f0c2a9d41e3b7a8c6d4e2f1a0b9c8d7",
            peer: IpAddr::from([127, 0, 0, 1]),
            method: "GET",
            path: "/v2/bookings",
            route: "v2",
            status: 200,
            scheme: "signed_search",
            outcome: "forwarded",
            cause: "-",
            origin: "-",
            app: "back-office",
            business: "-",
            subject: "3a7bd3e2360a",
            upstream_status: 200,
            verify_micros: 3,
            upstream_micros: 181,
            micros: 240,
        }
    }

    /// Client text with everything that needs escaping in one format or
    /// the other.
    fn awkward() -> Access<'static> {
        Access {
            request_id: "id with \"quotes\" and \\",
            peer: "2001:db8::1".parse().unwrap(),
            method: "PROPFIND",
            path: "/caf\u{e9}/\t/\u{1b}[31m/\u{7f}/\u{200b}/\u{0}",
            origin: "https://evil.example\r\nforged: line",
            cause: "it's",
            status: 401,
            upstream_status: 0,
            micros: u64::MAX,
            ..plain()
        }
    }

    /// The line tracing-subscriber's `fmt` layer writes for the same event.
    fn through_tracing(r: &Access<'_>, style: Style) -> String {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&buf);
        let writer = move || Capture(Arc::clone(&sink));
        let builder = tracing_subscriber::fmt()
            .with_writer(writer)
            .with_ansi(style == Style::Colour);
        let event = || {
            tracing::info!(
                target: "scopegate::access",
                request_id = r.request_id,
                peer = %r.peer,
                method = %r.method,
                path = r.path,
                route = r.route,
                status = r.status,
                scheme = r.scheme,
                outcome = r.outcome,
                cause = r.cause,
                origin = r.origin,
                app = r.app,
                business = r.business,
                subject = r.subject,
                upstream_status = r.upstream_status,
                verify_micros = r.verify_micros,
                upstream_micros = r.upstream_micros,
                micros = r.micros,
            )
        };
        match style {
            Style::Json => tracing::subscriber::with_default(
                builder.json().flatten_event(true).finish(),
                event,
            ),
            _ => tracing::subscriber::with_default(builder.finish(), event),
        }
        let text = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
        text
    }

    struct Capture(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Capture {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn ours(r: &Access<'_>, style: Style) -> String {
        let mut out = Vec::new();
        r.write_line(&mut out, style, SystemTime::now());
        String::from_utf8(out).unwrap()
    }

    /// The clock differs between the two; everything else must not.
    fn without_time(line: &str, style: Style) -> (&str, &str) {
        match style {
            Style::Json => {
                let rest = line.strip_prefix("{\"timestamp\":\"").expect(line);
                rest.split_once('"').expect(line)
            }
            Style::Plain => line.split_at(27),
            Style::Colour => {
                let rest = line.strip_prefix(DIM).expect(line);
                rest.split_at(27)
            }
        }
    }

    #[test]
    fn lines_are_the_ones_tracing_subscriber_writes() {
        for style in [Style::Plain, Style::Colour, Style::Json] {
            for r in [plain(), awkward()] {
                let (a, b) = (ours(&r, style), through_tracing(&r, style));
                let ((t1, rest1), (t2, rest2)) = (without_time(&a, style), without_time(&b, style));
                assert_eq!(rest1, rest2, "{style:?}");
                // Same clock format: 2026-12-07T05:25:51.969938Z.
                assert_eq!(t1.len(), t2.len(), "{t1} / {t2}");
                let shape = |t: &str| t.bytes().map(|b| b.is_ascii_digit()).collect::<Vec<_>>();
                assert_eq!(shape(t1), shape(t2), "{t1} / {t2}");
                assert!(a.ends_with('\n') && a.matches('\n').count() == 1, "{a}");
            }
        }
    }

    #[test]
    fn the_clock_is_utc_to_the_microsecond() {
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_micros(1_796_620_751_969_938);
        let line = {
            let mut out = Vec::new();
            plain().write_line(&mut out, Style::Plain, at);
            String::from_utf8(out).unwrap()
        };
        assert!(
            line.starts_with("2026-12-07T05:19:11.969938Z  INFO scopegate::access: request_id="),
            "{line}"
        );
    }

    #[test]
    fn client_text_cannot_break_a_line_or_reach_a_terminal() {
        for style in [Style::Plain, Style::Json] {
            let line = ours(&awkward(), style);
            assert!(
                !line[..line.len() - 1].contains(['\n', '\r', '\t', '\u{1b}', '\0']),
                "{line}"
            );
        }
        let json: serde_json::Value = serde_json::from_str(&ours(&awkward(), Style::Json)).unwrap();
        assert_eq!(json["origin"], "https://evil.example\r\nforged: line");
        assert_eq!(json["micros"], u64::MAX);
    }
}
