//! Runs system tools (`ip`, `resolvectl`, `ifconfig`) with explicit arguments: no shell, bounded time,
//! exit status checked, stderr kept for the error.

use std::io::Read;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::PlatformError;

/// How long one tool may run before it is killed.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
/// Poll interval while waiting for a tool to exit.
const POLL_INTERVAL: Duration = Duration::from_millis(5);

/// Output of a tool that exited successfully.
#[derive(Debug)]
pub(crate) struct CommandOutput {
    pub stdout: String,
}

/// Renders `program args...` for error messages and logs.
pub(crate) fn display(program: &str, args: &[&str]) -> String {
    let mut s = String::from(program);
    for a in args {
        s.push(' ');
        s.push_str(a);
    }
    s
}

/// Runs `program` with `args`; a non-zero exit is [`PlatformError::Command`].
pub(crate) fn run(program: &str, args: &[&str]) -> Result<CommandOutput, PlatformError> {
    let command = display(program, args);
    tracing::debug!(%command, "running");
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("LC_ALL", "C")
        .spawn()
        .map_err(|source| PlatformError::Spawn { command: command.clone(), source })?;
    let stdout = child.stdout.take().map(|mut out| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = out.read_to_end(&mut buf);
            buf
        })
    });
    let stderr = child.stderr.take().map(|mut err| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = err.read_to_end(&mut buf);
            buf
        })
    });
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => thread::sleep(POLL_INTERVAL),
            Ok(None) => {
                // Our own child: kill it and reap it so no zombie is left behind.
                let _ = child.kill();
                let _ = child.wait();
                return Err(PlatformError::Timeout { command });
            }
            Err(source) => return Err(PlatformError::Spawn { command, source }),
        }
    };
    let collect = |h: Option<thread::JoinHandle<Vec<u8>>>| {
        h.and_then(|h| h.join().ok()).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
    };
    let stdout = collect(stdout);
    let stderr = collect(stderr);
    if status.success() {
        Ok(CommandOutput { stdout })
    } else {
        Err(PlatformError::Command {
            command,
            status: status.code().map_or_else(|| "killed by signal".to_owned(), |c| format!("exit {c}")),
            stderr: stderr.trim().to_owned(),
        })
    }
}
