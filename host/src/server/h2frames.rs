//! Frame boundaries in the bytes of an HTTP/2 connection, followed through
//! [`super::tracked_io::TrackedIo`] without decoding anything (h2 does that):
//!
//! - written: [`DataFrames`] says whether a write carried DATA payload. The
//!   watchdog's `send_timeout` counts only that as progress: a peer that
//!   never opens its flow-control window still gets PINGs and SETTINGS
//!   acknowledgements written to it, and those must not keep a stalled
//!   response alive.
//! - read: [`ControlFlood`] counts the SETTINGS and PING frames a peer sends
//!   (not their ACKs). h2 answers each, one at a time, so a flood is bounded
//!   by back-pressure but never ends; past [`MAX_CONTROL_PER_SEC`] in one
//!   second the connection is closed with GOAWAY.

/// The length of an HTTP/2 frame header.
const HEADER_LEN: usize = 9;
const DATA: u8 = 0x0;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const ACK: u8 = 0x1;
/// The client connection preface, read before the first frame.
const PREFACE_LEN: usize = 24;
/// SETTINGS and PING frames a peer may send in one second. Browsers send a
/// handful per connection; floods (CVE-2019-9512, -9515) send thousands.
pub const MAX_CONTROL_PER_SEC: u32 = 500;

/// Follows frame boundaries through a byte stream.
#[derive(Debug, Default)]
struct Walk {
    header: [u8; HEADER_LEN],
    /// Bytes of `header` collected so far.
    have: usize,
    /// Payload bytes of the current frame not seen yet.
    left: usize,
    /// The current frame's type.
    kind: u8,
}

impl Walk {
    /// Follows `bytes`; calls `on_header(kind, flags)` for each frame header
    /// completed; returns how many payload bytes of DATA frames passed.
    fn feed(&mut self, mut bytes: &[u8], mut on_header: impl FnMut(u8, u8)) -> usize {
        let mut data = 0;
        while !bytes.is_empty() {
            if self.left > 0 {
                let n = self.left.min(bytes.len());
                data += if self.kind == DATA { n } else { 0 };
                self.left -= n;
                bytes = &bytes[n..];
                continue;
            }
            let n = (HEADER_LEN - self.have).min(bytes.len());
            self.header[self.have..self.have + n].copy_from_slice(&bytes[..n]);
            self.have += n;
            bytes = &bytes[n..];
            if self.have == HEADER_LEN {
                let h = self.header;
                self.left = u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
                self.kind = h[3];
                self.have = 0;
                on_header(h[3], h[4]);
            }
        }
        data
    }
}

/// Whether the server's writes carry response data (a server writes
/// frames from its first byte).
#[derive(Debug, Default)]
pub struct DataFrames(Walk);

impl DataFrames {
    /// Follows `written` (the bytes a write took, in order); `true` when any
    /// of them were DATA payload.
    pub fn feed(&mut self, written: &[u8]) -> bool {
        self.0.feed(written, |_, _| {}) > 0
    }

    /// [`DataFrames::feed`] over the first `n` bytes of `bufs`.
    pub fn feed_slices(&mut self, bufs: &[std::io::IoSlice<'_>], mut n: usize) -> bool {
        let mut data = false;
        for buf in bufs {
            if n == 0 {
                break;
            }
            let take = buf.len().min(n);
            data |= self.feed(&buf[..take]);
            n -= take;
        }
        data
    }
}

/// Counts a peer's SETTINGS and PING frames per second.
#[derive(Debug)]
pub struct ControlFlood {
    walk: Walk,
    /// Preface bytes still to skip.
    preface: usize,
    /// Start of the current one-second window (coarse ms).
    window_ms: u64,
    in_window: u32,
}

impl Default for ControlFlood {
    fn default() -> Self {
        ControlFlood { walk: Walk::default(), preface: PREFACE_LEN, window_ms: 0, in_window: 0 }
    }
}

impl ControlFlood {
    /// Follows bytes read at `now_ms`; `true` once the peer sent more than
    /// [`MAX_CONTROL_PER_SEC`] SETTINGS or PING frames within one second.
    pub fn feed(&mut self, mut read: &[u8], now_ms: u64) -> bool {
        let skip = self.preface.min(read.len());
        self.preface -= skip;
        read = &read[skip..];
        if now_ms.saturating_sub(self.window_ms) >= 1000 {
            (self.window_ms, self.in_window) = (now_ms, 0);
        }
        let mut control = 0u32;
        self.walk.feed(read, |kind, flags| {
            if (kind == SETTINGS || kind == PING) && flags & ACK == 0 {
                control += 1;
            }
        });
        self.in_window = self.in_window.saturating_add(control);
        self.in_window > MAX_CONTROL_PER_SEC
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
        f.extend_from_slice(&[kind, flags, 0, 0, 0, 1]);
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn control_frames_are_not_data_and_data_split_across_writes_is() {
        let mut frames = DataFrames::default();
        let ping = frame(PING, 0, &[0; 8]);
        assert!(!frames.feed(&ping));
        let data = frame(DATA, 0, b"hello");
        assert!(!frames.feed(&data[..4]), "half a header");
        assert!(!frames.feed(&data[4..9]), "the rest of the header");
        assert!(frames.feed(&data[9..11]));
        let mut tail = data[11..].to_vec();
        tail.extend_from_slice(&ping);
        assert!(frames.feed(&tail), "the last payload bytes, then a PING");
        assert!(!frames.feed(&frame(SETTINGS, ACK, &[])), "an empty SETTINGS ack");
    }

    #[test]
    fn pings_past_the_limit_in_one_second_are_a_flood_and_acks_do_not_count() {
        let mut flood = ControlFlood::default();
        let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        bytes.extend(frame(SETTINGS, 0, &[]));
        assert!(!flood.feed(&bytes, 1_000));
        let acks: Vec<u8> = (0..2 * MAX_CONTROL_PER_SEC).flat_map(|_| frame(PING, ACK, &[0; 8])).collect();
        assert!(!flood.feed(&acks, 1_100), "PING ACKs are answers, not a flood");
        let pings: Vec<u8> = (0..MAX_CONTROL_PER_SEC).flat_map(|_| frame(PING, 0, &[0; 8])).collect();
        assert!(flood.feed(&pings, 1_200), "one SETTINGS and the PINGs are over the limit");
        assert!(!flood.feed(&pings[..17], 2_300), "a new second starts afresh");
    }
}
