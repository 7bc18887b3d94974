//! The body streams: [`Compressing`] pulls chunks from a response body and
//! yields them compressed; [`Decoding`] pulls a compressed request body and
//! yields it decompressed, up to a limit. Both work in bounded steps (input
//! fed 16 KiB at a time, output handed on once 16 KiB are ready), so their
//! memory does not grow with the body. The source's trailers pass through.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use covet_plugin_api::{
    BodyStream, Chunk,
    __export::abi_stable::std_types::{RErr, RNone, ROk, ROption, RResult, RSome, RString, RVec},
    ffi::{BodyStreamBox, BodyStreamOps, FfiContext, FfiPoll},
    host::ffi::FfiHeader,
};

use crate::codec::{Decoder, Encoder};

/// Input fed to a codec per step.
const STEP: usize = 16 * 1024;
/// Output handed on once this much is ready.
const READY: usize = 16 * 1024;
/// Input taken with no output to show for it before a flush is forced (brotli
/// holds whole metablocks back otherwise: a 1 MB body came out in one piece).
const FORCE_FLUSH: usize = 256 * 1024;

type Polled = FfiPoll<ROption<RResult<Chunk, RString>>>;

fn ready_chunk(bytes: Vec<u8>) -> Polled {
    FfiPoll::Ready(RSome(ROk(Chunk::from(bytes))))
}

fn ready_error(message: impl Into<String>) -> Polled {
    FfiPoll::Ready(RSome(RErr(RString::from(message.into()))))
}

/// An input chunk being fed to a codec, and how far.
struct Pending {
    chunk: Chunk,
    at: usize,
}

impl Pending {
    /// The next step of input, advancing past it.
    fn next_step(&mut self) -> (&[u8], bool) {
        let end = (self.at + STEP).min(self.chunk.len());
        let step = &self.chunk[self.at..end];
        self.at = end;
        (step, end == self.chunk.len())
    }
}

/// A response body compressed as it streams.
pub struct Compressing {
    source: BodyStreamBox,
    input: Option<Pending>,
    encoder: Option<Encoder>,
    /// Input written since the last flush.
    dirty: bool,
    /// Input bytes written since output was last handed on.
    held: usize,
}

impl Compressing {
    /// `source` compressed by `encoder`.
    pub fn body(source: BodyStream, encoder: Encoder) -> BodyStream {
        BodyStream::from_ops(Compressing { source: source.into_ffi(), input: None, encoder: Some(encoder), dirty: false, held: 0 })
    }

    fn feed(&mut self) -> Result<Option<Vec<u8>>, String> {
        let (Some(input), Some(encoder)) = (&mut self.input, &mut self.encoder) else { return Ok(None) };
        let (step, last) = input.next_step();
        encoder.write(step).map_err(|e| format!("compression failed: {e}"))?;
        self.dirty = true;
        self.held += step.len();
        if last {
            self.input = None;
        }
        if self.held >= FORCE_FLUSH && encoder.pending() == 0 {
            encoder.flush().map_err(|e| format!("compression failed: {e}"))?;
            self.dirty = false;
        }
        if encoder.pending() < READY && self.held < FORCE_FLUSH {
            return Ok(None);
        }
        self.held = 0;
        Ok(Some(encoder.take()).filter(|out| !out.is_empty()))
    }
}

impl BodyStreamOps for Compressing {
    fn poll_chunk(&mut self, cx: &mut FfiContext<'_>) -> Polled {
        loop {
            let Some(encoder) = &mut self.encoder else { return FfiPoll::Ready(RNone) };
            if self.input.is_some() {
                match self.feed() {
                    Ok(Some(out)) => return ready_chunk(out),
                    Ok(None) => continue,
                    Err(e) => {
                        self.encoder = None;
                        return ready_error(e);
                    }
                }
            }
            match self.source.poll_chunk(cx) {
                FfiPoll::Ready(RSome(ROk(chunk))) => {
                    if !chunk.is_empty() {
                        self.input = Some(Pending { chunk, at: 0 });
                    }
                }
                FfiPoll::Ready(RNone) => {
                    let encoder = self.encoder.take().expect("checked above");
                    return match encoder.finish() {
                        Ok(out) if out.is_empty() => FfiPoll::Ready(RNone),
                        Ok(out) => ready_chunk(out),
                        Err(e) => ready_error(format!("compression failed: {e}")),
                    };
                }
                FfiPoll::Ready(RSome(RErr(e))) => {
                    self.encoder = None;
                    return FfiPoll::Ready(RSome(RErr(e)));
                }
                FfiPoll::Panicked => {
                    self.encoder = None;
                    return ready_error("the body's producer panicked");
                }
                // The source has nothing more for now: flush what was
                // compressed so the client is not kept waiting for it.
                FfiPoll::Pending => {
                    if std::mem::take(&mut self.dirty)
                        && let Err(e) = encoder.flush()
                    {
                        self.encoder = None;
                        return ready_error(format!("compression failed: {e}"));
                    }
                    let out = encoder.take();
                    return if out.is_empty() { FfiPoll::Pending } else { ready_chunk(out) };
                }
            }
        }
    }

    fn size_hint(&self) -> ROption<u64> {
        RNone
    }

    fn trailers(&mut self) -> ROption<RVec<FfiHeader>> {
        self.source.trailers()
    }
}

/// A request body decompressed as it streams; past the limit it breaks off
/// with an error and sets `over` (the plugin turns the response into a 413).
pub struct Decoding {
    source: BodyStreamBox,
    input: Option<Pending>,
    decoder: Option<Decoder>,
    over: Arc<AtomicBool>,
}

impl Decoding {
    /// `source` decompressed by `decoder`; `over` is set past the limit.
    pub fn body(source: BodyStream, decoder: Decoder, over: Arc<AtomicBool>) -> BodyStream {
        BodyStream::from_ops(Decoding { source: source.into_ffi(), input: None, decoder: Some(decoder), over })
    }

    fn fail(&mut self, e: std::io::Error) -> Polled {
        self.decoder = None;
        if e.kind() == std::io::ErrorKind::FileTooLarge {
            self.over.store(true, Ordering::Release);
        }
        ready_error(format!("request body decompression failed: {e}"))
    }
}

impl BodyStreamOps for Decoding {
    fn poll_chunk(&mut self, cx: &mut FfiContext<'_>) -> Polled {
        loop {
            let Some(decoder) = &mut self.decoder else { return FfiPoll::Ready(RNone) };
            if let Some(input) = &mut self.input {
                let (step, last) = input.next_step();
                if let Err(e) = decoder.write(step) {
                    return self.fail(e);
                }
                if last {
                    self.input = None;
                }
                let out = decoder.take();
                if !out.is_empty() {
                    return ready_chunk(out);
                }
                continue;
            }
            match self.source.poll_chunk(cx) {
                FfiPoll::Ready(RSome(ROk(chunk))) => {
                    if !chunk.is_empty() {
                        self.input = Some(Pending { chunk, at: 0 });
                    }
                }
                FfiPoll::Ready(RNone) => {
                    let decoder = self.decoder.take().expect("checked above");
                    return match decoder.finish() {
                        Ok(out) if out.is_empty() => FfiPoll::Ready(RNone),
                        Ok(out) => ready_chunk(out),
                        Err(e) => self.fail(e),
                    };
                }
                FfiPoll::Ready(RSome(RErr(e))) => {
                    self.decoder = None;
                    return FfiPoll::Ready(RSome(RErr(e)));
                }
                FfiPoll::Panicked => {
                    self.decoder = None;
                    return ready_error("the body's producer panicked");
                }
                FfiPoll::Pending => return FfiPoll::Pending,
            }
        }
    }

    fn size_hint(&self) -> ROption<u64> {
        RNone
    }

    fn trailers(&mut self) -> ROption<RVec<FfiHeader>> {
        self.source.trailers()
    }
}
