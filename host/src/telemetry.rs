//! Logging: a tracing subscriber writing to stderr through a non-blocking
//! writer (the request path never waits on the terminal), in the manifest's
//! format (`pretty`: one human-readable line per event; `json`: one JSON
//! object per line). `COVET_LOG` overrides the manifest's level filter.
//! Lines are written in batches: the writer thread flushes whenever its queue
//! is empty, so a quiet host still logs each line at once.

use std::io::IsTerminal;

use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

use crate::manifest::{LogFormat, LogSettings};

/// Installs the global subscriber and returns the writer it uses (the access
/// log shares it, so lines stay in order). Keep the guard alive until exit:
/// dropping it flushes buffered lines.
pub fn init(settings: &LogSettings) -> (WorkerGuard, NonBlocking) {
    let filter = EnvFilter::try_from_env("COVET_LOG").unwrap_or_else(|_| EnvFilter::new(&settings.level));
    // The worker drains every queued line, then flushes: under load many
    // access-log lines go out in one write(2) instead of one each.
    let buffered = std::io::BufWriter::with_capacity(64 * 1024, std::io::stderr());
    let (writer, guard) = NonBlockingBuilder::default().lossy(false).finish(buffered);
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer.clone()).with_ansi(std::io::stderr().is_terminal());
    let installed = match settings.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
    if let Err(e) = installed {
        eprintln!("covet: logging was already set up: {e}");
    }
    (guard, writer)
}
