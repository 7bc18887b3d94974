//! A look at the raw bytes of an HTTP/1 request head for what hyper's parser
//! hides from the service: a head carrying both `Content-Length` and
//! `Transfer-Encoding`. hyper frames such a request by `Transfer-Encoding`
//! and drops `Content-Length` before the service sees the headers; RFC 9112
//! §6.3 allows that, but the combination is the classic request-smuggling
//! probe, and covet refuses it (400, connection closed) before any plugin runs.
//!
//! [`HeadScan`] reads the bytes as [`super::watchdog::TrackedIo`] hands them
//! to hyper, from the first byte of a head (read with no request in flight)
//! to its empty line, keeping only the start of each line. When a head has
//! both fields it records the request line in the connection's
//! [`super::watchdog::ConnState`]; the service, seeing a request with
//! `Transfer-Encoding` whose request line matches, answers 400. A head that
//! arrives while another request is in flight (pipelining) is not scanned:
//! hyper still frames it by `Transfer-Encoding` and closes the connection
//! after it, so nothing is smuggled either way.

/// Bytes kept of the request line (the service matches on them).
const LINE_KEEP: usize = 512;
/// Bytes kept of a header line: enough for `transfer-encoding:` and a `\r`.
const FIELD_KEEP: usize = 20;

/// Scanner state of one connection.
#[derive(Default)]
pub struct HeadScan {
    active: bool,
    first_line: bool,
    line: Vec<u8>,
    request_line: Vec<u8>,
    content_length: bool,
    transfer_encoding: bool,
}

impl HeadScan {
    /// Starts scanning a new head.
    pub fn start(&mut self) {
        // Field by field so both buffers keep their capacity: no allocation per request.
        self.active = true;
        self.first_line = true;
        self.line.clear();
        self.request_line.clear();
        self.content_length = false;
        self.transfer_encoding = false;
    }

    pub fn active(&self) -> bool {
        self.active
    }

    /// Feeds bytes read off the connection; returns the request line of a
    /// finished head that has both framing fields.
    pub fn feed(&mut self, bytes: &[u8]) -> Option<Vec<u8>> {
        // Line ends found with memchr, and only a line's start copied: a few
        // instructions per line instead of a push per byte (a long
        // `authorization` header cost ~4,500 instructions per request).
        let mut rest = bytes;
        while self.active {
            let Some(end) = memchr::memchr(b'\n', rest) else {
                self.keep(rest);
                return None;
            };
            self.keep(&rest[..end]);
            rest = &rest[end + 1..];
            if let Some(found) = self.end_line() {
                return Some(found);
            }
        }
        None
    }

    /// Appends the part of `part` that the current line keeps.
    fn keep(&mut self, part: &[u8]) {
        let limit = if self.first_line { LINE_KEEP } else { FIELD_KEEP };
        let room = limit.saturating_sub(self.line.len());
        self.line.extend_from_slice(&part[..part.len().min(room)]);
    }

    fn end_line(&mut self) -> Option<Vec<u8>> {
        if self.line.last() == Some(&b'\r') {
            self.line.pop();
        }
        if self.first_line {
            self.first_line = false;
            std::mem::swap(&mut self.request_line, &mut self.line);
            self.line.clear();
            return None;
        }
        if self.line.is_empty() {
            self.active = false;
            let conflict = self.content_length && self.transfer_encoding;
            return conflict.then(|| std::mem::take(&mut self.request_line));
        }
        self.content_length |= starts_with_field(&self.line, b"content-length:");
        self.transfer_encoding |= starts_with_field(&self.line, b"transfer-encoding:");
        self.line.clear();
        None
    }
}

fn starts_with_field(line: &[u8], field: &[u8]) -> bool {
    line.len() >= field.len() && line[..field.len()].eq_ignore_ascii_case(field)
}

/// Whether `request_line` (as scanned) is the line of a request with this
/// method and target.
pub fn matches(request_line: &[u8], method: &str, target: &str) -> bool {
    let truncated = request_line.len() >= LINE_KEEP;
    let mut parts = request_line.split(|&b| b == b' ');
    let target_matches = |p: &[u8]| p == target.as_bytes() || (truncated && !p.is_empty() && target.as_bytes().starts_with(p));
    parts.next() == Some(method.as_bytes()) && parts.next().is_some_and(target_matches)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(chunks: &[&[u8]]) -> Option<Vec<u8>> {
        let mut scan = HeadScan::default();
        scan.start();
        chunks.iter().find_map(|c| scan.feed(c))
    }

    #[test]
    fn both_fields_are_reported_with_the_request_line() {
        let found = scan(&[b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"]);
        assert_eq!(found.as_deref(), Some(&b"POST /a HTTP/1.1"[..]));
    }

    #[test]
    fn fields_split_across_reads_are_seen() {
        let found = scan(&[b"POST /a HTTP/1.1\r\ntransfer-enc", b"oding: chunked\r\ncontent-le", b"ngth: 3\r\n", b"\r\n"]);
        assert!(found.is_some());
    }

    #[test]
    fn one_field_alone_is_not_reported() {
        assert!(scan(&[b"POST /a HTTP/1.1\r\ncontent-length: 5\r\n\r\nhello"]).is_none());
        assert!(scan(&[b"POST /a HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n"]).is_none());
    }

    #[test]
    fn the_body_is_not_scanned() {
        assert!(scan(&[b"POST /a HTTP/1.1\r\ncontent-length: 40\r\n\r\ntransfer-encoding: chunked\r\n\r\n"]).is_none());
    }

    #[test]
    fn request_lines_match_method_and_target() {
        assert!(matches(b"POST /a?b=1 HTTP/1.1", "POST", "/a?b=1"));
        assert!(!matches(b"POST /b HTTP/1.1", "POST", "/a"));
        assert!(!matches(b"GET /a HTTP/1.1", "POST", "/a"));
    }
}
