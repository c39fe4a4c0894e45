//! The undo journal: a small TOML file listing every change [`super::apply`] makes, written (atomically
//! and synced) before the first change, so a crashed run can be cleaned up by [`super::recover`].

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::PlatformError;

/// Journal format version.
pub(crate) const JOURNAL_VERSION: u32 = 1;
/// File name suffix of journals.
pub(crate) const JOURNAL_SUFFIX: &str = ".state";

/// One route installed by us (always with protocol [`super::ROUTE_PROTOCOL`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RouteEntry {
    pub destination: IpAddr,
    pub prefix_len: u8,
    pub dev: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<IpAddr>,
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
}

/// Everything one [`super::apply`] call changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Journal {
    pub version: u32,
    pub tun_name: String,
    /// The process that applied the settings and its start time (clock ticks since boot), which together
    /// identify it even if the pid is reused.
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
}

/// `<state_dir>/<tun_name>.state`.
pub(crate) fn journal_path(state_dir: &Path, tun_name: &str) -> PathBuf {
    state_dir.join(format!("{tun_name}{JOURNAL_SUFFIX}"))
}

/// `<state_dir>/<tun_name>.resolv.conf`: the original resolver file.
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
                },
                RouteEntry { destination: "::".parse().unwrap(), prefix_len: 1, dev: "ikl0".into(), via: None },
            ],
            dns: Some(DnsChange::ResolvConf {
                path: "/etc/resolv.conf".into(),
                backup: Some(backup_path(&dir, "ikl0")),
                written: "nameserver 100.64.0.53\n".into(),
            }),
            firewall: None,
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
}
