//! A plugin's stdout and stderr, routed to the host log (when its manifest
//! grants `capabilities.stdio`): one `covet::plugin` event per line, tagged
//! with the plugin's name and the stream; stdout at info, stderr at warn.
//! Lines longer than [`MAX_LINE`] are cut into several events.

use std::{
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::{
    cli::{IsTerminal, StdoutStream},
    p2::{OutputStream, Pollable, StreamResult},
};

/// The longest line logged as one event.
const MAX_LINE: usize = 4096;

/// Which stream, and whose.
#[derive(Clone)]
pub struct LogStream {
    plugin: Arc<str>,
    stderr: bool,
}

impl LogStream {
    /// The plugin's stdout.
    pub fn stdout(plugin: &Arc<str>) -> LogStream {
        LogStream { plugin: plugin.clone(), stderr: false }
    }

    /// The plugin's stderr.
    pub fn stderr(plugin: &Arc<str>) -> LogStream {
        LogStream { plugin: plugin.clone(), stderr: true }
    }

    fn writer(&self) -> LineWriter {
        LineWriter { stream: self.clone(), line: Vec::new() }
    }
}

impl IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogStream {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.writer())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.writer())
    }
}

/// Buffers a partial line until its newline (or the end of the stream).
struct LineWriter {
    stream: LogStream,
    line: Vec<u8>,
}

impl LineWriter {
    fn push(&mut self, mut bytes: &[u8]) {
        while let Some(end) = bytes.iter().position(|b| *b == b'\n') {
            self.line.extend_from_slice(&bytes[..end]);
            self.emit();
            bytes = &bytes[end + 1..];
        }
        self.line.extend_from_slice(bytes);
        while self.line.len() >= MAX_LINE {
            let rest = self.line.split_off(MAX_LINE);
            self.emit();
            self.line = rest;
        }
    }

    fn emit(&mut self) {
        let text = String::from_utf8_lossy(&self.line);
        let text = text.trim_end_matches('\r');
        let plugin = &*self.stream.plugin;
        match self.stream.stderr {
            true => tracing::warn!(target: "covet::plugin", plugin, stream = "stderr", "{text}"),
            false => tracing::info!(target: "covet::plugin", plugin, stream = "stdout", "{text}"),
        }
        self.line.clear();
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if !self.line.is_empty() {
            self.emit();
        }
    }
}

impl OutputStream for LineWriter {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(MAX_LINE)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LineWriter {
    async fn ready(&mut self) {}
}

impl AsyncWrite for LineWriter {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.get_mut().push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_split_into_lines_and_long_lines_are_cut() {
        let mut writer = LogStream::stdout(&Arc::from("p")).writer();
        writer.push(b"one\ntw");
        assert_eq!(writer.line, b"tw");
        writer.push(b"o\r\n");
        assert!(writer.line.is_empty());
        writer.push(&vec![b'x'; MAX_LINE + 10]);
        assert_eq!(writer.line.len(), 10, "a full line was emitted, the rest waits");
    }
}
