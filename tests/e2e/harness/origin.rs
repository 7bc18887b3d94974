//! A counting origin for the cache suite: a hyper HTTP/1.1 server on
//! 127.0.0.1:0 whose answer per path the test sets ([`Origin::set`]: status,
//! headers such as `Cache-Control`/`ETag`/`Vary`, body, a delay, chunked or
//! not) and which records every request that reached it ([`Origin::hits`],
//! [`Origin::seen`]), so a test sees exactly when the cache went to the origin.
//!
//! Like a real origin it answers conditionals: `If-None-Match` matching the
//! answer's `ETag` (weak compare) or `If-Modified-Since` equal to its
//! `Last-Modified` get a `304` with the answer's headers and no body. Every
//! answer carries `x-origin-seq: N`, the how-manieth request for that path
//! this was, so a test tells which origin answer a cached reply came from.
//! A path not set answers 404 without cache headers. A key ending in `*`
//! answers every path under that prefix.

use std::{
    collections::HashMap,
    convert::Infallible,
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use http::HeaderMap;
use hyper::{
    Request, Response,
    body::{Body, Frame, Incoming},
    service::service_fn,
};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};

/// What the origin answers on a path.
#[derive(Clone, Debug)]
pub struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Bytes,
    delay: Duration,
    chunked: bool,
}

impl Answer {
    /// `200` with `body` and no cache headers.
    pub fn ok(body: impl Into<Bytes>) -> Answer {
        Answer { status: 200, headers: Vec::new(), body: body.into(), delay: Duration::ZERO, chunked: false }
    }

    /// `200` with `body` and `Cache-Control: cache_control`.
    pub fn cached(cache_control: &str, body: impl Into<Bytes>) -> Answer {
        Answer::ok(body).header("cache-control", cache_control)
    }

    /// The status.
    pub fn status(mut self, status: u16) -> Answer {
        self.status = status;
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Answer {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Waits this long (after the request arrived) before answering.
    pub fn delay(mut self, delay: Duration) -> Answer {
        self.delay = delay;
        self
    }

    /// Sends the body in 4 KiB chunks without a `content-length` (chunked).
    pub fn chunked(mut self) -> Answer {
        self.chunked = true;
        self
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Whether a request with `headers` gets a 304 (RFC 9110 13.1.2 / 13.1.3).
    fn not_modified(&self, headers: &HeaderMap) -> bool {
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        if let Some(tags) = text("if-none-match") {
            let Some(etag) = self.get("etag") else {
                return false;
            };
            let weak = |t: &str| t.trim().trim_start_matches("W/").to_owned();
            return tags.split(',').any(|t| t.trim() == "*" || weak(t) == weak(etag));
        }
        match (text("if-modified-since"), self.get("last-modified")) {
            (Some(since), Some(modified)) => since.trim() == modified.trim(),
            _ => false,
        }
    }
}

/// One request that reached the origin.
#[derive(Clone, Debug)]
pub struct Seen {
    /// Its method.
    pub method: String,
    /// Its target (path and query).
    pub uri: String,
    /// Its headers.
    pub headers: HeaderMap,
    /// What the origin answered.
    pub status: u16,
}

impl Seen {
    /// A request header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

struct State {
    answers: Mutex<HashMap<String, Answer>>,
    seen: Mutex<Vec<Seen>>,
    held: watch::Sender<bool>,
}

/// The origin; stops serving when dropped.
pub struct Origin {
    addr: SocketAddr,
    state: Arc<State>,
    server: Mutex<Option<JoinHandle<()>>>,
}

impl Origin {
    /// Starts an origin with no paths set.
    pub async fn start() -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the origin");
        let addr = listener.local_addr().expect("origin address");
        let state = Arc::new(State {
            answers: Mutex::new(HashMap::new()),
            seen: Mutex::new(Vec::new()),
            held: watch::Sender::new(false),
        });
        let origin = Origin { addr, state, server: Mutex::new(None) };
        origin.accept(listener);
        origin
    }

    /// `127.0.0.1:<port>`, as a manifest's `endpoints:` entry.
    pub fn endpoint(&self) -> String {
        self.addr.to_string()
    }

    /// What `path` (no query; or a prefix ending in `*`) answers from now on.
    pub fn set(&self, path: &str, answer: Answer) {
        self.state.answers.lock().unwrap().insert(path.to_owned(), answer);
    }

    /// Requests for exactly `target` (path and query) so far, any method.
    pub fn hits(&self, target: &str) -> usize {
        self.state.seen.lock().unwrap().iter().filter(|s| s.uri == target).count()
    }

    /// Requests so far, all paths together.
    pub fn requests(&self) -> usize {
        self.state.seen.lock().unwrap().len()
    }

    /// Every request for exactly `target` so far, oldest first.
    pub fn seen(&self, target: &str) -> Vec<Seen> {
        self.state.seen.lock().unwrap().iter().filter(|s| s.uri == target).cloned().collect()
    }

    /// Requests wait (counted, in flight) until [`Origin::release`].
    pub fn hold(&self) {
        self.state.held.send_replace(true);
    }

    /// Lets held requests (and later ones) answer.
    pub fn release(&self) {
        self.state.held.send_replace(false);
    }

    /// Stops serving: the listener and every connection are dropped, so
    /// connecting is refused (the origin is down).
    pub fn stop(&self) {
        if let Some(server) = self.server.lock().unwrap().take() {
            server.abort();
        }
    }

    fn accept(&self, listener: TcpListener) {
        let state = self.state.clone();
        let server = tokio::spawn(async move {
            // Dropping the set (when this task is aborted) aborts every connection.
            let mut connections = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((socket, _)) = accepted else { break };
                        let state = state.clone();
                        connections.spawn(async move {
                            let service = service_fn(move |req| answer(state.clone(), req));
                            let io = TokioIo::new(socket);
                            let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
                        });
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        *self.server.lock().unwrap() = Some(server);
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The answer set for `path`: exact, else the longest `prefix*` matching.
fn lookup(state: &State, path: &str) -> Option<Answer> {
    let answers = state.answers.lock().unwrap();
    if let Some(answer) = answers.get(path) {
        return Some(answer.clone());
    }
    answers
        .iter()
        .filter_map(|(key, answer)| Some((key.strip_suffix('*')?, answer)))
        .filter(|(prefix, _)| path.starts_with(prefix))
        .max_by_key(|(prefix, _)| prefix.len())
        .map(|(_, answer)| answer.clone())
}

async fn answer(state: Arc<State>, req: Request<Incoming>) -> Result<Response<Chunks>, Infallible> {
    let (parts, _body) = req.into_parts();
    let uri = parts.uri.path_and_query().map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned());
    let found = lookup(&state, parts.uri.path());
    let not_modified = found.as_ref().is_some_and(|a| a.not_modified(&parts.headers));
    let status = match &found {
        None => 404,
        Some(_) if not_modified => 304,
        Some(a) => a.status,
    };
    let seq = {
        let mut seen = state.seen.lock().unwrap();
        seen.push(Seen { method: parts.method.to_string(), uri: uri.clone(), headers: parts.headers, status });
        seen.iter().filter(|s| s.uri == uri).count()
    };
    let _ = state.held.subscribe().wait_for(|held| !*held).await;
    let answer = found.unwrap_or_else(|| Answer::ok("no such path").status(404));
    if !answer.delay.is_zero() {
        tokio::time::sleep(answer.delay).await;
    }
    let body =
        if not_modified { Chunks::new(Bytes::new(), false) } else { Chunks::new(answer.body.clone(), answer.chunked) };
    let mut response = Response::new(body);
    *response.status_mut() = http::StatusCode::from_u16(status).expect("a valid status");
    for (name, value) in &answer.headers {
        let name = http::HeaderName::from_bytes(name.as_bytes()).expect("a header name");
        response.headers_mut().append(name, value.parse().expect("a header value"));
    }
    response.headers_mut().insert("x-origin-seq", seq.into());
    Ok(response)
}

/// A body handed out in 4 KiB frames; chunked ones declare no length.
pub struct Chunks {
    left: Bytes,
    chunked: bool,
}

impl Chunks {
    fn new(body: Bytes, chunked: bool) -> Chunks {
        Chunks { left: body, chunked }
    }
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.left.is_empty() {
            return Poll::Ready(None);
        }
        let n = self.left.len().min(4096);
        let chunk = self.left.split_to(n);
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.left.is_empty()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        if self.chunked {
            hyper::body::SizeHint::default()
        } else {
            hyper::body::SizeHint::with_exact(self.left.len() as u64)
        }
    }
}

/// `time` as an HTTP date (IMF-fixdate, RFC 9110 5.6.7), e.g.
/// `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn http_date(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).expect("after 1970").as_secs();
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let name =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"][(month - 1) as usize];
    format!("{weekday}, {day:02} {name} {year} {:02}:{:02}:{:02} GMT", rest / 3600, rest % 3600 / 60, rest % 60)
}

/// [`http_date`] of now moved by `seconds` (negative: in the past).
pub fn http_date_in(seconds: i64) -> String {
    let now = SystemTime::now();
    let moved = if seconds >= 0 {
        now + Duration::from_secs(seconds as u64)
    } else {
        now - Duration::from_secs(seconds.unsigned_abs())
    };
    http_date(moved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_match_rfc_9110() {
        assert_eq!(http_date(UNIX_EPOCH + Duration::from_secs(784_111_777)), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(UNIX_EPOCH + Duration::from_secs(951_782_400)), "Tue, 29 Feb 2000 00:00:00 GMT");
    }
}
