//! The undo journal: a small TOML file listing every change [`super::apply`] makes, written (atomically
//! and synced) before the first change, so a crashed run can be cleaned up by [`super::recover`].

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{PlatformError, RecoveryReport};

/// Journal format version.
pub(crate) const JOURNAL_VERSION: u32 = 1;
/// File name suffix of journals.
pub(crate) const JOURNAL_SUFFIX: &str = ".state";

/// One route installed by us (Linux: always with protocol [`super::ROUTE_PROTOCOL`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RouteEntry {
    pub destination: IpAddr,
    pub prefix_len: u8,
    /// The interface name (Windows: its alias).
    pub dev: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<IpAddr>,
    /// Windows: the interface's LUID, which the IP Helper API addresses routes by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub luid: Option<u64>,
}

/// Windows: an interface metric we changed (the TUN's, for a full tunnel), with the value to put back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MetricChange {
    pub luid: u64,
    /// The IPv6 (else IPv4) interface.
    pub ipv6: bool,
    /// The metric we set (automatic metric off).
    pub metric: u32,
    pub previous_automatic: bool,
    pub previous_metric: u32,
}

/// How DNS was changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum DnsChange {
    /// Per-link settings in systemd-resolved; undone with `resolvectl revert <link>`.
    Resolved { link: String },
    /// `path` rewritten with `written`; the original bytes are in `backup` (`None`: there was no file).
    ResolvConf {
        path: PathBuf,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        backup: Option<PathBuf>,
        written: String,
    },
    /// Windows: DNS servers (and search list) set on interface `luid` with `SetInterfaceDnsSettings`; undone by
    /// clearing them.
    WindowsInterface { luid: u64, alias: String },
}

/// Everything one [`super::apply`] call changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Journal {
    pub version: u32,
    pub tun_name: String,
    /// The process that applied the settings and its start time (Linux: clock ticks since boot; Windows: its
    /// creation time in 100 ns units since 1601), which together identify it even if the pid is reused.
    pub owner_pid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_start: Option<u64>,
    /// In installation order; undone in reverse.
    #[serde(default)]
    pub routes: Vec<RouteEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<DnsChange>,
    /// The nftables table (family inet) of the kill switch, deleted on restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firewall: Option<String>,
    /// Windows: interface metrics changed, in order; put back in reverse.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<MetricChange>,
    /// Prefixes routed outside the tunnel (`NetworkConfig::excluded`, `a.b.c.d/len`), which the kill switch
    /// lets out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bypass: Vec<String>,
}

/// `<state_dir>/<tun_name>.state`.
pub(crate) fn journal_path(state_dir: &Path, tun_name: &str) -> PathBuf {
    state_dir.join(format!("{tun_name}{JOURNAL_SUFFIX}"))
}

/// `<state_dir>/<tun_name>.resolv.conf`: the original resolver file.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) fn backup_path(state_dir: &Path, tun_name: &str) -> PathBuf {
    state_dir.join(format!("{tun_name}.resolv.conf"))
}

pub(crate) fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> PlatformError + '_ {
    move |source| PlatformError::Io { path: path.to_owned(), source }
}

/// Creates the state directory (mode 0700 on Unix, parents too) or checks an existing one. It holds the
/// journals that recovery replays as root, so on Unix an existing directory (or path) is refused
/// ([`PlatformError::UnsafeStateDir`]) if it is a symbolic link, not a directory, not owned by our effective
/// uid, or writable by group or others: whoever can write there could make recovery undo things of its choosing.
pub(crate) fn create_state_dir(dir: &Path) -> Result<(), PlatformError> {
    match fs::symlink_metadata(dir) {
        Ok(meta) => return check_state_dir(dir, &meta),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error(dir)(e)),
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(io_error(dir))?;
    // Checked again: someone may have created it first.
    let meta = fs::symlink_metadata(dir).map_err(io_error(dir))?;
    check_state_dir(dir, &meta)
}

/// Refuses a state directory that others could write to (see [`create_state_dir`]).
#[cfg(unix)]
pub(crate) fn check_state_dir(dir: &Path, meta: &fs::Metadata) -> Result<(), PlatformError> {
    check_state_dir_for(dir, meta, effective_uid())
}

#[cfg(not(unix))]
pub(crate) fn check_state_dir(dir: &Path, meta: &fs::Metadata) -> Result<(), PlatformError> {
    if meta.is_dir() {
        Ok(())
    } else {
        Err(unsafe_dir(dir, "it is not a directory".to_owned()))
    }
}

fn unsafe_dir(dir: &Path, reason: String) -> PlatformError {
    PlatformError::UnsafeStateDir { path: dir.to_owned(), reason }
}

/// [`check_state_dir`] against `euid` (`None`: unknown, where this platform cannot tell; owner not checked).
#[cfg(unix)]
fn check_state_dir_for(dir: &Path, meta: &fs::Metadata, euid: Option<u32>) -> Result<(), PlatformError> {
    use std::os::unix::fs::MetadataExt;
    if meta.file_type().is_symlink() {
        return Err(unsafe_dir(dir, "it is a symbolic link".to_owned()));
    }
    if !meta.is_dir() {
        return Err(unsafe_dir(dir, "it is not a directory".to_owned()));
    }
    if let Some(euid) = euid {
        if meta.uid() != euid {
            return Err(unsafe_dir(
                dir,
                format!("it is owned by uid {}, not by uid {euid} running ikelink", meta.uid()),
            ));
        }
    }
    if meta.mode() & 0o022 != 0 {
        return Err(unsafe_dir(dir, format!("its mode {:04o} lets group or others write to it", meta.mode() & 0o7777)));
    }
    Ok(())
}

/// The effective uid, from `/proc/self/status` (`geteuid` would need unsafe code, which the crate forbids);
/// unreadable counts as root, the strictest owner to demand.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn effective_uid() -> Option<u32> {
    let status = fs::read_to_string("/proc/self/status").ok();
    let euid = status
        .as_deref()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Uid:")))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|u| u.parse().ok());
    Some(euid.unwrap_or(0))
}

/// Other Unix systems: no route or DNS management here, and no safe way to ask for the uid; owner not checked.
#[cfg(all(unix, not(any(target_os = "linux", target_os = "android"))))]
fn effective_uid() -> Option<u32> {
    None
}

/// Creates `path` for writing: mode 0600, never through an existing file or symbolic link (`O_CREAT|O_EXCL`,
/// plus `O_NOFOLLOW` on Linux).
fn create_private(path: &Path) -> std::io::Result<fs::File> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
        #[cfg(any(target_os = "linux", target_os = "android"))]
        options.custom_flags(nix::libc::O_NOFOLLOW);
    }
    options.open(path)
}

/// Reads a file of the state directory, refusing anything but a regular file (a symbolic link is not followed).
pub(crate) fn read_private(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut options = fs::OpenOptions::new();
    options.read(true);
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(nix::libc::O_NOFOLLOW);
    }
    if fs::symlink_metadata(path)?.file_type().is_symlink() {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "a symbolic link; not followed"));
    }
    let mut f = options.open(path)?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "not a regular file"));
    }
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Writes `bytes` to `path` atomically: a synced temporary file (`<path>.tmp`, see [`create_private`]) renamed
/// over it, then the directory synced. A leftover temporary file (a crash, or something planted) is unlinked,
/// not followed, and creation retried once.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PlatformError> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let mut f = match create_private(&tmp) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            tracing::warn!(path = %tmp.display(), "removing a leftover temporary file");
            fs::remove_file(&tmp).map_err(io_error(&tmp))?;
            create_private(&tmp).map_err(io_error(&tmp))?
        }
        Err(e) => return Err(io_error(&tmp)(e)),
    };
    let written = f.write_all(bytes).and_then(|()| f.sync_all());
    drop(f);
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(io_error(&tmp)(e));
    }
    fs::rename(&tmp, path).map_err(io_error(path))?;
    sync_parent(path);
    Ok(())
}

/// Best-effort fsync of the directory holding `path`, so a rename or unlink survives a crash.
pub(crate) fn sync_parent(path: &Path) {
    if let Some(dir) = path.parent() {
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

/// Deletes a file; one that does not exist is fine.
pub(crate) fn remove_optional(path: &Path) -> Result<(), PlatformError> {
    match fs::remove_file(path) {
        Ok(()) => {
            sync_parent(path);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error(path)(e)),
    }
}

/// Counters of one undo.
#[derive(Debug, Default)]
pub(crate) struct UndoStats {
    pub routes_removed: usize,
    pub dns_restored: usize,
    pub warnings: Vec<String>,
}

/// True if the process that wrote `journal` still runs, given how to read a process's start time (`None`: no
/// such process). A journal without a start time trusts the pid alone.
pub(crate) fn owner_alive_with(journal: &Journal, process_start: impl Fn(u32) -> Option<u64>) -> bool {
    match process_start(journal.owner_pid) {
        Some(start) => journal.owner_start.is_none_or(|s| s == start),
        None => false,
    }
}

/// Processes every journal in `state_dir` (the platform's `owner_alive`, `validate` and `restore` do the work):
/// journals of a running owner are skipped, unreadable ones moved aside (`.corrupt`), the others undone and
/// deleted. Recovery runs as root on what a file says, so the directory must pass [`check_state_dir`], and a
/// journal that is not at its own path (`<tun_name>.state`) or that `validate` refuses (something this program
/// could not have written) is not replayed: it is moved aside (`.rejected`, so it is not retried at every
/// start) and reported in [`RecoveryReport::rejected`].
pub(crate) fn recover_with(
    state_dir: &Path,
    owner_alive: impl Fn(&Journal) -> bool,
    validate: impl Fn(&Journal) -> Result<(), String>,
    mut restore: impl FnMut(&Path, &Journal) -> Result<UndoStats, PlatformError>,
) -> Result<Option<RecoveryReport>, PlatformError> {
    match fs::symlink_metadata(state_dir) {
        Ok(meta) => check_state_dir(state_dir, &meta)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(state_dir)(e)),
    }
    let entries = fs::read_dir(state_dir).map_err(io_error(state_dir))?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(JOURNAL_SUFFIX)))
        .collect();
    if paths.is_empty() {
        return Ok(None);
    }
    paths.sort();
    let mut report = RecoveryReport::default();
    let mut first_error: Option<PlatformError> = None;
    for path in paths {
        let journal = match Journal::load(&path) {
            Ok(j) => j,
            Err(PlatformError::Journal { reason, .. }) => {
                let aside = move_aside(&path, ".corrupt");
                let w =
                    format!("unreadable journal moved to {}: {reason}; check routes and DNS by hand", aside.display());
                tracing::warn!("{w}");
                report.warnings.push(w);
                continue;
            }
            Err(e) => {
                first_error.get_or_insert(e);
                continue;
            }
        };
        if owner_alive(&journal) {
            let w = format!("journal {} belongs to running process {}; skipped", path.display(), journal.owner_pid);
            tracing::warn!("{w}");
            report.warnings.push(w);
            continue;
        }
        let location = if journal_path(state_dir, &journal.tun_name) == path {
            Ok(())
        } else {
            Err(format!("it names TUN {:?}, which is not its file name", journal.tun_name))
        };
        if let Err(reason) = location.and_then(|()| validate(&journal)) {
            let aside = move_aside(&path, ".rejected");
            let w = format!(
                "journal {} refused, nothing undone: {reason}; moved to {}; check routes and DNS by hand",
                path.display(),
                aside.display()
            );
            tracing::warn!("{w}");
            report.warnings.push(w);
            report.rejected.push(path);
            continue;
        }
        tracing::info!(journal = %path.display(), tun = %journal.tun_name, "recovering from a previous run");
        match restore(&path, &journal) {
            Ok(stats) => {
                report.journals.push(path);
                report.routes_removed += stats.routes_removed;
                report.dns_restored += stats.dns_restored;
                report.warnings.extend(stats.warnings);
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(Some(report)),
    }
}

/// Renames `path` to `path` + `suffix` (no longer a journal name, so not processed again); returns the new path.
fn move_aside(path: &Path, suffix: &str) -> PathBuf {
    let mut aside = path.as_os_str().to_owned();
    aside.push(suffix);
    let aside = PathBuf::from(aside);
    if let Err(e) = fs::rename(path, &aside) {
        tracing::warn!(error = %e, journal = %path.display(), "could not move the journal aside");
    }
    aside
}

impl Journal {
    pub(crate) fn save(&self, path: &Path) -> Result<(), PlatformError> {
        let text = toml::to_string(self)
            .map_err(|e| PlatformError::Journal { path: path.to_owned(), reason: e.to_string() })?;
        write_atomic(path, text.as_bytes())
    }

    /// Reads a journal; a symbolic link or anything but a regular file is corrupt (not followed).
    pub(crate) fn load(path: &Path) -> Result<Journal, PlatformError> {
        let bytes = read_private(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidData => PlatformError::Journal { path: path.to_owned(), reason: e.to_string() },
            _ => io_error(path)(e),
        })?;
        let text = String::from_utf8(bytes)
            .map_err(|_| PlatformError::Journal { path: path.to_owned(), reason: "not UTF-8".to_owned() })?;
        let journal: Journal = toml::from_str(&text)
            .map_err(|e| PlatformError::Journal { path: path.to_owned(), reason: e.to_string() })?;
        if journal.version != JOURNAL_VERSION {
            return Err(PlatformError::Journal {
                path: path.to_owned(),
                reason: format!("unsupported version {}", journal.version),
            });
        }
        Ok(journal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_round_trips_through_toml() {
        let dir = std::env::temp_dir().join(format!("ikelink-journal-test-{}", std::process::id()));
        create_state_dir(&dir).unwrap();
        let path = journal_path(&dir, "ikl0");
        let j = Journal {
            version: JOURNAL_VERSION,
            tun_name: "ikl0".into(),
            owner_pid: 42,
            owner_start: Some(1234),
            routes: vec![
                RouteEntry {
                    destination: "203.0.113.2".parse().unwrap(),
                    prefix_len: 32,
                    dev: "eth0".into(),
                    via: Some("192.0.2.1".parse().unwrap()),
                    luid: None,
                },
                RouteEntry {
                    destination: "::".parse().unwrap(),
                    prefix_len: 1,
                    dev: "ikl0".into(),
                    via: None,
                    luid: None,
                },
            ],
            dns: Some(DnsChange::ResolvConf {
                path: "/etc/resolv.conf".into(),
                backup: Some(backup_path(&dir, "ikl0")),
                written: "nameserver 100.64.0.53\n".into(),
            }),
            firewall: None,
            metrics: vec![],
            bypass: vec![],
        };
        j.save(&path).unwrap();
        assert_eq!(Journal::load(&path).unwrap(), j);
        let j2 = Journal {
            dns: Some(DnsChange::Resolved { link: "ikl0".into() }),
            routes: vec![],
            firewall: Some("ikelink_ikl0".into()),
            ..j
        };
        j2.save(&path).unwrap();
        assert_eq!(Journal::load(&path).unwrap(), j2);
        fs::write(&path, "version = 1\nroutes = 5\n").unwrap();
        assert!(matches!(Journal::load(&path), Err(PlatformError::Journal { .. })));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn recovery_skips_live_owners_moves_corrupt_journals_aside_and_undoes_the_rest() {
        let dir = std::env::temp_dir().join(format!("ikelink-recover-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        create_state_dir(&dir).unwrap();
        assert_eq!(recover_with(&dir, |_| false, |_| Ok(()), |_, _| unreachable!()).unwrap(), None);
        let journal = |tun: &str, pid: u32| Journal {
            version: JOURNAL_VERSION,
            tun_name: tun.into(),
            owner_pid: pid,
            owner_start: Some(7),
            routes: vec![],
            dns: None,
            firewall: None,
            metrics: vec![],
            bypass: vec![],
        };
        journal("dead", 1).save(&journal_path(&dir, "dead")).unwrap();
        journal("live", 2).save(&journal_path(&dir, "live")).unwrap();
        fs::write(journal_path(&dir, "bad"), "not toml [").unwrap();
        // Refused: a journal under another TUN's name, one the platform check rejects.
        journal("elsewhere", 1).save(&journal_path(&dir, "moved")).unwrap();
        journal("hostile", 1).save(&journal_path(&dir, "hostile")).unwrap();
        // A symbolic link is not read through (it could name any file): moved aside as corrupt.
        let outside = dir.with_extension("outside.state");
        journal("link", 1).save(&outside).unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(&outside, journal_path(&dir, "link")).unwrap();
        let mut undone = Vec::new();
        let report = recover_with(
            &dir,
            |j| owner_alive_with(j, |pid| (pid == 2).then_some(7)),
            |j| if j.tun_name == "hostile" { Err("hostile".into()) } else { Ok(()) },
            |p, j| {
                undone.push(j.tun_name.clone());
                remove_optional(p)?;
                Ok(UndoStats { routes_removed: 2, dns_restored: 1, warnings: vec![] })
            },
        )
        .unwrap()
        .unwrap();
        assert_eq!(undone, vec!["dead".to_owned()]);
        assert_eq!(report.journals, vec![journal_path(&dir, "dead")]);
        assert_eq!((report.routes_removed, report.dns_restored), (2, 1));
        assert_eq!(report.rejected, vec![journal_path(&dir, "hostile"), journal_path(&dir, "moved")]);
        assert_eq!(report.warnings.len(), if cfg!(unix) { 5 } else { 4 }, "{:?}", report.warnings);
        assert!(dir.join("bad.state.corrupt").exists());
        assert_eq!(dir.join("link.state.corrupt").exists(), cfg!(unix));
        assert!(dir.join("hostile.state.rejected").exists());
        assert!(dir.join("moved.state.rejected").exists());
        assert!(journal_path(&dir, "live").exists());
        // Nothing left to retry.
        let again = recover_with(&dir, |_| true, |_| Ok(()), |_, _| unreachable!()).unwrap().unwrap();
        assert!(again.rejected.is_empty() && again.journals.is_empty());
        fs::remove_dir_all(&dir).unwrap();
        fs::remove_file(&outside).unwrap();
    }

    #[test]
    fn owner_is_identified_by_pid_and_start_time() {
        let j = Journal {
            version: JOURNAL_VERSION,
            tun_name: "x".into(),
            owner_pid: 10,
            owner_start: Some(99),
            routes: vec![],
            dns: None,
            firewall: None,
            metrics: vec![],
            bypass: vec![],
        };
        assert!(owner_alive_with(&j, |_| Some(99)));
        assert!(!owner_alive_with(&j, |_| Some(100)), "pid reused by another process");
        assert!(!owner_alive_with(&j, |_| None), "no such process");
        let no_start = Journal { owner_start: None, ..j };
        assert!(owner_alive_with(&no_start, |_| Some(5)));
    }

    #[cfg(unix)]
    fn test_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ikelink-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::MetadataExt;
        fs::symlink_metadata(path).unwrap().mode() & 0o7777
    }

    #[cfg(unix)]
    #[test]
    fn state_dir_is_created_private() {
        let top = test_dir("state-create");
        let dir = top.join("a").join("state");
        create_state_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&top.join("a")), 0o700, "missing parents too");
        create_state_dir(&dir).expect("our own directory is accepted again");
        fs::remove_dir_all(&top).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn existing_state_dir_writable_by_group_or_others_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = test_dir("state-mode");
        fs::create_dir(&dir).unwrap();
        for bad in [0o777, 0o770, 0o1777, 0o702] {
            fs::set_permissions(&dir, fs::Permissions::from_mode(bad)).unwrap();
            match create_state_dir(&dir) {
                Err(e @ PlatformError::UnsafeStateDir { .. }) => {
                    let msg = e.to_string();
                    assert!(msg.contains(&dir.display().to_string()) && msg.contains("write"), "{msg}");
                }
                other => panic!("mode {bad:o} accepted: {other:?}"),
            }
            // Recovery does not read journals from it either.
            let r = recover_with(&dir, |_| false, |_| Ok(()), |_, _| unreachable!());
            assert!(matches!(r, Err(PlatformError::UnsafeStateDir { .. })), "{r:?}");
        }
        // Readable by others is tolerated (as a 0755 directory of an earlier version).
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        create_state_dir(&dir).unwrap();
        fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn state_dir_owned_by_another_user_is_refused() {
        use std::os::unix::fs::MetadataExt;
        let dir = test_dir("state-owner");
        create_state_dir(&dir).unwrap();
        let meta = fs::symlink_metadata(&dir).unwrap();
        assert!(check_state_dir_for(&dir, &meta, Some(meta.uid())).is_ok());
        let other = check_state_dir_for(&dir, &meta, Some(meta.uid() + 1)).unwrap_err();
        assert!(other.to_string().contains("owned by uid"), "{other}");
        // For real where we may give it away (root): as nobody's, it is refused.
        if std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).is_ok() {
            let e = create_state_dir(&dir).unwrap_err();
            assert!(matches!(e, PlatformError::UnsafeStateDir { .. }), "{e}");
            assert!(e.to_string().contains("owned by uid 65534"), "{e}");
            assert!(recover_with(&dir, |_| false, |_| Ok(()), |_, _| unreachable!()).is_err());
        } else {
            println!("not root: chown to another uid skipped");
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn state_dir_symlink_or_file_is_refused() {
        let top = test_dir("state-link");
        create_state_dir(&top).unwrap();
        let real = top.join("real");
        create_state_dir(&real).unwrap();
        let link = top.join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let e = create_state_dir(&link).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        let file = top.join("file");
        fs::write(&file, "").unwrap();
        let e = create_state_dir(&file).unwrap_err();
        assert!(e.to_string().contains("not a directory"), "{e}");
        fs::remove_dir_all(&top).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn write_atomic_does_not_follow_a_symlink_at_the_temporary_path() {
        let dir = test_dir("atomic");
        create_state_dir(&dir).unwrap();
        let victim = dir.with_extension("victim");
        fs::write(&victim, "precious\n").unwrap();
        let path = journal_path(&dir, "ikl0");
        std::os::unix::fs::symlink(&victim, dir.join("ikl0.state.tmp")).unwrap();
        write_atomic(&path, b"journal\n").unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"precious\n", "the link's target is untouched");
        assert_eq!(fs::read(&path).unwrap(), b"journal\n");
        assert!(fs::symlink_metadata(&path).unwrap().is_file());
        assert_eq!(mode(&path), 0o600);
        assert!(!dir.join("ikl0.state.tmp").exists());
        // A stale temporary file from a crash is replaced too.
        fs::write(dir.join("ikl0.state.tmp"), "stale").unwrap();
        write_atomic(&path, b"again\n").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"again\n");
        fs::remove_dir_all(&dir).unwrap();
        fs::remove_file(&victim).unwrap();
    }
}
