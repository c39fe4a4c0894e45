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

/// Creates the state directory (mode 0700 on Unix).
pub(crate) fn create_state_dir(dir: &Path) -> Result<(), PlatformError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(io_error(dir))
}

/// Writes `bytes` to `path` atomically: a synced temporary file renamed over it, then the directory synced.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PlatformError> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    {
        let mut f = fs::File::create(&tmp).map_err(io_error(&tmp))?;
        f.write_all(bytes).map_err(io_error(&tmp))?;
        f.sync_all().map_err(io_error(&tmp))?;
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

/// Processes every journal in `state_dir` (the platform's `owner_alive` and `restore` do the work): journals of
/// a running owner are skipped, unreadable ones moved aside (`.corrupt`), the others undone and deleted.
pub(crate) fn recover_with(
    state_dir: &Path,
    owner_alive: impl Fn(&Journal) -> bool,
    mut restore: impl FnMut(&Path, &Journal) -> Result<UndoStats, PlatformError>,
) -> Result<Option<RecoveryReport>, PlatformError> {
    let entries = match fs::read_dir(state_dir) {
        Ok(it) => it,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(state_dir)(e)),
    };
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
                let mut aside = path.as_os_str().to_owned();
                aside.push(".corrupt");
                let aside = PathBuf::from(aside);
                let _ = fs::rename(&path, &aside);
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

impl Journal {
    pub(crate) fn save(&self, path: &Path) -> Result<(), PlatformError> {
        let text = toml::to_string(self)
            .map_err(|e| PlatformError::Journal { path: path.to_owned(), reason: e.to_string() })?;
        write_atomic(path, text.as_bytes())
    }

    pub(crate) fn load(path: &Path) -> Result<Journal, PlatformError> {
        let text = fs::read_to_string(path).map_err(io_error(path))?;
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
        assert_eq!(recover_with(&dir, |_| false, |_, _| unreachable!()).unwrap(), None);
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
        let mut undone = Vec::new();
        let report = recover_with(
            &dir,
            |j| owner_alive_with(j, |pid| (pid == 2).then_some(7)),
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
        assert_eq!(report.warnings.len(), 2, "{:?}", report.warnings);
        assert!(dir.join("bad.state.corrupt").exists());
        assert!(journal_path(&dir, "live").exists());
        fs::remove_dir_all(&dir).unwrap();
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
}
