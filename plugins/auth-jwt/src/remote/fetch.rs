//! [`Fetch`]: the one thing the key refresh needs from the outside world, an
//! HTTP GET. The plugin implements it over the host's outbound HTTP service
//! ([`HostFetch`]); unit tests implement it over a map of documents.

use std::{future::Future, pin::Pin, time::Duration};

use covet_plugin_api::host::{Host, HttpResponse};
use futures_util::future::{Either, select};

/// A boxed, sendable future (what [`Fetch::get`] returns).
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Most bytes read from a JWK set or discovery document.
pub const MAX_DOCUMENT: usize = 1 << 20;

/// A fetched document: a 200's body and its freshness.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The response body.
    pub body: Vec<u8>,
    /// `Cache-Control: max-age`, when the response had one.
    pub max_age: Option<Duration>,
}

/// Fetches documents over HTTP.
pub trait Fetch: Send + Sync + 'static {
    /// GETs `url`: the body of a 200, or why not (status, connect error,
    /// timeout, denied by the manifest, body too large).
    fn get(&self, url: &str) -> BoxFuture<Result<Fetched, String>>;
}

/// [`Fetch`] over the host's outbound HTTP service: a GET answered by a 200
/// within `timeout` (head and body together), a body of at most
/// [`MAX_DOCUMENT`] bytes, its `max-age` from `Cache-Control`.
pub struct HostFetch {
    host: Host,
    timeout: Duration,
}

impl HostFetch {
    /// GETs through `host`, each limited to `timeout`.
    pub fn new(host: Host, timeout: Duration) -> HostFetch {
        HostFetch { host, timeout }
    }
}

impl Fetch for HostFetch {
    fn get(&self, url: &str) -> BoxFuture<Result<Fetched, String>> {
        let request = self.host.http().get(url).header("accept", "application/json").timeout(self.timeout);
        let (host, limit) = (self.host.clone(), self.timeout);
        Box::pin(async move {
            let deadline = async move { host.sleep(limit).await };
            let fetch = Box::pin(async move {
                let response = request.send().await.map_err(|e| e.to_string())?;
                read(response).await
            });
            match select(fetch, Box::pin(deadline)).await {
                Either::Left((fetched, _)) => fetched,
                Either::Right((Err(stopped), _)) => Err(stopped.to_string()),
                Either::Right((Ok(()), _)) => Err(format!("no complete answer within {}", humantime::format_duration(limit))),
            }
        })
    }
}

/// The document of a 200 response, at most [`MAX_DOCUMENT`] bytes.
async fn read(mut response: HttpResponse) -> Result<Fetched, String> {
    if response.status() != 200 {
        return Err(format!("HTTP status {} (200 expected)", response.status()));
    }
    let max_age = response.header("cache-control").and_then(max_age);
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > MAX_DOCUMENT {
            return Err(format!("the document is larger than {} KiB", MAX_DOCUMENT >> 10));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Fetched { body, max_age })
}

/// The `max-age` of a `Cache-Control` value (`no-store`/`no-cache` count as 0).
pub fn max_age(cache_control: &str) -> Option<Duration> {
    let mut age = None;
    for directive in cache_control.split(',').map(str::trim) {
        let (name, value) = directive.split_once('=').unwrap_or((directive, ""));
        match name.trim().to_ascii_lowercase().as_str() {
            "no-store" | "no-cache" => return Some(Duration::ZERO),
            "max-age" => age = value.trim().trim_matches('"').parse().ok().map(Duration::from_secs),
            _ => {}
        }
    }
    age
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_reads_the_directive_among_others() {
        assert_eq!(max_age("public, max-age=600"), Some(Duration::from_secs(600)));
        assert_eq!(max_age("Max-Age=\"60\", must-revalidate"), Some(Duration::from_secs(60)));
        assert_eq!(max_age("no-cache"), Some(Duration::ZERO));
        assert_eq!(max_age("public"), None);
        assert_eq!(max_age("max-age=soon"), None);
    }
}
