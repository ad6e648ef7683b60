//! Child servers and what `/proc` says about them.
//!
//! A [`Server`] owns the child process and its temporary directory: dropping it (also while
//! unwinding from a panic) stops the child with SIGTERM, then SIGKILL if it does not exit,
//! and removes the directory. The child also gets `PR_SET_PDEATHSIG = SIGKILL`, so it dies
//! with the harness even when the harness itself is killed and no destructor runs.

use std::fs::File;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::http::Conn;

/// A running server on 127.0.0.1 with its own temporary directory.
pub struct Server {
    pub name: String,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    pub log_path: PathBuf,
    child: Child,
}

/// A free port on 127.0.0.1 (the listener is closed again; the server binds it right after).
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

impl Server {
    /// Starts a server in a fresh temporary directory under `tmp` (named `<prefix>…`) on a
    /// free 127.0.0.1 port: `command(dir, addr)` builds its command line; waits (≤ 120 s) until
    /// `ready_path` answers 200.
    pub fn start_in(
        name: &str,
        prefix: &str,
        tmp: &Path,
        ready_path: &str,
        command: impl FnOnce(&Path, SocketAddr) -> Command,
    ) -> Result<Server, String> {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(tmp)
            .map_err(|e| format!("creating a temp dir in {}: {e}", tmp.display()))?;
        let port = free_port().map_err(|e| format!("finding a free port: {e}"))?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let cmd = command(dir.path(), addr);
        let mut server = Server::spawn(name, cmd, addr, dir).map_err(|e| e.to_string())?;
        server
            .wait_ready(ready_path, Duration::from_secs(120))
            .map_err(|e| e.to_string())?;
        Ok(server)
    }

    /// Starts `cmd` (whose arguments must already point into `dir`), logging its stdout and
    /// stderr to `dir/server.log`.
    pub fn spawn(
        name: &str,
        mut cmd: Command,
        addr: SocketAddr,
        dir: tempfile::TempDir,
    ) -> io::Result<Server> {
        let log_path = dir.path().join("server.log");
        let log = File::create(&log_path)?;
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("starting {name} ({:?}): {e}", cmd.get_program()),
            )
        })?;
        Ok(Server {
            name: name.to_string(),
            addr,
            dir,
            log_path,
            child,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until `GET path` answers 200, failing early if the child exits.
    pub fn wait_ready(&mut self, path: &str, timeout: Duration) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait()? {
                return Err(io::Error::other(format!(
                    "{} exited during start-up ({st}); log:\n{}",
                    self.name,
                    self.log_tail(40)
                )));
            }
            if let Ok(r) = Conn::connect(self.addr).and_then(|mut c| c.get(path)) {
                if r.status == 200 {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(io::Error::other(format!(
                    "{} not ready after {timeout:?}; log:\n{}",
                    self.name,
                    self.log_tail(40)
                )));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// The last `lines` lines of the server's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// SIGTERM, then waits up to `grace` before SIGKILL. Returns how it exited.
    pub fn stop(&mut self, grace: Duration) -> io::Result<ExitStatus> {
        if let Some(st) = self.child.try_wait()? {
            return Ok(st);
        }
        // SAFETY: kill has no memory-safety preconditions; the pid is our unreaped child.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Some(st) = self.child.try_wait()? {
                return Ok(st);
            }
            thread::sleep(Duration::from_millis(20));
        }
        self.child.kill()?;
        self.child.wait()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop(Duration::from_secs(30));
        // `dir` is removed by its own Drop, after the process has exited.
    }
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// User + system CPU seconds of all threads of `pid` so far (`/proc/<pid>/stat` fields 14
/// and 15, in clock ticks).
pub fn cpu_seconds(pid: u32) -> io::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name is parenthesised and may contain spaces: count fields after it.
    let rest = stat
        .rsplit_once(')')
        .map(|x| x.1)
        .ok_or_else(|| io::Error::other("unexpected /proc/<pid>/stat format"))?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| -> io::Result<f64> {
        f.get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .ok_or_else(|| io::Error::other("unexpected /proc/<pid>/stat format"))
    };
    // After ")" field 3 (state) is index 0, so utime (14) is 11 and stime (15) is 12.
    Ok((field(11)? + field(12)?) / clock_ticks())
}

/// Peak resident set size of `pid` in bytes (`VmHWM` in `/proc/<pid>/status`).
pub fn peak_rss_bytes(pid: u32) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| io::Error::other("no VmHWM in /proc/<pid>/status"))
}

/// Resident set size of `pid` in bytes now (`VmRSS` in `/proc/<pid>/status`).
pub fn rss_bytes(pid: u32) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| io::Error::other("no VmRSS in /proc/<pid>/status"))
}

/// Resident memory of `pid` now by kind, in bytes: anonymous (heap, stacks) and
/// file-backed (mapped files such as memory-mapped chunks, which the kernel can drop and
/// re-read) — `RssAnon` and `RssFile` in `/proc/<pid>/status`.
pub fn rss_anon_file_bytes(pid: u32) -> io::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .ok_or_else(|| io::Error::other(format!("no {name} in /proc/<pid>/status")))
    };
    Ok((field("RssAnon:")?, field("RssFile:")?))
}

/// Resets `pid`'s peak RSS (`VmHWM`) to its current RSS (writes `5` to
/// `/proc/<pid>/clear_refs`, Linux 4.0+), so that [`peak_rss_bytes`] afterwards is the peak
/// of one phase rather than since start-up. Needs the same uid as `pid`.
pub fn reset_peak_rss(pid: u32) -> io::Result<()> {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5")
}

/// User + system CPU seconds of this process (all threads) so far.
pub fn self_cpu_seconds() -> f64 {
    // SAFETY: getrusage writes only into the zeroed struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return f64::NAN;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// The file system type holding `path` (`ext4`, `tmpfs`, ...), for the report: `fsync` on
/// tmpfs costs nothing, which flatters a server that syncs.
pub fn fs_type(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return "unknown".into();
    };
    // SAFETY: statfs writes only into the zeroed struct; `c` is NUL-terminated.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return "unknown".into();
    }
    match st.f_type as i64 {
        0xEF53 => "ext4".into(),
        0x0102_1994 => "tmpfs".into(),
        0x5846_5342 => "xfs".into(),
        0x9123_683E => "btrfs".into(),
        0x794C_7630 => "overlayfs".into(),
        0x2FC1_2FC1 => "zfs".into(),
        other => format!("0x{other:x}"),
    }
}

/// Waits until `pid` used under 2.5% of a core over three 2 s windows in a row and `done()`
/// says its own signal of finished background work (merges, compactions) agrees, at most
/// `timeout`. `Ok` and `Err` both carry the seconds waited; `Err` means the timeout hit.
pub fn wait_quiet(pid: u32, timeout: Duration, mut done: impl FnMut() -> bool) -> Result<f64, f64> {
    let t = Instant::now();
    let mut quiet = 0;
    while quiet < 3 {
        let before = cpu_seconds(pid).unwrap_or(0.0);
        thread::sleep(Duration::from_secs(2));
        let busy = cpu_seconds(pid).unwrap_or(0.0) - before > 0.05;
        quiet = if busy || !done() { 0 } else { quiet + 1 };
        if quiet < 3 && t.elapsed() > timeout {
            return Err(t.elapsed().as_secs_f64());
        }
    }
    Ok(t.elapsed().as_secs_f64())
}

/// The first line `bin flag` prints (`--version`, `-version`), or the version of the
/// Debian package that installed `bin` when the binary does not say (Debian's
/// VictoriaMetrics build prints an empty version).
pub fn version(bin: &Path, flag: &str) -> String {
    let line = Command::new(bin).arg(flag).output().ok().and_then(|o| {
        let mut t = String::from_utf8_lossy(&o.stdout).into_owned();
        t.push_str(&String::from_utf8_lossy(&o.stderr));
        t.lines().next().map(|l| l.trim().to_string())
    });
    if let Some(l) = line.filter(|l| !l.is_empty() && !l.contains("error")) {
        return l;
    }
    let package = Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}"])
        .arg(bin.file_name().unwrap_or_default())
        .output()
        .ok()
        .filter(|o| o.status.success() && !o.stdout.is_empty())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    match package {
        Some(v) => format!("{} {v} (Debian package)", bin.display()),
        None => format!("{} (version unknown)", bin.display()),
    }
}
