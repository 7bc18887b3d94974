//! A raw TCP client for what a well-behaved HTTP client never does:
//! pipelining, partial heads, hand-written chunked bodies, holding a
//! connection open or watching for the server to close it.

use std::{io, net::SocketAddr, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::{Instant, timeout},
};

/// One TCP connection, with the bytes read but not yet consumed.
pub struct RawConn {
    stream: TcpStream,
    buffered: Vec<u8>,
}

/// A response read off a raw connection (HTTP/1.1, `content-length` or chunked).
#[derive(Debug)]
pub struct RawResponse {
    /// Status code.
    pub status: u16,
    /// Header lines as `(lower-case name, value)`.
    pub headers: Vec<(String, String)>,
    /// Body (de-chunked).
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first value of header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The body as JSON (panics with the body when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// How a wait for the server to close a connection ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Closed {
    /// The server closed (EOF or reset) after this long.
    After(Duration),
    /// Still open when the wait gave up.
    StillOpen,
}

impl RawConn {
    /// Connects to `addr`.
    pub async fn connect(addr: SocketAddr) -> RawConn {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        RawConn { stream, buffered: Vec::new() }
    }

    /// Writes `bytes` as they are.
    pub async fn send(&mut self, bytes: impl AsRef<[u8]>) -> io::Result<()> {
        self.stream.write_all(bytes.as_ref()).await?;
        self.stream.flush().await
    }

    /// Reads one response; panics when none arrives within `limit`.
    pub async fn response(&mut self, limit: Duration) -> RawResponse {
        timeout(limit, self.read_response())
            .await
            .unwrap_or_else(|_| panic!("no response within {limit:?}"))
            .unwrap_or_else(|e| panic!("reading the response: {e}"))
    }

    /// Reads one response, or `None` when none arrives within `limit`.
    pub async fn try_response(&mut self, limit: Duration) -> Option<io::Result<RawResponse>> {
        timeout(limit, self.read_response()).await.ok()
    }

    /// The bytes available next (empty at EOF), or `None` when nothing
    /// arrives within `limit`.
    pub async fn read_some(&mut self, limit: Duration) -> Option<Vec<u8>> {
        if !self.buffered.is_empty() {
            return Some(std::mem::take(&mut self.buffered));
        }
        let mut buf = [0u8; 8192];
        match timeout(limit, self.stream.read(&mut buf)).await {
            Err(_) => None,
            Ok(Ok(n)) => Some(buf[..n].to_vec()),
            Ok(Err(_)) => Some(Vec::new()),
        }
    }

    /// Waits up to `limit` for the server to close the connection, discarding
    /// whatever it sends first.
    pub async fn closed_within(&mut self, limit: Duration) -> Closed {
        let started = Instant::now();
        let mut buf = [0u8; 4096];
        loop {
            let left = limit.saturating_sub(started.elapsed());
            match timeout(left, self.stream.read(&mut buf)).await {
                Err(_) => return Closed::StillOpen,
                Ok(Ok(0)) | Ok(Err(_)) => return Closed::After(started.elapsed()),
                Ok(Ok(_)) => continue,
            }
        }
    }

    async fn read_response(&mut self) -> io::Result<RawResponse> {
        let head_end = self.fill_until(|buf| find(buf, b"\r\n\r\n").map(|at| at + 4)).await?;
        let head: Vec<u8> = self.buffered.drain(..head_end).collect();
        let head = String::from_utf8_lossy(&head).into_owned();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| bad(status_line))?;
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let chunked = headers.iter().any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
        let length = headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse::<usize>().ok());
        let body = match (chunked, length) {
            (true, _) => self.read_chunked().await?,
            (false, Some(len)) => self.take(len).await?,
            (false, None) => Vec::new(),
        };
        Ok(RawResponse { status, headers, body })
    }

    async fn read_chunked(&mut self) -> io::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line_end = self.fill_until(|buf| find(buf, b"\r\n").map(|at| at + 2)).await?;
            let line: Vec<u8> = self.buffered.drain(..line_end).collect();
            let size_text = String::from_utf8_lossy(&line[..line.len() - 2]).into_owned();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| bad(&size_text))?;
            let chunk = self.take(size + 2).await?;
            if size == 0 {
                return Ok(body);
            }
            body.extend_from_slice(&chunk[..size]);
        }
    }

    async fn take(&mut self, len: usize) -> io::Result<Vec<u8>> {
        self.fill_until(|buf| (buf.len() >= len).then_some(len)).await?;
        Ok(self.buffered.drain(..len).collect())
    }

    /// Reads until `done` finds what it needs in the buffer; returns its answer.
    async fn fill_until(&mut self, done: impl Fn(&[u8]) -> Option<usize>) -> io::Result<usize> {
        let mut buf = [0u8; 8192];
        loop {
            if let Some(n) = done(&self.buffered) {
                return Ok(n);
            }
            let n = self.stream.read(&mut buf).await?;
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the server closed the connection"));
            }
            self.buffered.extend_from_slice(&buf[..n]);
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("not HTTP: {what:?}"))
}

/// `GET path` on HTTP/1.1 with a `host` header, keep-alive.
pub fn get_request(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nhost: covet.test\r\n\r\n")
}
