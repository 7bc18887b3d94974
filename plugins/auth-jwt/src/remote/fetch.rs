//! [`Fetch`]: the one thing the key refresh needs from the outside world, an
//! HTTP GET. The plugin implements it over the host's outbound HTTP service
//! (`host.rs`); unit tests implement it over a map of documents.

use std::{future::Future, pin::Pin, time::Duration};

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
