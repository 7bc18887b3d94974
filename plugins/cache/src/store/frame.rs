//! The shared tier's value format: one entry as one compact binary frame.
//!
//! ```text
//! u8   version (1)
//! u32  meta length, then the Meta as JSON (the core's policy travels in it)
//! u16  status
//! u32  header count, then per header: u32 name length, name, u32 value length, value
//! ...  the body, raw, to the end of the frame
//! ```
//! Integers are little-endian. JSON keeps [`Meta`] free to grow (the core
//! owns `Policy`); the body is never escaped or copied more than once.

use std::sync::Arc;

use covet_plugin_api::{Body, Header, Headers};

use super::{Entry, Meta};

/// The frame version this build writes and reads.
const VERSION: u8 = 1;

/// `entry` as a frame.
pub fn encode(entry: &Entry) -> Vec<u8> {
    let meta = serde_json::to_vec(&*entry.meta).unwrap_or_default();
    let header_bytes: usize = entry
        .headers
        .iter()
        .map(|h| 8 + h.name.len() + h.value.len())
        .sum();
    let mut out = Vec::with_capacity(1 + 4 + meta.len() + 2 + 4 + header_bytes + entry.body.len());
    out.push(VERSION);
    put_bytes(&mut out, &meta);
    out.extend_from_slice(&entry.status.to_le_bytes());
    put_u32(&mut out, entry.headers.len());
    for header in entry.headers.iter() {
        put_bytes(&mut out, header.name.as_bytes());
        put_bytes(&mut out, header.value.as_bytes());
    }
    out.extend_from_slice(&entry.body);
    out
}

/// The entry in `frame`, or why it is not one this build reads.
pub fn decode(frame: &[u8]) -> Result<Entry, String> {
    let mut reader = Reader { rest: frame };
    let version = reader.take(1)?[0];
    if version != VERSION {
        return Err(format!(
            "frame version {version} (this build reads {VERSION})"
        ));
    }
    let meta: Meta =
        serde_json::from_slice(reader.bytes()?).map_err(|e| format!("frame meta: {e}"))?;
    let status = u16::from_le_bytes([reader.take(1)?[0], reader.take(1)?[0]]);
    let count = reader.u32()?;
    // Each header takes at least 8 bytes: a count beyond that is a bad frame,
    // not a reason to allocate.
    if count.saturating_mul(8) > reader.rest.len() {
        return Err(format!(
            "frame claims {count} headers in {} bytes",
            reader.rest.len()
        ));
    }
    let mut headers = Vec::with_capacity(count);
    for _ in 0..count {
        let name = reader.text()?;
        let value = reader.text()?;
        headers.push(Header::new(name, value));
    }
    Ok(Entry {
        meta: Arc::new(meta),
        status,
        headers: Headers::from(headers),
        body: Body::from(reader.rest.to_vec()),
    })
}

fn put_u32(out: &mut Vec<u8>, n: usize) {
    let n = u32::try_from(n).unwrap_or(u32::MAX);
    out.extend_from_slice(&n.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u32(out, bytes.len());
    out.extend_from_slice(bytes);
}

/// Reads a frame front to back; every read checks the length left.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.rest.len() < n {
            return Err(format!(
                "frame truncated: {n} bytes wanted, {} left",
                self.rest.len()
            ));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn u32(&mut self) -> Result<usize, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = self.u32()?;
        self.take(n)
    }

    fn text(&mut self) -> Result<String, String> {
        let bytes = self.bytes()?;
        String::from_utf8(bytes.to_vec()).map_err(|_| "frame header is not UTF-8".to_owned())
    }
}
