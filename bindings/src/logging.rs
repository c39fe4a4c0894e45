//! Log lines for the app: `tracing` events formatted and handed to a [`LogSink`] (Android `Log`, Apple
//! `os_log`). Secrets are never logged by Ikelink.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;
use tracing_subscriber::reload;

use crate::error::{CallbackError, VpnError};
use crate::platform::guard;

/// How much to log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum LogLevel {
    Off,
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl From<LogLevel> for LevelFilter {
    fn from(l: LogLevel) -> Self {
        match l {
            LogLevel::Off => LevelFilter::OFF,
            LogLevel::Error => LevelFilter::ERROR,
            LogLevel::Warn => LevelFilter::WARN,
            LogLevel::Info => LevelFilter::INFO,
            LogLevel::Debug => LevelFilter::DEBUG,
            LogLevel::Trace => LevelFilter::TRACE,
        }
    }
}

/// Receives Ikelink's log lines (any thread).
#[uniffi::export(with_foreign)]
pub trait LogSink: Send + Sync {
    fn log(&self, level: LogLevel, target: String, message: String) -> Result<(), CallbackError>;
}

type Sink = Mutex<Option<Arc<dyn LogSink>>>;

static SINK: Sink = Mutex::new(None);
/// Ikelink's subscriber (off until [`set_logger`]) and the handle that sets its level.
static LOGGER: OnceLock<(tracing::Dispatch, reload::Handle<LevelFilter, tracing_subscriber::Registry>)> =
    OnceLock::new();

fn logger() -> &'static (tracing::Dispatch, reload::Handle<LevelFilter, tracing_subscriber::Registry>) {
    LOGGER.get_or_init(|| {
        let (filter, handle) = reload::Layer::new(LevelFilter::OFF);
        (tracing::Dispatch::new(tracing_subscriber::registry().with(filter).with(SinkLayer)), handle)
    })
}

/// Makes Ikelink's subscriber the default of the calling thread for its whole life: every thread of a
/// `VpnClient`'s runtime starts with this, so Ikelink's logs reach the sink whatever the process's global
/// subscriber is (a host app may have its own `tracing` setup, which keeps everything else).
pub(crate) fn attach_to_thread() {
    let guard = tracing::dispatcher::set_default(&logger().0);
    // The default stays for the thread's lifetime (runtime threads end with the runtime).
    std::mem::forget(guard);
}

/// Sends Ikelink's logs at `level` and above to `sink`; call again to change either. Ikelink's threads log to
/// it whatever subscriber the process has; if the process has none, Ikelink's becomes the global one (so lines
/// from the app's calls into Ikelink arrive too).
#[uniffi::export]
pub fn set_logger(level: LogLevel, sink: Arc<dyn LogSink>) -> Result<(), VpnError> {
    if let Ok(mut s) = SINK.lock() {
        *s = Some(sink);
    }
    let (dispatch, handle) = logger();
    // Fails when the host app installed its own global subscriber: fine, the runtime's threads still use ours.
    let _ = tracing::dispatcher::set_global_default(dispatch.clone());
    handle.reload(LevelFilter::from(level)).map_err(|e| VpnError::Internal { reason: e.to_string() })?;
    tracing::callsite::rebuild_interest_cache();
    Ok(())
}

struct SinkLayer;

impl<S: Subscriber> Layer<S> for SinkLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let Some(sink) = SINK.lock().ok().and_then(|s| s.clone()) else { return };
        let mut line = Line(String::new());
        event.record(&mut line);
        let meta = event.metadata();
        let level = match *meta.level() {
            Level::ERROR => LogLevel::Error,
            Level::WARN => LogLevel::Warn,
            Level::INFO => LogLevel::Info,
            Level::DEBUG => LogLevel::Debug,
            Level::TRACE => LogLevel::Trace,
        };
        // A failing sink cannot be reported through itself; drop the line.
        let _ = guard("log", || sink.log(level, meta.target().to_owned(), line.0));
    }
}

/// `message key=value ...`, like tracing's compact format.
struct Line(String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let rest = std::mem::take(&mut self.0);
            let _ = write!(self.0, "{value:?}{rest}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            let rest = std::mem::take(&mut self.0);
            let _ = write!(self.0, "{value}{rest}");
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    struct Collect(Mutex<Vec<String>>);

    impl LogSink for Collect {
        fn log(&self, _level: LogLevel, _target: String, message: String) -> Result<(), CallbackError> {
            self.0.lock().unwrap().push(message);
            Ok(())
        }
    }

    // Issue 13: a host app with its own tracing subscriber keeps it, and Ikelink's threads still log to the
    // app's sink.
    #[test]
    fn coexists_with_the_host_apps_subscriber() {
        let host = tracing_subscriber::registry().with(LevelFilter::OFF);
        // The test binary's first global subscriber (no other test in this crate installs one).
        tracing::subscriber::set_global_default(host).unwrap();
        let sink = Arc::new(Collect(Mutex::new(Vec::new())));
        set_logger(LogLevel::Info, sink.clone()).unwrap();
        std::thread::spawn(|| {
            attach_to_thread();
            tracing::info!("from an Ikelink thread");
            tracing::debug!("below the level");
        })
        .join()
        .unwrap();
        tracing::info!("from the host's thread");
        assert_eq!(*sink.0.lock().unwrap(), ["from an Ikelink thread"]);
    }
}
