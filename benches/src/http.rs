//! A minimal blocking HTTP/1.1 client over one keep-alive `TcpStream`.
//!
//! Hand-written rather than `reqwest`: a sender thread does nothing but write a pre-encoded
//! body and read a short answer, so the client's own CPU stays small and out of the server's
//! measurement, and the crate needs no async runtime. It understands what the two servers
//! answer: `Content-Length` bodies, chunked bodies, bodiless 1xx/204/304, and
//! `Connection: close` (after which the next request reconnects).

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// One answer.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// `HTTP <status>: <first 300 bytes of the body>`, for error messages.
    pub fn summary(&self) -> String {
        let mut body = self.body_text();
        body.truncate(300);
        format!("HTTP {}: {}", self.status, body.trim_end())
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A keep-alive connection to one server.
pub struct Conn {
    addr: SocketAddr,
    stream: Option<BufReader<TcpStream>>,
    /// The request being written; reused so that a send does not allocate.
    buf: Vec<u8>,
    /// Connections opened after the first one (the server closed the previous one).
    pub reconnects: u64,
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

impl Conn {
    /// Connects now, so that connection set-up is not part of what is timed.
    pub fn connect(addr: SocketAddr) -> io::Result<Conn> {
        let mut c = Conn {
            addr,
            stream: None,
            buf: Vec::with_capacity(64 << 10),
            reconnects: 0,
        };
        c.ensure_open()?;
        Ok(c)
    }

    fn ensure_open(&mut self) -> io::Result<&mut BufReader<TcpStream>> {
        if self.stream.is_none() {
            let s = TcpStream::connect_timeout(&self.addr, Duration::from_secs(10))?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(Duration::from_secs(300)))?;
            self.stream = Some(BufReader::with_capacity(16 << 10, s));
        }
        Ok(self.stream.as_mut().expect("just opened"))
    }

    pub fn get(&mut self, path: &str) -> io::Result<Response> {
        self.request("GET", path, &[], &[])
    }

    /// Sends one request and reads its answer. `headers` are added to `Host` and
    /// `Content-Length`.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<Response> {
        let had_stream = self.stream.is_some();
        match self.try_request(method, path, headers, body) {
            Ok(r) => Ok(r),
            // A keep-alive connection the server closed while idle: retry once on a new one.
            Err(e) if had_stream && is_stale(&e) => {
                self.stream = None;
                self.reconnects += 1;
                self.try_request(method, path, headers, body)
            }
            Err(e) => {
                self.stream = None;
                Err(e)
            }
        }
    }

    fn try_request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<Response> {
        let addr = self.addr;
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        write!(buf, "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n")?;
        for (n, v) in headers {
            write!(buf, "{n}: {v}\r\n")?;
        }
        write!(buf, "Content-Length: {}\r\n\r\n", body.len())?;
        buf.extend_from_slice(body);
        let stream = self.ensure_open()?;
        let written = stream.get_mut().write_all(&buf);
        self.buf = buf;
        written?;
        let stream = self.stream.as_mut().expect("opened above");
        let (resp, close) = read_response(stream, method == "HEAD")?;
        if close {
            self.stream = None;
            self.reconnects += 1;
        }
        Ok(resp)
    }
}

fn is_stale(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::UnexpectedEof
    )
}

fn read_line(r: &mut impl BufRead, line: &mut String) -> io::Result<()> {
    line.clear();
    if r.read_line(line)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed before a full response",
        ));
    }
    while line.ends_with('\n') || line.ends_with('\r') {
        line.pop();
    }
    Ok(())
}

/// Reads one response; the flag says whether the server will close the connection.
fn read_response(r: &mut impl BufRead, head_only: bool) -> io::Result<(Response, bool)> {
    let mut line = String::new();
    read_line(r, &mut line)?;
    let mut parts = line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default().to_string();
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        read_line(r, &mut line)?;
        if line.is_empty() {
            break;
        }
        let (n, v) = line
            .split_once(':')
            .ok_or_else(|| bad(format!("bad header line {line:?}")))?;
        headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let find = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let mut close = match find("connection") {
        Some(v) => v.eq_ignore_ascii_case("close"),
        None => version == "HTTP/1.0",
    };
    let mut body = Vec::new();
    if head_only || status / 100 == 1 || status == 204 || status == 304 {
        // No body.
    } else if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            read_line(r, &mut line)?;
            let size_hex = line.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size_hex, 16)
                .map_err(|_| bad(format!("bad chunk size {line:?}")))?;
            if size == 0 {
                // Trailers, then the empty line.
                loop {
                    read_line(r, &mut line)?;
                    if line.is_empty() {
                        break;
                    }
                }
                break;
            }
            let at = body.len();
            body.resize(at + size, 0);
            r.read_exact(&mut body[at..])?;
            read_line(r, &mut line)?;
        }
    } else if let Some(len) = find("content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| bad(format!("bad Content-Length {len:?}")))?;
        body.resize(len, 0);
        r.read_exact(&mut body)?;
    } else {
        r.read_to_end(&mut body)?;
        close = true;
    }
    Ok((
        Response {
            status,
            headers,
            body,
        },
        close,
    ))
}

/// `s` with everything but unreserved characters percent-encoded (for query strings).
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_length_chunked_and_bodiless_responses() {
        let wire = b"HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n\
HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello\
HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n\
HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\nrest";
        let mut r = &wire[..];
        let (a, close) = read_response(&mut r, false).unwrap();
        assert_eq!((a.status, a.header("x-a"), close), (204, Some("1"), false));
        let (b, _) = read_response(&mut r, false).unwrap();
        assert_eq!(b.body, b"hello");
        let (c, _) = read_response(&mut r, false).unwrap();
        assert_eq!(c.body, b"abcde");
        let (d, close) = read_response(&mut r, false).unwrap();
        assert_eq!(
            (d.status, d.body.as_slice(), close),
            (400, &b"rest"[..], true)
        );
        assert!(read_response(&mut r, false).is_err());
    }

    #[test]
    fn url_encode_escapes_promql() {
        assert_eq!(
            url_encode(r#"count({a!=""})"#),
            "count%28%7Ba%21%3D%22%22%7D%29"
        );
    }
}
