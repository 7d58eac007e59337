//! One HTTP/1.1 request read under limits, and a response written back.
//!
//! `httparse` parses the request line and headers; this module bounds everything around it:
//! the header block ([`Limits::max_header_bytes`], [`MAX_HEADERS`]), the body
//! ([`Limits::max_body_bytes`], declared by `Content-Length`; chunked bodies are refused), and
//! the time a client may take to send the whole request ([`Limits::request_timeout`]): a
//! client that connects and says nothing is answered 408 and dropped. Every refusal is an
//! [`HttpError`] carrying its 4xx status. One request per connection (`Connection: close`),
//! as `ch-remote` and curl recipes use it.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// Most header lines a request may have.
pub const MAX_HEADERS: usize = 32;

/// The bounds a request is read under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Request line and headers, bytes.
    pub max_header_bytes: usize,
    /// Body, bytes.
    pub max_body_bytes: usize,
    /// From the connection's start to the last byte of the request.
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_bytes: 8 << 10,
            max_body_bytes: 64 << 10,
            request_timeout: Duration::from_secs(5),
        }
    }
}

/// A request as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The path without its query string.
    pub path: String,
    pub body: Vec<u8>,
}

/// Why no request could be read; each has the status the client is answered with (when it can
/// still be answered).
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("request headers exceed {0} bytes")]
    HeadersTooLarge(usize),
    #[error("request body of {got} bytes exceeds {limit} bytes")]
    BodyTooLarge { got: u64, limit: usize },
    #[error("chunked or other transfer encodings are not supported: send Content-Length")]
    TransferEncoding,
    #[error("the request was not complete within {0:?}")]
    Timeout(Duration),
    /// The client went away (nothing to answer).
    #[error("connection closed before the request was complete")]
    Closed,
    #[error("reading the request: {0}")]
    Io(#[from] std::io::Error),
}

impl HttpError {
    /// The status to answer with; `None` when the client is gone.
    pub fn status(&self) -> Option<u16> {
        match self {
            HttpError::Malformed(_) => Some(400),
            HttpError::HeadersTooLarge(_) => Some(431),
            HttpError::BodyTooLarge { .. } => Some(413),
            HttpError::TransferEncoding => Some(411),
            HttpError::Timeout(_) => Some(408),
            HttpError::Closed | HttpError::Io(_) => None,
        }
    }
}

/// A stream whose read timeout can be set (a Unix socket; tests use one too).
pub trait TimedRead: Read {
    fn set_timeout(&self, t: Option<Duration>) -> std::io::Result<()>;
}

impl TimedRead for std::os::unix::net::UnixStream {
    fn set_timeout(&self, t: Option<Duration>) -> std::io::Result<()> {
        self.set_read_timeout(t)
    }
}

/// Reads into `buf` with whatever time is left before `deadline`.
fn read_some<S: TimedRead>(
    s: &mut S,
    buf: &mut [u8],
    deadline: Instant,
    limit: Duration,
) -> Result<usize, HttpError> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(HttpError::Timeout(limit));
        }
        s.set_timeout(Some(left))?;
        match s.read(buf) {
            Ok(0) => return Err(HttpError::Closed),
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(HttpError::Timeout(limit))
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Err(HttpError::Closed)
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Reads one request from `s` under `limits`.
pub fn read_request<S: TimedRead>(s: &mut S, limits: &Limits) -> Result<Request, HttpError> {
    let deadline = Instant::now() + limits.request_timeout;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let (method, path, content_length, head_len) = loop {
        let n = read_some(s, &mut chunk, deadline, limits.request_timeout)?;
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf) {
            Ok(httparse::Status::Complete(head_len)) => {
                if head_len > limits.max_header_bytes {
                    return Err(HttpError::HeadersTooLarge(limits.max_header_bytes));
                }
                let method = req.method.unwrap_or_default().to_string();
                let target = req.path.unwrap_or_default();
                let path = target.split('?').next().unwrap_or_default().to_string();
                let mut content_length: u64 = 0;
                for h in req.headers.iter() {
                    if h.name.eq_ignore_ascii_case("transfer-encoding") {
                        return Err(HttpError::TransferEncoding);
                    }
                    if h.name.eq_ignore_ascii_case("content-length") {
                        content_length = std::str::from_utf8(h.value)
                            .ok()
                            .and_then(|v| v.trim().parse().ok())
                            .ok_or_else(|| HttpError::Malformed("invalid Content-Length".into()))?;
                    }
                }
                break (method, path, content_length, head_len);
            }
            Ok(httparse::Status::Partial) => {
                if buf.len() > limits.max_header_bytes {
                    return Err(HttpError::HeadersTooLarge(limits.max_header_bytes));
                }
            }
            Err(httparse::Error::TooManyHeaders) => {
                return Err(HttpError::HeadersTooLarge(limits.max_header_bytes))
            }
            Err(e) => return Err(HttpError::Malformed(e.to_string())),
        }
    };
    if content_length > limits.max_body_bytes as u64 {
        return Err(HttpError::BodyTooLarge {
            got: content_length,
            limit: limits.max_body_bytes,
        });
    }
    let want = content_length as usize;
    let mut body = buf.split_off(head_len);
    if body.len() > want {
        // Bytes after the declared body: a second request on a close-after-one connection.
        body.truncate(want);
    }
    while body.len() < want {
        let room = (want - body.len()).min(chunk.len());
        let n = read_some(s, &mut chunk[..room], deadline, limits.request_timeout)?;
        body.extend_from_slice(&chunk[..n]);
    }
    Ok(Request { method, path, body })
}

/// The reason phrase of the statuses this server answers.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// A response: status, extra headers, JSON body (or none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16, body: Option<&serde_json::Value>) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: body.map(|b| b.to_string().into_bytes()).unwrap_or_default(),
        }
    }

    /// An error response with `{"error": message}`.
    pub fn error(status: u16, message: impl std::fmt::Display) -> Response {
        Response::new(
            status,
            Some(&serde_json::json!({ "error": message.to_string() })),
        )
    }

    /// The response's bytes on the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        out.push_str("Server: ppc-vmm\r\nConnection: close\r\n");
        for (k, v) in &self.headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        if !self.body.is_empty() {
            out.push_str("Content-Type: application/json\r\n");
        }
        if self.status != 204 {
            out.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }

    pub fn write_to(&self, w: &mut impl Write) -> std::io::Result<()> {
        w.write_all(&self.to_bytes())?;
        w.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    fn limits() -> Limits {
        Limits {
            max_header_bytes: 512,
            max_body_bytes: 64,
            request_timeout: Duration::from_millis(300),
        }
    }

    /// Sends `bytes` (then keeps or closes the connection) and reads one request.
    fn read(bytes: &[u8], close: bool) -> Result<Request, HttpError> {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        a.write_all(bytes).unwrap();
        if close {
            drop(a);
            read_request(&mut b, &limits())
        } else {
            let r = read_request(&mut b, &limits());
            drop(a);
            r
        }
    }

    #[test]
    fn a_request_with_a_body_and_a_query_is_read() {
        let r = read(
            b"PUT /api/v1/vm.coredump?x=1 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello",
            false,
        )
        .unwrap();
        assert_eq!(r.method, "PUT");
        assert_eq!(r.path, "/api/v1/vm.coredump");
        assert_eq!(r.body, b"hello");
    }

    #[test]
    fn a_body_split_over_reads_is_read_whole() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        let t = std::thread::spawn(move || {
            a.write_all(b"PUT /x HTTP/1.1\r\nContent-Length: 10\r\n\r\n01234")
                .unwrap();
            std::thread::sleep(Duration::from_millis(20));
            a.write_all(b"56789").unwrap();
            a
        });
        let r = read_request(&mut b, &limits()).unwrap();
        assert_eq!(r.body, b"0123456789");
        drop(t.join());
    }

    #[test]
    fn bad_requests_get_their_4xx() {
        let status = |bytes: &[u8]| read(bytes, false).unwrap_err().status();
        assert_eq!(status(b"\x00\x01garbage\r\n\r\n"), Some(400));
        assert_eq!(
            status(b"GET /x HTTP/1.1\r\nContent-Length: ten\r\n\r\n"),
            Some(400)
        );
        assert_eq!(
            status(b"PUT /x HTTP/1.1\r\nContent-Length: 65\r\n\r\n"),
            Some(413)
        );
        assert_eq!(
            status(b"PUT /x HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n"),
            Some(400)
        );
        assert_eq!(
            status(b"PUT /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Some(411)
        );
        let long = format!("GET /x HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(600));
        assert_eq!(status(long.as_bytes()), Some(431));
        // Headers that never end: refused once they pass the limit, not buffered forever.
        let endless = format!("GET /x HTTP/1.1\r\nX: {}", "a".repeat(2000));
        assert_eq!(status(endless.as_bytes()), Some(431));
        let many: String = (0..40).map(|i| format!("H{i}: v\r\n")).collect();
        assert_eq!(
            status(format!("GET /x HTTP/1.1\r\n{many}\r\n").as_bytes()),
            Some(431)
        );
    }

    #[test]
    fn a_silent_client_times_out_and_a_gone_one_needs_no_answer() {
        let e = read(b"", false).unwrap_err();
        assert!(matches!(e, HttpError::Timeout(_)), "{e:?}");
        assert_eq!(e.status(), Some(408));
        // Half a request, then silence: the same.
        let e = read(b"GET /api/v1/vm.info HTTP/1.1\r\n", false).unwrap_err();
        assert_eq!(e.status(), Some(408));
        let e = read(b"PUT /x HTTP/1.1\r\nContent-Length: 9\r\n\r\nabc", false).unwrap_err();
        assert_eq!(e.status(), Some(408));
        let e = read(b"GET /x HTTP/1.1\r\n", true).unwrap_err();
        assert!(matches!(e, HttpError::Closed));
        assert_eq!(e.status(), None);
    }

    #[test]
    fn responses_are_framed() {
        let r = Response::error(404, "no such path");
        let text = String::from_utf8(r.to_bytes()).unwrap();
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(text.contains("Connection: close\r\n"));
        assert!(text.ends_with("\r\n\r\n{\"error\":\"no such path\"}"));
        assert!(text.contains(&format!(
            "Content-Length: {}\r\n",
            "{\"error\":\"no such path\"}".len()
        )));
        let t = String::from_utf8(Response::new(204, None).to_bytes()).unwrap();
        assert_eq!(
            t,
            "HTTP/1.1 204 No Content\r\nServer: ppc-vmm\r\nConnection: close\r\n\r\n"
        );
    }
}
