//! Errors of the interop harness.

use std::path::PathBuf;
use std::time::Duration;

/// Anything that can go wrong while building a testbed or driving strongSwan.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// A command ran but exited unsuccessfully.
    #[error("command `{command}` failed ({status}): {stderr}")]
    CommandFailed { command: String, status: String, stderr: String },
    /// A command could not be started at all (missing binary, ...).
    #[error("could not run `{command}`: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    /// A command did not finish within its time bound and was killed.
    #[error("command `{command}` timed out after {timeout:?} and was killed; stderr: {stderr}")]
    CommandTimeout { command: String, timeout: Duration, stderr: String },
    /// A bounded wait for some condition expired.
    #[error("timed out after {timeout:?} waiting for {what}")]
    WaitTimeout { what: String, timeout: Duration },
    /// File system error on a harness file.
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A daemon we started exited early or misbehaved.
    #[error("{what}: {detail}")]
    Daemon { what: String, detail: String },
    /// Output of a tool could not be understood.
    #[error("cannot parse output of {what}: {detail}")]
    Parse { what: String, detail: String },
    /// The environment cannot host the testbed (not root, tool missing, ...).
    #[error("testbed setup: {0}")]
    Setup(String),
}

/// Result alias of the harness.
pub type Result<T> = std::result::Result<T, HarnessError>;

impl HarnessError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        HarnessError::Io { path: path.into(), source }
    }
}
