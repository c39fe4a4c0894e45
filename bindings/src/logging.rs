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
static FILTER: OnceLock<reload::Handle<LevelFilter, tracing_subscriber::Registry>> = OnceLock::new();

/// Sends Ikelink's logs at `level` and above to `sink`; call again to change either. Installs Ikelink's
/// log subscriber for the process the first time (fails if the process already has another one).
#[uniffi::export]
pub fn set_logger(level: LogLevel, sink: Arc<dyn LogSink>) -> Result<(), VpnError> {
    if let Ok(mut s) = SINK.lock() {
        *s = Some(sink);
    }
    let handle = match FILTER.get() {
        Some(h) => h.clone(),
        None => {
            let (filter, handle) = reload::Layer::new(LevelFilter::from(level));
            tracing_subscriber::registry()
                .with(filter)
                .with(SinkLayer)
                .try_init()
                .map_err(|e| VpnError::Internal { reason: format!("cannot install the log subscriber: {e}") })?;
            let _ = FILTER.set(handle.clone());
            handle
        }
    };
    handle.reload(LevelFilter::from(level)).map_err(|e| VpnError::Internal { reason: e.to_string() })
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
