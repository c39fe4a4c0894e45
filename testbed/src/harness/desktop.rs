//! Where the desktop client binary (`ikelink`, crate `ikelink-desktop`) is, for the tests that run it.
//!
//! Cargo only exposes `CARGO_BIN_EXE_<name>` to the tests of the package that has the binary, and the client is
//! in another crate. So the first call builds it with `cargo build -p ikelink-desktop --bin ikelink`, in the same
//! profile as the running test binary (`target/<profile>/deps/<test>-<hash>`), and takes the path cargo reports;
//! an up-to-date binary makes that a no-op. `IKELINK_BIN=/path/to/ikelink` names a prebuilt binary instead (the
//! VM runs of scripts/test.sh, where the test binaries run prebuilt). Any failure panics with what to do; a test
//! never runs without the client it asked for.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use super::process::wait_child_timeout;

/// Bound on the build (a cold build of the client on two cores takes a few minutes).
const BUILD_TIMEOUT: Duration = Duration::from_secs(1800);

/// The desktop client binary; built (once per process) when `IKELINK_BIN` is not set. Panics when it cannot be
/// found or built.
pub fn desktop_bin() -> &'static Path {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BIN.get_or_init(locate) {
        Ok(path) => path,
        Err(e) => panic!("the desktop client binary `ikelink` (crate ikelink-desktop) is not available: {e}"),
    }
}

fn locate() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("IKELINK_BIN") {
        let bin = PathBuf::from(bin);
        return if bin.is_file() {
            Ok(bin)
        } else {
            Err(format!("IKELINK_BIN={} is not a file; build it with `cargo build -p ikelink-desktop`", bin.display()))
        };
    }
    build()
}

/// The cargo profile of the running executable: `target/<profile>/deps/<name>-<hash>` or `target/<profile>/<name>`.
fn own_profile() -> Result<String, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot locate the running executable: {e}"))?;
    let mut dir = exe.parent().ok_or("the running executable has no directory")?;
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir = dir.parent().ok_or("no profile directory above deps/")?;
    }
    let name = dir.file_name().and_then(|n| n.to_str()).ok_or("the profile directory has no name")?;
    Ok(name.to_string())
}

fn build() -> Result<PathBuf, String> {
    let cargo = std::env::var_os("CARGO")
        .map(PathBuf::from)
        .or_else(|| option_env!("CARGO").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("cargo"));
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("Cargo.toml");
    let mut cmd = Command::new(&cargo);
    cmd.args([
        "build",
        "--quiet",
        "-p",
        "ikelink-desktop",
        "--bin",
        "ikelink",
        "--message-format=json",
        "--manifest-path",
    ])
    .arg(&manifest);
    match own_profile()?.as_str() {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    let shown =
        format!("{} build -p ikelink-desktop --bin ikelink (--manifest-path {})", cargo.display(), manifest.display());
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot run `{shown}`: {e}; set IKELINK_BIN to a built client instead"))?;
    // Drained by a thread so a long build's output never fills the pipe while we wait.
    let mut stdout = child.stdout.take().ok_or("no stdout pipe")?;
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        out
    });
    let status = wait_child_timeout(&mut child, BUILD_TIMEOUT).map_err(|e| e.to_string())?;
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!("`{shown}` did not finish within {BUILD_TIMEOUT:?} and was killed"));
    };
    let out = reader.join().map_err(|_| "the cargo output reader panicked")?;
    if !status.success() {
        return Err(format!("`{shown}` failed ({status}); its errors are above"));
    }
    let exe = out
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "ikelink")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| format!("`{shown}` succeeded but reported no `ikelink` executable"))?;
    if !exe.is_file() {
        return Err(format!("`{shown}` reported {}, which is not a file", exe.display()));
    }
    Ok(exe)
}
