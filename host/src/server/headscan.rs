//! A look at the raw bytes of an HTTP/1 request head for what hyper's parser
//! hides from the service: a head carrying both `Content-Length` and
//! `Transfer-Encoding`. hyper frames such a request by `Transfer-Encoding`
//! and drops `Content-Length` before the service sees the headers; RFC 9112
//! §6.3 allows that, but the combination is the classic request-smuggling
//! probe, and covet refuses it (400, connection closed) before any plugin runs.
//!
//! [`HeadScan`] reads the bytes as [`super::tracked_io::TrackedIo`] hands them
//! to hyper, from the first byte of a head (read with no request in flight)
//! to its empty line, keeping only the start of each line. When a head has
//! both fields it records the request line in the connection's
//! [`super::watchdog::ConnState`]; the service, seeing a request with
//! `Transfer-Encoding` whose request line matches, answers 400. A head that
//! arrives while another request is in flight (pipelining) is not scanned:
//! hyper still frames it by `Transfer-Encoding` and closes the connection
//! after it, so nothing is smuggled either way.
//!
//! The same scan hands covet two heads hyper would refuse with a bare
//! status: a request line whose version is not 1.0 / 1.1 (rewritten to 1.1
//! and noted, so the service answers 505) and a request target longer than
//! the limit (cut to one byte over it, so hyper's buffer never fills and the
//! service answers 414 instead of hyper's 431).

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
    /// The version of a request line that named one other than 1.0 / 1.1.
    bad_version: Option<[u8; 8]>,
    /// Its request line (as rewritten) with that version, once the line ended.
    found_bad_version: Option<(Vec<u8>, [u8; 8])>,
    /// Request target bytes hyper is given at most: one more than
    /// `limits.max_header_bytes` (0: no cap, as in unit tests).
    max_target: usize,
    /// Where [`Self::squeeze_target`] is in the request line.
    part: LinePart,
    /// Bytes of the request target seen so far.
    target_len: usize,
    /// The length of a target that was cut, once it ended.
    found_long_target: Option<usize>,
}

/// Where the scan is in a request line.
#[derive(Default, PartialEq, Eq)]
enum LinePart {
    #[default]
    Method,
    Target,
    Rest,
}

impl HeadScan {
    /// A scanner that cuts request targets longer than `max_target` bytes.
    pub fn new(max_target: usize) -> Self {
        HeadScan { max_target, ..Default::default() }
    }

    /// Starts scanning a new head.
    pub fn start(&mut self) {
        // Field by field so both buffers keep their capacity: no allocation per request.
        self.active = true;
        self.first_line = true;
        self.line.clear();
        self.request_line.clear();
        self.content_length = false;
        self.transfer_encoding = false;
        self.bad_version = None;
        self.found_bad_version = None;
        self.part = LinePart::Method;
        self.target_len = 0;
        self.found_long_target = None;
    }

    pub fn active(&self) -> bool {
        self.active
    }

    /// Feeds bytes read off the connection; returns the request line of a
    /// finished head that has both framing fields.
    ///
    /// A request line whose version is a well-formed `HTTP/d.d` other than
    /// 1.0 and 1.1 has its version rewritten to `HTTP/1.1` in `bytes`, so
    /// hyper parses the request and the service answers 505 with the
    /// structured body ([`Self::take_bad_version`]); hyper itself would
    /// answer a bare 400. Only a version that arrives whole in one read is
    /// rewritten (a line split inside its version still gets hyper's 400).
    pub fn feed(&mut self, bytes: &mut [u8]) -> Option<Vec<u8>> {
        // Line ends found with memchr, and only a line's start copied: a few
        // instructions per line instead of a push per byte (a long
        // `authorization` header cost ~4,500 instructions per request). A
        // header line that arrived whole is looked at where it lies; only
        // the request line and a line split across reads are copied.
        let mut rest = bytes;
        while self.active {
            let Some(end) = memchr::memchr(b'\n', rest) else {
                self.keep(rest);
                return None;
            };
            let (line, tail) = std::mem::take(&mut rest).split_at_mut(end);
            rest = &mut tail[1..];
            let found = if self.first_line {
                self.check_version(line);
                self.keep(line);
                self.end_request_line();
                None
            } else if self.line.is_empty() {
                self.field(line)
            } else {
                self.keep(line);
                let kept = std::mem::take(&mut self.line);
                let found = self.field(&kept);
                self.line = kept;
                self.line.clear();
                found
            };
            if found.is_some() {
                return found;
            }
        }
        None
    }

    /// Cuts a request target longer than `max_target` bytes down to
    /// `max_target + 1` in `bytes` (moving what follows it down), so hyper's
    /// buffer never fills with it: hyper would answer a bare 431; the
    /// service sees a target over the limit and answers 414 with the
    /// structured body. Returns how many bytes of `bytes` remain. Only the
    /// request line is looked at (two `memchr2` per line).
    pub fn squeeze_target(&mut self, bytes: &mut [u8]) -> usize {
        let mut len = bytes.len();
        if !self.active || self.part == LinePart::Rest || self.max_target == 0 {
            return len;
        }
        let mut at = 0;
        if self.part == LinePart::Method {
            match memchr::memchr2(b' ', b'\n', bytes) {
                Some(i) if bytes[i] == b' ' => (at, self.part) = (i + 1, LinePart::Target),
                Some(_) => self.part = LinePart::Rest,
                None => {}
            }
            if self.part != LinePart::Target {
                return len;
            }
        }
        let end = memchr::memchr2(b' ', b'\n', &bytes[at..]).map_or(len, |i| at + i);
        let seen = end - at;
        let room = (self.max_target + 1).saturating_sub(self.target_len);
        self.target_len += seen;
        if seen > room {
            bytes.copy_within(end..len, at + room);
            len -= seen - room;
        }
        if end < bytes.len() {
            self.part = LinePart::Rest;
            if self.target_len > self.max_target + 1 {
                self.found_long_target = Some(self.target_len);
            }
        }
        len
    }

    /// The length of the request target that was cut, once it ended.
    pub fn take_long_target(&mut self) -> Option<usize> {
        self.found_long_target.take()
    }

    /// The version a request line named, when it was not 1.0 or 1.1 (and the
    /// line was rewritten to 1.1); cleared by the next head.
    pub fn take_bad_version(&mut self) -> Option<(Vec<u8>, [u8; 8])> {
        self.found_bad_version.take()
    }

    /// Checks the end of a request line (the part of it in this read): a
    /// well-formed `HTTP/d.d` version other than 1.0 / 1.1 (the h2 preface,
    /// `PRI * HTTP/2.0`, never gets here: its connection is not scanned) is
    /// noted and rewritten to `HTTP/1.1`.
    fn check_version(&mut self, line: &mut [u8]) {
        let len = if line.last() == Some(&b'\r') { line.len() - 1 } else { line.len() };
        let Some(start) = len.checked_sub(9) else { return };
        let (sep, version) = (line[start], &mut line[start + 1..len]);
        let well_formed = version.starts_with(b"HTTP/") && version[5].is_ascii_digit() && version[6] == b'.' && version[7].is_ascii_digit();
        if sep != b' ' || !well_formed || version == b"HTTP/1.1" || version == b"HTTP/1.0" {
            return;
        }
        // A later 1.x is served as 1.1 (RFC 9110 §6.2: the highest minor
        // version of that major the recipient conforms to; nginx does the
        // same); any other major version is noted for the 505.
        if version[5] != b'1' {
            let mut seen = [0u8; 8];
            seen.copy_from_slice(version);
            self.bad_version = Some(seen);
        }
        version.copy_from_slice(b"HTTP/1.1");
    }

    /// Appends the part of `part` that the current line keeps.
    fn keep(&mut self, part: &[u8]) {
        let limit = if self.first_line { LINE_KEEP } else { FIELD_KEEP };
        let room = limit.saturating_sub(self.line.len());
        self.line.extend_from_slice(&part[..part.len().min(room)]);
    }

    /// The request line ended (it is in `line`): kept for matching later.
    fn end_request_line(&mut self) {
        if self.line.last() == Some(&b'\r') {
            self.line.pop();
        }
        self.first_line = false;
        std::mem::swap(&mut self.request_line, &mut self.line);
        self.line.clear();
        if let Some(version) = self.bad_version.take() {
            self.found_bad_version = Some((self.request_line.clone(), version));
        }
    }

    /// A header line (without its `\n`; at least its first `FIELD_KEEP`
    /// bytes), or the empty line that ends the head: then the request line,
    /// when the head had both framing fields.
    fn field(&mut self, line: &[u8]) -> Option<Vec<u8>> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match line.first().map(u8::to_ascii_lowercase) {
            None => {
                self.active = false;
                let conflict = self.content_length && self.transfer_encoding;
                return conflict.then(|| std::mem::take(&mut self.request_line));
            }
            Some(b'c') => self.content_length |= starts_with_field(line, b"content-length:"),
            Some(b't') => self.transfer_encoding |= starts_with_field(line, b"transfer-encoding:"),
            Some(_) => {}
        }
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
        chunks.iter().find_map(|c| scan.feed(&mut c.to_vec()))
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
    fn lines_split_at_their_ends_and_any_case_are_seen() {
        let found = scan(&[b"POST /a HTTP/1.1\r\nCONTENT-LENGTH: 5\r", b"\nTransfer-Encoding: chunked\r\n", b"\r", b"\n"]);
        assert_eq!(found.as_deref(), Some(&b"POST /a HTTP/1.1"[..]));
        let found = scan(&[b"POST /a HTTP/1.1\r\nHost: x\r\nT", b"ransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n"]);
        assert!(found.is_some());
        assert!(scan(&[b"POST /a HTTP/1.1\r\ncontent-type: x\r\ntrailer: y\r\n\r\n"]).is_none(), "c… and t… fields that are neither");
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
    fn other_versions_are_rewritten_and_other_majors_noted() {
        for (line, seen) in [(&b"GET / HTTP/2.0\r\n"[..], Some(*b"HTTP/2.0")), (b"GET / HTTP/3.0\n", Some(*b"HTTP/3.0")), (b"GET / HTTP/1.2\n", None)] {
            let mut scan = HeadScan::default();
            scan.start();
            let mut bytes = line.to_vec();
            scan.feed(&mut bytes);
            assert_eq!(scan.take_bad_version().map(|(_, v)| v), seen);
            assert!(bytes.starts_with(b"GET / HTTP/1.1"));
        }
        for line in [&b"GET / HTTP/1.1\r\n"[..], b"GET / HTTP/1.0\r\n", b"GET / HTTP/2\r\n", b"GET /x HTTP/a.b\r\n", b"GET\r\n"] {
            let mut scan = HeadScan::default();
            scan.start();
            let mut bytes = line.to_vec();
            scan.feed(&mut bytes);
            assert_eq!((scan.take_bad_version(), &bytes[..]), (None, line));
        }
    }

    fn squeeze(max_target: usize, chunks: &[&[u8]]) -> (Vec<u8>, Option<usize>) {
        let mut scan = HeadScan::new(max_target);
        scan.start();
        let mut seen = Vec::new();
        for chunk in chunks {
            let mut bytes = chunk.to_vec();
            let kept = scan.squeeze_target(&mut bytes);
            seen.extend_from_slice(&bytes[..kept]);
        }
        (seen, scan.take_long_target())
    }

    #[test]
    fn long_targets_are_cut_to_one_over_the_limit() {
        let (seen, long) = squeeze(4, &[b"GET /abcdefgh HTTP/1.1\r\nhost: a\r\n\r\n"]);
        assert_eq!((&seen[..], long), (&b"GET /abcd HTTP/1.1\r\nhost: a\r\n\r\n"[..], Some(9)));
        let (seen, long) = squeeze(4, &[b"GE", b"T /ab", b"cdef", b"gh HT", b"TP/1.1\r\n"]);
        assert_eq!((&seen[..], long), (&b"GET /abcd HTTP/1.1\r\n"[..], Some(9)));
        let (seen, long) = squeeze(4, &[b"GET /abc HTTP/1.1\r\nx: /abcdefgh\r\n"]);
        assert_eq!((&seen[..], long), (&b"GET /abc HTTP/1.1\r\nx: /abcdefgh\r\n"[..], None));
        let (seen, long) = squeeze(4, &[b"GET /abcd HTTP/1.1\r\n"]);
        assert_eq!((&seen[..], long), (&b"GET /abcd HTTP/1.1\r\n"[..], None));
    }

    #[test]
    fn request_lines_match_method_and_target() {
        assert!(matches(b"POST /a?b=1 HTTP/1.1", "POST", "/a?b=1"));
        assert!(!matches(b"POST /b HTTP/1.1", "POST", "/a"));
        assert!(!matches(b"GET /a HTTP/1.1", "POST", "/a"));
    }
}
