//! A hand-driven HTTP/2 (h2c, prior knowledge) client: a small frame
//! encoder and decoder over a raw TCP socket, plus the few HPACK bytes the
//! attacks need. Raw frames, not the `h2` crate: `h2`'s client refuses to
//! send what these tests must (CONTINUATION without END_HEADERS forever,
//! header blocks far beyond the peer's limit, thousands of SETTINGS and PINGs
//! without waiting for their ACKs, or never releasing flow-control window).

use std::{net::SocketAddr, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{
        TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
    time::timeout,
};

use crate::common::PATIENCE;

/// The client connection preface.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Frame types.
pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const WINDOW_UPDATE: u8 = 0x8;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const CONTINUATION: u8 = 0x9;
/// Flags.
pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;
/// Error codes.
pub const NO_ERROR: u32 = 0x0;
pub const CANCEL: u32 = 0x8;
pub const COMPRESSION_ERROR: u32 = 0x9;
pub const ENHANCE_YOUR_CALM: u32 = 0xb;

/// One HTTP/2 frame.
#[derive(Debug)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub payload: Vec<u8>,
}

impl Frame {
    /// The error code of a GOAWAY or RST_STREAM frame.
    pub fn error_code(&self) -> u32 {
        let at = if self.kind == GOAWAY { 4 } else { 0 };
        u32::from_be_bytes(self.payload[at..at + 4].try_into().expect("an error code"))
    }
}

/// Encodes one frame.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// An HPACK block for `GET path` (`:method GET`, `:scheme http` from the
/// static table; `:path` and `:authority` as literals without indexing).
pub fn get_block(path: &str) -> Vec<u8> {
    let mut block = vec![0x82, 0x86, 0x04, path.len() as u8];
    block.extend_from_slice(path.as_bytes());
    block.extend_from_slice(&[0x01, 10]);
    block.extend_from_slice(b"covet.test");
    block
}

/// An HPACK literal header field with incremental indexing and a new name
/// (`name` and `value` under 127 bytes each are not assumed: lengths use
/// the full integer encoding).
pub fn literal_indexed(name: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = vec![0x40];
    out.extend(hpack_int(name.len(), 7, 0));
    out.extend_from_slice(name);
    out.extend(hpack_int(value.len(), 7, 0));
    out.extend_from_slice(value);
    out
}

/// An HPACK integer with an `n`-bit prefix and the given high bits.
fn hpack_int(mut value: usize, n: u32, high: u8) -> Vec<u8> {
    let max = (1usize << n) - 1;
    if value < max {
        return vec![high | value as u8];
    }
    let mut out = vec![high | max as u8];
    value -= max;
    while value >= 128 {
        out.push((value % 128) as u8 | 0x80);
        value /= 128;
    }
    out.push(value as u8);
    out
}

/// The write half of a raw HTTP/2 connection.
pub struct Writer(OwnedWriteHalf);

impl Writer {
    /// Writes `bytes`; `false` once the server closed the connection, or when
    /// it stopped reading for `PATIENCE` (its window on us is full).
    pub async fn write(&mut self, bytes: &[u8]) -> bool {
        matches!(timeout(PATIENCE, self.0.write_all(bytes)).await, Ok(Ok(())))
    }
}

/// The read half of a raw HTTP/2 connection.
pub struct Reader(OwnedReadHalf);

impl Reader {
    /// The next frame, or `None` at EOF, on an error, or when none arrives
    /// within `limit`.
    pub async fn next(&mut self, limit: Duration) -> Option<Frame> {
        let mut head = [0u8; 9];
        timeout(limit, self.0.read_exact(&mut head)).await.ok()?.ok()?;
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let mut payload = vec![0u8; len];
        timeout(limit, self.0.read_exact(&mut payload)).await.ok()?.ok()?;
        Some(Frame { kind: head[3], flags: head[4], payload })
    }

    /// Reads until the server's GOAWAY and then the end of the connection;
    /// returns the GOAWAY (if one came) and whether the connection ended.
    /// `on_frame` sees every frame.
    pub async fn until_closed(&mut self, mut on_frame: impl FnMut(&Frame)) -> (Option<Frame>, bool) {
        let mut goaway = None;
        let started = std::time::Instant::now();
        loop {
            // Bounded: an attack that is never cut off fails the test, not hangs it.
            if started.elapsed() > 3 * PATIENCE {
                return (goaway, false);
            }
            match self.next(PATIENCE).await {
                None => return (goaway, self.at_eof().await),
                Some(frame) if frame.kind == GOAWAY => {
                    on_frame(&frame);
                    goaway.get_or_insert(frame);
                }
                Some(frame) => on_frame(&frame),
            }
        }
    }

    /// Whether the connection has ended (EOF or reset) rather than stalled.
    async fn at_eof(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(timeout(Duration::from_millis(100), self.0.read(&mut byte)).await, Ok(Ok(0) | Err(_)))
    }
}

/// Connects, sends the preface and `settings` (a SETTINGS payload), and
/// returns the two halves once the server's SETTINGS came (acknowledged).
pub async fn handshake(addr: SocketAddr, settings: &[u8]) -> (Reader, Writer) {
    handshake_on(TcpStream::connect(addr).await.expect("connect"), settings).await
}

/// [`handshake`] on a connected `stream` (say, one with a small receive buffer).
pub async fn handshake_on(stream: TcpStream, settings: &[u8]) -> (Reader, Writer) {
    let _ = stream.set_nodelay(true);
    let (read, write) = stream.into_split();
    let (mut reader, mut writer) = (Reader(read), Writer(write));
    let mut hello = PREFACE.to_vec();
    hello.extend(frame(SETTINGS, 0, 0, settings));
    assert!(writer.write(&hello).await, "preface written");
    loop {
        let frame = reader.next(PATIENCE).await.expect("the server's SETTINGS");
        if frame.kind == SETTINGS && frame.flags & ACK == 0 {
            break;
        }
    }
    assert!(writer.write(&frame(SETTINGS, ACK, 0, &[])).await);
    (reader, writer)
}

/// One SETTINGS parameter.
pub fn setting(id: u16, value: u32) -> Vec<u8> {
    let mut out = id.to_be_bytes().to_vec();
    out.extend_from_slice(&value.to_be_bytes());
    out
}
