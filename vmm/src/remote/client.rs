//! One request to the API socket and its response, read under bounds (size, time), framed as
//! ch-remote frames them (`Host: localhost`, `Content-Length` with a body).

use super::RemoteRequest;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// Most bytes of a response read.
pub const MAX_RESPONSE: usize = 1 << 20;

/// A response: status and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Response {
    /// The body as indented JSON (as it came when it is not JSON).
    pub fn pretty_body(&self) -> String {
        match serde_json::from_slice::<serde_json::Value>(&self.body) {
            Ok(v) => serde_json::to_string_pretty(&v).unwrap_or_default(),
            Err(_) => String::from_utf8_lossy(&self.body).trim().to_string(),
        }
    }

    /// The `error` field of an error body.
    pub fn error_message(&self) -> Option<String> {
        let v: serde_json::Value = serde_json::from_slice(&self.body).ok()?;
        v.get("error")?.as_str().map(str::to_string)
    }
}

/// Why no response was had.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("malformed response: {0}")]
    Malformed(String),
    #[error("response larger than {MAX_RESPONSE} bytes")]
    TooLarge,
}

/// The bytes of `req` on the wire.
pub fn encode(req: &RemoteRequest) -> Vec<u8> {
    let mut out = format!(
        "{} /api/v1/{} HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n",
        req.method, req.endpoint
    );
    if let Some(b) = &req.body {
        out.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        ));
    } else {
        out.push_str("\r\n");
    }
    out.into_bytes()
}

/// Parses a whole response (the server closes after it).
pub fn decode(bytes: &[u8]) -> Result<Response, ClientError> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut r = httparse::Response::new(&mut headers);
    let head = match r.parse(bytes) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return Err(ClientError::Malformed("incomplete header".into()))
        }
        Err(e) => return Err(ClientError::Malformed(e.to_string())),
    };
    let status = r
        .code
        .ok_or_else(|| ClientError::Malformed("no status".into()))?;
    let len = r
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| {
            std::str::from_utf8(h.value)
                .ok()?
                .trim()
                .parse::<usize>()
                .ok()
        });
    let rest = &bytes[head..];
    let body = match len {
        Some(n) if n > rest.len() => {
            return Err(ClientError::Malformed(format!(
                "body of {} bytes, {n} announced",
                rest.len()
            )))
        }
        Some(n) => rest[..n].to_vec(),
        None => rest.to_vec(),
    };
    Ok(Response { status, body })
}

/// Sends `req` to the socket at `path` and reads the response within `timeout`.
pub fn send(path: &Path, req: &RemoteRequest, timeout: Duration) -> Result<Response, ClientError> {
    let mut s = UnixStream::connect(path).map_err(ClientError::Connect)?;
    s.set_write_timeout(Some(timeout))?;
    s.set_read_timeout(Some(timeout))?;
    s.write_all(&encode(req))?;
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                if out.len() + n > MAX_RESPONSE {
                    return Err(ClientError::TooLarge);
                }
                out.extend_from_slice(&chunk[..n]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(ClientError::Timeout(timeout))
            }
            Err(e) => return Err(e.into()),
        }
    }
    decode(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_framed_like_ch_remotes() {
        let r = RemoteRequest {
            method: "PUT",
            endpoint: "vm.coredump",
            body: Some("{}".into()),
        };
        assert_eq!(
            encode(&r),
            b"PUT /api/v1/vm.coredump HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\
              Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
        );
    }

    #[test]
    fn responses_are_decoded_or_refused() {
        let r = decode(b"HTTP/1.1 409 Conflict\r\nContent-Length: 13\r\n\r\n{\"error\":\"x\"}")
            .unwrap();
        assert_eq!(r.status, 409);
        assert_eq!(r.error_message().as_deref(), Some("x"));
        let r = decode(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap();
        assert_eq!((r.status, r.body.len()), (204, 0));
        assert!(decode(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}").is_err());
        assert!(decode(b"garbage").is_err());
        assert!(decode(b"HTTP/1.1 200 OK\r\n").is_err());
    }
}
