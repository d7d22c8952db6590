//! The process's one tracing subscriber. The library crates only emit
//! events (`tracing::{error, warn, info, debug}`); this decides how they
//! look and where they go: stderr, one line per event.
//!
//! - Human (the default): the message alone, as the `eprintln!` lines
//!   were: no timestamp, level or target (a `flint vmm` stderr may be the
//!   instance's console, and the daemon reads the last `flint vmm: ...`
//!   line of a VMM's log as the reason it ended). The messages keep
//!   naming the instance or volume as they always did; the fields
//!   (`instance_id`, `volume_id`, `snapshot_id`) are for the JSON format.
//! - JSON (`--log-format json`): one object per line with the level, the
//!   target and every field (`instance_id`, `volume_id`, ...); with a
//!   timestamp except in `flint vmm` (whose lines stay as the VM wrote them).
//!
//! A failed write (full disk, closed stderr) drops the line: never a panic,
//! unlike `eprintln!`, and no report of it to the same broken stderr.

use std::fmt;

use clap::ValueEnum;
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// The message alone, one line per event.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// The least severe level written. `error` is always written: a failing
/// `flint vmm` must leave its one-line reason on stderr.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    Error,
    Warn,
    #[default]
    Info,
    Debug,
    Trace,
}

impl From<LogLevel> for LevelFilter {
    fn from(level: LogLevel) -> Self {
        match level {
            LogLevel::Error => LevelFilter::ERROR,
            LogLevel::Warn => LevelFilter::WARN,
            LogLevel::Info => LevelFilter::INFO,
            LogLevel::Debug => LevelFilter::DEBUG,
            LogLevel::Trace => LevelFilter::TRACE,
        }
    }
}

/// Installs the subscriber for the whole process; call once, before any
/// thread starts. `timestamps` applies to JSON only.
pub fn install(format: LogFormat, level: LogLevel, timestamps: bool) {
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(LevelFilter::from(level))
        // Otherwise a failed write is reported with eprintln!, which
        // panics when stderr is what failed.
        .log_internal_errors(false);
    // An error here means a subscriber is already set: keep that one.
    let _ = match (format, timestamps) {
        (LogFormat::Human, _) => builder.event_format(Human).try_init(),
        (LogFormat::Json, true) => builder.json().flatten_event(true).try_init(),
        (LogFormat::Json, false) => builder.json().flatten_event(true).without_time().try_init(),
    };
}

/// The human format: the event's message and a newline, nothing else.
pub struct Human;

impl<S, N> FormatEvent<S, N> for Human
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut message = Message {
            writer: &mut writer,
            result: Ok(()),
        };
        event.record(&mut message);
        message.result?;
        writeln!(writer)
    }
}

/// Writes the `message` field only (see the module's doc for the others).
struct Message<'a, 'w> {
    writer: &'a mut Writer<'w>,
    result: fmt::Result,
}

impl Visit for Message<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.result = self.writer.write_str(value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.result = write!(self.writer, "{value:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use tracing::{info, warn};

    use super::Human;

    /// A writer into a shared buffer.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buffer {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn human_lines_are_the_message_alone() {
        let buffer = Buffer::default();
        let out = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || out.clone())
            .event_format(Human)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let id = "i-0123";
            warn!(instance_id = %id, "flint serve: instance {id}: launch failed: no disk");
            info!("flint serve: stopped");
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text,
            "flint serve: instance i-0123: launch failed: no disk\nflint serve: stopped\n"
        );
    }
}
