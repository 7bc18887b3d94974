//! Logging: a tracing subscriber writing to stderr through a non-blocking
//! writer (the request path never waits on the terminal), in the manifest's
//! format (`pretty`: one human-readable line per event; `json`: one JSON
//! object per line). `COVET_LOG` overrides the manifest's level filter.

use std::io::IsTerminal;

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

use crate::manifest::{LogFormat, LogSettings};

/// Installs the global subscriber. Keep the guard alive until exit: dropping
/// it flushes buffered lines.
pub fn init(settings: &LogSettings) -> WorkerGuard {
    let filter = EnvFilter::try_from_env("COVET_LOG").unwrap_or_else(|_| EnvFilter::new(&settings.level));
    let (writer, guard) = NonBlockingBuilder::default().lossy(false).finish(std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer).with_ansi(std::io::stderr().is_terminal());
    let installed = match settings.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
    if let Err(e) = installed {
        eprintln!("covet: logging was already set up: {e}");
    }
    guard
}
