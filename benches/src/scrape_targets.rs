//! Scrape targets for the scrape benchmark: one exposition body served on N ports of
//! 127.0.0.1, as cheaply as std allows, so that the servers under test do the work.
//!
//! One acceptor thread `poll`s all listeners; each accepted connection gets its own thread
//! (a scraper keeps one keep-alive connection per target, so that is about one thread per
//! target) that answers every `GET /metrics` with the same pre-built response: status line,
//! `Content-Type: text/plain; version=0.0.4`, `Content-Length` and the body's bytes, in one
//! `write_all`. `Accept-Encoding` is ignored (always identity). Any other path gets 404.
//! Requests are counted per port, so the benchmark can report scrapes actually served.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// The content type Prometheus's text format 0.0.4 is served with.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// How often blocked threads look at the stop flag.
const TICK: Duration = Duration::from_millis(500);

/// Largest request head accepted (scrapers send a few hundred bytes).
const MAX_HEAD: usize = 64 << 10;

struct Shared {
    /// The complete `200` answer for `GET /metrics`.
    response: Vec<u8>,
    /// `GET /metrics` answers written, per port (same order as `TargetServer::addrs`).
    served: Vec<AtomicU64>,
    connections: AtomicU64,
    /// Requests answered with something other than the body (bad paths, bad requests).
    other: AtomicU64,
    stop: AtomicBool,
}

/// N listening ports serving one body; dropping it stops accepting and ends idle
/// connection threads within [`TICK`].
pub struct TargetServer {
    addrs: Vec<SocketAddr>,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl TargetServer {
    /// Binds `n` free ports on 127.0.0.1 and starts serving `body` on each.
    pub fn start(n: usize, body: &[u8]) -> io::Result<TargetServer> {
        let mut listeners = Vec::with_capacity(n);
        let mut addrs = Vec::with_capacity(n);
        for _ in 0..n {
            let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
            l.set_nonblocking(true)?;
            addrs.push(l.local_addr()?);
            listeners.push(l);
        }
        let mut response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        response.extend_from_slice(body);
        let shared = Arc::new(Shared {
            response,
            served: (0..n).map(|_| AtomicU64::new(0)).collect(),
            connections: AtomicU64::new(0),
            other: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let sh = shared.clone();
        let acceptor = thread::Builder::new()
            .name("targets-accept".into())
            .spawn(move || accept_loop(&listeners, &sh))?;
        Ok(TargetServer {
            addrs,
            shared,
            acceptor: Some(acceptor),
        })
    }

    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// `GET /metrics` answers so far, per port.
    pub fn served_per_target(&self) -> Vec<u64> {
        self.shared
            .served
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect()
    }

    /// `GET /metrics` answers so far, all ports.
    pub fn served_total(&self) -> u64 {
        self.served_per_target().iter().sum()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::Relaxed)
    }

    /// Requests answered with an error so far.
    pub fn other_requests(&self) -> u64 {
        self.shared.other.load(Ordering::Relaxed)
    }
}

impl Drop for TargetServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
    }
}

fn accept_loop(listeners: &[TcpListener], sh: &Arc<Shared>) {
    let mut fds: Vec<libc::pollfd> = listeners
        .iter()
        .map(|l| libc::pollfd {
            fd: l.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    while !sh.stop.load(Ordering::Relaxed) {
        // SAFETY: `fds` is a valid array of `fds.len()` pollfd structs for the whole call.
        let n = unsafe {
            libc::poll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                TICK.as_millis() as libc::c_int,
            )
        };
        if n <= 0 {
            continue; // Timeout, or EINTR.
        }
        for (i, pfd) in fds.iter_mut().enumerate() {
            if pfd.revents == 0 {
                continue;
            }
            pfd.revents = 0;
            loop {
                match listeners[i].accept() {
                    Ok((stream, _)) => {
                        sh.connections.fetch_add(1, Ordering::Relaxed);
                        let sh = sh.clone();
                        // Small stacks: there is about one of these per target.
                        let spawned = thread::Builder::new()
                            .name("targets-conn".into())
                            .stack_size(128 << 10)
                            .spawn(move || {
                                let _ = serve_conn(stream, i, &sh);
                            });
                        if let Err(e) = spawned {
                            eprintln!("target server: cannot start a connection thread: {e}");
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        // E.g. EMFILE: say so once per burst, keep serving the rest.
                        eprintln!("target server: accept on {:?}: {e}", listeners[i]);
                        break;
                    }
                }
            }
        }
    }
}

/// Answers requests on one keep-alive connection until the peer closes it or we stop.
fn serve_conn(mut stream: TcpStream, target: usize, sh: &Shared) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(TICK))?;
    // A scraper that stops reading must not pin the thread forever.
    stream.set_write_timeout(Some(Duration::from_secs(60)))?;
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        // Answer every complete request head already buffered (pipelining works too).
        while let Some(end) = find_head_end(&buf) {
            let keep_alive = {
                let head = &buf[..end];
                let (ok, keep_alive) = parse_head(head);
                if ok {
                    stream.write_all(&sh.response)?;
                    sh.served[target].fetch_add(1, Ordering::Relaxed);
                } else {
                    sh.other.fetch_add(1, Ordering::Relaxed);
                    stream.write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\nnot found\n",
                    )?;
                }
                keep_alive
            };
            buf.drain(..end);
            if !keep_alive {
                return Ok(());
            }
        }
        if buf.len() > MAX_HEAD {
            sh.other.fetch_add(1, Ordering::Relaxed);
            let _ = stream.write_all(
                b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
            );
            return Ok(());
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                if sh.stop.load(Ordering::Relaxed) {
                    return Ok(());
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// The length of the first request head in `buf` including its blank line, if complete.
fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// Whether the head is `GET /metrics` (query string allowed), and whether the connection
/// stays open after the answer. Request bodies are not expected (GET) and not supported.
fn parse_head(head: &[u8]) -> (bool, bool) {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or_default();
    let target = parts.next().unwrap_or_default();
    let version = parts.next().unwrap_or_default();
    let path = target.split('?').next().unwrap_or_default();
    let mut keep_alive = version == "HTTP/1.1";
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            if name.trim().eq_ignore_ascii_case("connection") {
                let v = value.trim();
                if v.eq_ignore_ascii_case("close") {
                    keep_alive = false;
                } else if v.eq_ignore_ascii_case("keep-alive") {
                    keep_alive = true;
                }
            }
        }
    }
    (method == "GET" && path == "/metrics", keep_alive)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_request_heads() {
        assert_eq!(
            parse_head(b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n"),
            (true, true)
        );
        assert_eq!(
            parse_head(b"GET /metrics?a=b HTTP/1.1\r\nConnection: close\r\n\r\n"),
            (true, false)
        );
        assert_eq!(parse_head(b"GET /metrics HTTP/1.0\r\n\r\n"), (true, false));
        assert_eq!(parse_head(b"GET /other HTTP/1.1\r\n\r\n"), (false, true));
        assert_eq!(parse_head(b"POST /metrics HTTP/1.1\r\n\r\n"), (false, true));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n\r\nGET"), Some(18));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n"), None);
    }
}
