//! The codecs behind one interface: an [`Encoder`] or [`Decoder`] is fed
//! input and leaves its output in a `Vec` the stream takes from. gzip is
//! flate2 on zlib-rs (pure Rust), brotli the pure-Rust port, zstd the reference C
//! library.

use std::io::{self, Write};

use flate2::write::{GzEncoder, MultiGzDecoder};

use crate::negotiate::Coding;

/// Compression levels per codec (gzip 0–9, brotli 0–11, zstd 1–22).
#[derive(Debug, Clone, Copy, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Levels {
    /// gzip level (default 6, nginx's `gzip_comp_level` scale).
    pub gzip: u32,
    /// brotli quality (default 4).
    pub br: u32,
    /// zstd level (default 3).
    pub zstd: i32,
}

impl Default for Levels {
    fn default() -> Levels {
        Levels { gzip: 6, br: 4, zstd: 3 }
    }
}

impl Levels {
    /// Refuses levels a codec does not have.
    pub fn check(&self) -> Result<(), String> {
        if self.gzip > 9 {
            return Err(format!("levels.gzip must be 0..=9, not {}", self.gzip));
        }
        if self.br > 11 {
            return Err(format!("levels.br must be 0..=11, not {}", self.br));
        }
        if !(1..=22).contains(&self.zstd) {
            return Err(format!("levels.zstd must be 1..=22, not {}", self.zstd));
        }
        Ok(())
    }
}

/// The largest window (log2 bytes) an encoder uses: 1 MiB for brotli and
/// zstd, less when the body is known to be smaller, so a small response
/// does not cost a large window.
const MAX_WINDOW_LOG: u32 = 20;

fn window_log(size_hint: Option<u64>) -> u32 {
    let bits = size_hint.map_or(MAX_WINDOW_LOG, |n| 64 - n.max(1).leading_zeros());
    bits.clamp(10, MAX_WINDOW_LOG)
}

/// A streaming compressor writing into an in-memory buffer.
pub enum Encoder {
    /// gzip.
    Gzip(GzEncoder<Vec<u8>>),
    /// brotli (boxed: its state is large).
    Brotli(Box<brotli::CompressorWriter<Vec<u8>>>),
    /// zstd.
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

impl Encoder {
    /// A compressor for `coding` at its level in `levels`; `size_hint`, the
    /// body's length when known, bounds the window.
    pub fn new(coding: Coding, levels: &Levels, size_hint: Option<u64>) -> io::Result<Encoder> {
        Ok(match coding {
            Coding::Gzip => Encoder::Gzip(GzEncoder::new(Vec::new(), flate2::Compression::new(levels.gzip))),
            Coding::Brotli => {
                let writer = brotli::CompressorWriter::new(Vec::new(), 4096, levels.br, window_log(size_hint).max(16));
                Encoder::Brotli(Box::new(writer))
            }
            Coding::Zstd => {
                let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), levels.zstd)?;
                encoder.window_log(window_log(size_hint))?;
                Encoder::Zstd(encoder)
            }
        })
    }

    /// Compresses `input` (output may lag until a flush or the finish).
    pub fn write(&mut self, input: &[u8]) -> io::Result<()> {
        match self {
            Encoder::Gzip(e) => e.write_all(input),
            Encoder::Brotli(e) => e.write_all(input),
            Encoder::Zstd(e) => e.write_all(input),
        }
    }

    /// Emits everything written so far as decodable output (a sync flush).
    pub fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Gzip(e) => e.flush(),
            Encoder::Brotli(e) => e.flush(),
            Encoder::Zstd(e) => e.flush(),
        }
    }

    /// How many output bytes wait to be taken.
    pub fn pending(&mut self) -> usize {
        self.output().len()
    }

    /// Takes the output produced so far.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(self.output())
    }

    fn output(&mut self) -> &mut Vec<u8> {
        match self {
            Encoder::Gzip(e) => e.get_mut(),
            Encoder::Brotli(e) => e.get_mut(),
            Encoder::Zstd(e) => e.get_mut(),
        }
    }

    /// Ends the stream, returning the last of the output.
    pub fn finish(self) -> io::Result<Vec<u8>> {
        match self {
            Encoder::Gzip(e) => e.finish(),
            Encoder::Brotli(e) => Ok(e.into_inner()),
            Encoder::Zstd(e) => e.finish(),
        }
    }
}

/// Where a [`Decoder`] writes: a buffer that refuses to grow past the
/// decompressed-size limit (the decompression bomb guard).
pub struct Sink {
    buf: Vec<u8>,
    total: u64,
    limit: u64,
    over: bool,
}

/// The error a [`Decoder`] fails with past its limit (its kind is `FileTooLarge`).
pub fn over_limit(limit: u64) -> io::Error {
    io::Error::new(io::ErrorKind::FileTooLarge, format!("decompressed body larger than {limit} bytes"))
}

impl Write for Sink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.total += data.len() as u64;
        if self.total > self.limit {
            self.over = true;
            return Err(over_limit(self.limit));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The largest zstd window a request may ask for (8 MiB of decoder memory).
const MAX_DECODE_WINDOW_LOG: u32 = 23;

/// A streaming decompressor for request bodies, with a size limit.
pub enum Decoder {
    /// gzip (members concatenated are one body, as gunzip reads them).
    Gzip(Box<MultiGzDecoder<Sink>>),
    /// brotli.
    Brotli(Box<brotli::DecompressorWriter<Sink>>),
    /// zstd.
    Zstd(zstd::stream::write::Decoder<'static, Sink>),
}

impl Decoder {
    /// A decompressor for `coding` that fails past `limit` output bytes.
    pub fn new(coding: Coding, limit: u64) -> io::Result<Decoder> {
        let sink = Sink { buf: Vec::new(), total: 0, limit, over: false };
        Ok(match coding {
            Coding::Gzip => Decoder::Gzip(Box::new(MultiGzDecoder::new(sink))),
            Coding::Brotli => Decoder::Brotli(Box::new(brotli::DecompressorWriter::new(sink, 4096))),
            Coding::Zstd => {
                let mut decoder = zstd::stream::write::Decoder::new(sink)?;
                decoder.window_log_max(MAX_DECODE_WINDOW_LOG)?;
                Decoder::Zstd(decoder)
            }
        })
    }

    /// Decompresses `input` into the sink.
    pub fn write(&mut self, input: &[u8]) -> io::Result<()> {
        match self {
            Decoder::Gzip(d) => d.write_all(input),
            Decoder::Brotli(d) => d.write_all(input),
            Decoder::Zstd(d) => d.write_all(input),
        }
    }

    fn sink(&mut self) -> &mut Sink {
        match self {
            Decoder::Gzip(d) => d.get_mut(),
            Decoder::Brotli(d) => d.get_mut(),
            Decoder::Zstd(d) => d.get_mut(),
        }
    }

    /// Takes the output produced so far.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.sink().buf)
    }

    /// Ends the input: an error when the compressed data stopped short.
    /// Returns the last of the output.
    pub fn finish(self) -> io::Result<Vec<u8>> {
        let sink = match self {
            Decoder::Gzip(d) => d.finish()?,
            Decoder::Brotli(d) => match (*d).into_inner() {
                Ok(sink) => sink,
                Err(sink) if sink.over => return Err(over_limit(sink.limit)),
                Err(_) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "truncated or corrupt brotli data")),
            },
            Decoder::Zstd(d) => d.finish()?,
        };
        Ok(sink.buf)
    }
}

/// Decompresses a whole body at once (a buffered request), refusing more
/// than `limit` bytes of output (an error of kind `FileTooLarge`).
pub fn decode_all(coding: Coding, input: &[u8], limit: u64) -> io::Result<Vec<u8>> {
    let mut decoder = Decoder::new(coding, limit)?;
    let mut out = Vec::new();
    for slice in input.chunks(16 * 1024) {
        decoder.write(slice)?;
        out.append(&mut decoder.take());
    }
    out.append(&mut decoder.finish()?);
    Ok(out)
}
