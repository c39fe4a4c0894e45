//! Bounded process execution, signals by PID and bounded polling.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use super::error::{HarnessError, Result};

/// Default bound for short administrative commands (`ip`, `nft`, `swanctl`, ...).
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Renders a command line for error messages.
pub(crate) fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

fn drain<R: Read + Send + 'static>(r: Option<R>) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    if let Some(mut r) = r {
        thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            let _ = tx.send(buf);
        });
    } else {
        let _ = tx.send(Vec::new());
    }
    rx
}

/// Runs `cmd` to completion with a time bound; the exit status is not checked. On timeout the child is killed
/// (it is ours) and `CommandTimeout` is returned.
pub(crate) fn run_unchecked(cmd: &mut Command, timeout: Duration) -> Result<Output> {
    let command = describe(cmd);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|source| HarnessError::Spawn { command: command.clone(), source })?;
    let out_rx = drain(child.stdout.take());
    let err_rx = drain(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let status: Option<ExitStatus> = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if Instant::now() >= deadline => break None,
            Ok(None) => thread::sleep(Duration::from_millis(5)),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(HarnessError::Spawn { command, source: e });
            }
        }
    };
    let status = match status {
        Some(st) => st,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = err_rx.recv_timeout(Duration::from_secs(1)).unwrap_or_default();
            return Err(HarnessError::CommandTimeout {
                command,
                timeout,
                stderr: String::from_utf8_lossy(&stderr).into_owned(),
            });
        }
    };
    // A grandchild that inherited the pipes could keep them open: do not wait for it forever.
    let stdout = out_rx.recv_timeout(Duration::from_secs(2)).unwrap_or_default();
    let stderr = err_rx.recv_timeout(Duration::from_secs(2)).unwrap_or_default();
    Ok(Output { status, stdout, stderr })
}

/// Like [`run_unchecked`], but a non-zero exit status is a `CommandFailed` error.
pub(crate) fn run(cmd: &mut Command, timeout: Duration) -> Result<Output> {
    let command = describe(cmd);
    let out = run_unchecked(cmd, timeout)?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(failed(command, &out))
    }
}

pub(crate) fn failed(command: String, out: &Output) -> HarnessError {
    let mut stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if stderr.is_empty() {
        stderr = String::from_utf8_lossy(&out.stdout).trim().to_string();
    }
    HarnessError::CommandFailed { command, status: out.status.to_string(), stderr }
}

/// Polls `pred` every `interval` until it returns `true` or `timeout` passes (bounded in time and count).
pub fn wait_until<F>(what: &str, timeout: Duration, interval: Duration, mut pred: F) -> Result<()>
where
    F: FnMut() -> Result<bool>,
{
    let start = Instant::now();
    let interval = interval.max(Duration::from_millis(1));
    let max_rounds = (timeout.as_millis() / interval.as_millis()).saturating_add(2);
    let mut rounds: u128 = 0;
    loop {
        if pred()? {
            return Ok(());
        }
        rounds += 1;
        if start.elapsed() >= timeout || rounds >= max_rounds {
            return Err(HarnessError::WaitTimeout { what: what.to_string(), timeout });
        }
        thread::sleep(interval);
    }
}

/// Sends `sig` to `pid`. Only ever called for processes this harness started.
pub(crate) fn signal(pid: u32, sig: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    if pid <= 1 {
        return;
    }
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// Whether a process with this PID exists (including zombies).
pub(crate) fn pid_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Stops a child we own: SIGTERM, wait up to `grace`, then SIGKILL. Signals are only sent while the child is
/// not yet reaped, so its PID cannot have been reused.
pub(crate) fn terminate(child: &mut Child, grace: Duration) -> Option<ExitStatus> {
    match child.try_wait() {
        Ok(Some(st)) => return Some(st),
        Ok(None) => signal(child.id(), libc::SIGTERM),
        Err(_) => return None,
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        match child.try_wait() {
            Ok(Some(st)) => return Some(st),
            Ok(None) => thread::sleep(Duration::from_millis(20)),
            Err(_) => return None,
        }
    }
    let _ = child.kill();
    child.wait().ok()
}

/// Waits for a child to exit within `timeout`; `None` if it is still running.
pub fn wait_child_timeout(child: &mut Child, timeout: Duration) -> Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return Ok(Some(st)),
            Ok(None) if Instant::now() >= deadline => return Ok(None),
            Ok(None) => thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(HarnessError::Spawn { command: format!("wait for pid {}", child.id()), source: e }),
        }
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The unique name prefix for one testbed or daemon of this process: `ikl<pid>x<counter>`.
pub(crate) fn unique_prefix() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{}{}x{}", NAME_PREFIX, std::process::id(), n)
}

/// Prefix of every namespace and temporary directory the harness creates.
pub const NAME_PREFIX: &str = "ikl";

/// Parses `ikl<pid>x<n>...` and returns the pid.
pub(crate) fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(NAME_PREFIX)?;
    let (pid, rest) = rest.split_once('x')?;
    let digits_end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
    if digits_end == 0 || pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

/// A temporary directory under the system temp dir, removed on drop unless `IKELINK_KEEP_LOGS=1` is set or the
/// thread is panicking (then its path is printed, so a failed test leaves its charon logs behind).
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `<tmp>/<name>` (fresh: an old directory of that name is removed first).
    pub(crate) fn new(name: &str) -> Result<TempDir> {
        let path = std::env::temp_dir().join(name);
        if path.exists() {
            let _ = std::fs::remove_dir_all(&path);
        }
        std::fs::create_dir_all(&path).map_err(|e| HarnessError::io(&path, e))?;
        Ok(TempDir { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let keep = std::env::var("IKELINK_KEEP_LOGS").is_ok_and(|v| v == "1");
        if keep || thread::panicking() {
            eprintln!("harness: keeping {}", self.path.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Removes temp dirs `<tmp>/ikl<pid>x...` left behind by harness processes that no longer exist.
pub(crate) fn cleanup_stale_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    let me = std::process::id();
    for entry in entries.flatten().take(10_000) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = owner_pid(&name) else {
            continue;
        };
        if pid != me && !pid_exists(pid) && entry.path().is_dir() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pid_parses_prefix() {
        assert_eq!(owner_pid("ikl123x4-cli"), Some(123));
        assert_eq!(owner_pid("ikl123x45"), Some(123));
        assert_eq!(owner_pid("ikl123-cli"), None);
        assert_eq!(owner_pid("iklx4-cli"), None);
        assert_eq!(owner_pid("mgw"), None);
        assert_eq!(owner_pid("ikl12ax4-cli"), None);
    }

    #[test]
    fn run_is_bounded() {
        let mut cmd = Command::new("sleep");
        cmd.arg("5");
        let t = Instant::now();
        let r = run(&mut cmd, Duration::from_millis(200));
        assert!(matches!(r, Err(HarnessError::CommandTimeout { .. })));
        assert!(t.elapsed() < Duration::from_secs(3));
    }
}
