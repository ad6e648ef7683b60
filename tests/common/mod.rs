//! Shared helpers for integration tests: start the real `hearth` binary on 127.0.0.1 with a
//! temporary data directory, talk HTTP to it, stop or kill it.
#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub mod blocks;

pub struct Hearth {
    pub child: Child,
    pub addr: String,
    pub dir: PathBuf,
    pub log: PathBuf,
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Hearth {
    /// Pushes an exposition-format body through `/api/v1/import/prometheus` (asserts 204).
    #[allow(dead_code)]
    pub fn import(&self, body: &str) {
        let (st, _, resp) = http_raw(
            &self.addr,
            "POST",
            "/api/v1/import/prometheus",
            &[],
            body.as_bytes(),
        )
        .unwrap();
        assert_eq!(st, 204, "{resp}");
    }

    /// Starts hearth on `dir` with the test endpoints and `extra` arguments; does not wait.
    pub fn spawn(dir: &Path, extra: &[&str]) -> Hearth {
        let addr = format!("127.0.0.1:{}", free_port());
        let log = dir.with_extension(format!("log{}", free_port()));
        let stderr = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_hearth"))
            .arg("--storage.path")
            .arg(dir)
            .arg("--web.listen-address")
            .arg(&addr)
            .arg("--web.enable-test-endpoints")
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("starting hearth");
        Hearth {
            child,
            addr,
            dir: dir.to_path_buf(),
            log,
        }
    }

    /// Starts hearth and waits until `/-/ready` answers 200.
    pub fn start(dir: &Path, extra: &[&str]) -> Hearth {
        let h = Hearth::spawn(dir, extra);
        h.wait_ready(Duration::from_secs(60));
        h
    }

    pub fn wait_ready(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok((200, _)) = http(&self.addr, "GET", "/-/ready", "") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "hearth not ready within {timeout:?}; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "hearth did not exit after SIGTERM; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        http(&self.addr, "GET", path, "").expect("GET")
    }

    pub fn post(&self, path: &str, body: &str) -> (u16, String) {
        http(&self.addr, "POST", path, body).expect("POST")
    }

    /// The value of a metric line (exact name including labels) from `/metrics`.
    pub fn metric(&self, name: &str) -> Option<f64> {
        let (_, body) = self.get("/metrics");
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    }
}

impl Drop for Hearth {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// A minimal HTTP/1.1 client (one request per connection), so tests depend on nothing but
/// std. Returns status and body.
pub fn http(addr: &str, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
    let (status, _, body) = http_raw(
        addr,
        method,
        path,
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )?;
    Ok((status, body))
}

/// Status, headers (lower-cased names) and body.
pub type RawResponse = (u16, Vec<(String, String)>, String);

/// Like [`http`] with arbitrary headers and a binary body; also returns the response headers
/// (lower-cased names).
pub fn http_raw(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<RawResponse> {
    let (status, hdrs, body) = http_bytes(addr, method, path, headers, body)?;
    Ok((status, hdrs, String::from_utf8_lossy(&body).into_owned()))
}

/// A child process killed when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A peer binary from PATH; a missing one fails the test (tests never skip silently).
pub fn require(bin: &str) -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = PathBuf::from(dir).join(bin);
        if p.is_file() {
            return p;
        }
    }
    panic!("{bin} not found on PATH: run ./scripts/test.sh, which installs it (Debian package)");
}

/// Percent-encodes `s` for a URL query string or an `application/x-www-form-urlencoded` body
/// (everything but RFC 3986 unreserved characters).
pub fn urlencode(s: &str) -> String {
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

/// Status, headers (lower-cased names) and body bytes.
pub type RawBytesResponse = (u16, Vec<(String, String)>, Vec<u8>);

/// Like [`http_raw`] but returns the body as bytes (for gzip-encoded responses).
pub fn http_bytes(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<RawBytesResponse> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    s.write_all(req.as_bytes())?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no HTTP header end"))?;
    let head = String::from_utf8_lossy(&raw[..end]).to_string();
    let mut rest = &raw[end + 4..];
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("bad status line"))?;
    let hdrs: Vec<(String, String)> = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = hdrs
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    if !chunked {
        return Ok((status, hdrs, rest.to_vec()));
    }
    let mut out = Vec::new();
    while let Some(i) = rest.windows(2).position(|w| w == b"\r\n") {
        let n = usize::from_str_radix(String::from_utf8_lossy(&rest[..i]).trim(), 16).unwrap_or(0);
        rest = &rest[i + 2..];
        if n == 0 || rest.len() < n {
            break;
        }
        out.extend_from_slice(&rest[..n]);
        rest = rest[n..].strip_prefix(b"\r\n").unwrap_or(&rest[n..]);
    }
    Ok((status, hdrs, out))
}
