//! The two REST services the GraphQL tests resolve against, real hyper
//! servers on loopback ports: `users` (fast: users by id, by a list of ids,
//! `/me` from the `x-user` header, `/slow` that never answers in time) and
//! `posts` (slow: every answer waits, and with a gate set it holds each call
//! until that many are in flight at once). Both count the calls per path.

use std::{
    collections::HashMap,
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use covet_e2e::serve_http1;
use http_body_util::Full;
use hyper::{Request, Response, body::Incoming};
use serde_json::{Value, json};

/// What a service saw.
#[derive(Default)]
pub struct Service {
    calls: Mutex<HashMap<String, usize>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// Hold each `/posts/{id}` call until this many are in flight (0: no gate).
    pub gate: AtomicUsize,
}

impl Service {
    /// Calls of `path_and_query` so far.
    pub fn calls(&self, path_and_query: &str) -> usize {
        self.calls.lock().unwrap().get(path_and_query).copied().unwrap_or(0)
    }

    /// Every call so far.
    pub fn total(&self) -> usize {
        self.calls.lock().unwrap().values().sum()
    }

    /// The most calls in flight at once.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(Ordering::SeqCst)
    }

    fn record(&self, req: &Request<Incoming>) -> String {
        let key = req.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default();
        *self.calls.lock().unwrap().entry(key.clone()).or_default() += 1;
        key
    }
}

fn json_reply(status: u16, body: Value) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut reply = Response::new(Full::new(Bytes::from(body.to_string())));
    *reply.status_mut() = status.try_into().unwrap();
    reply.headers_mut().insert("content-type", "application/json".parse().unwrap());
    Ok(reply)
}

fn user(id: &str) -> Value {
    json!({ "id": id, "name": format!("user {id}") })
}

/// The users service.
pub async fn users() -> (SocketAddr, Arc<Service>) {
    let service = Arc::new(Service::default());
    let seen = service.clone();
    let addr = serve_http1(move |req: Request<Incoming>| {
        let service = seen.clone();
        async move {
            let key = service.record(&req);
            let (path, query) = key.split_once('?').unwrap_or((&key, ""));
            match path {
                "/users" => {
                    let ids = query.strip_prefix("ids=").unwrap_or("");
                    json_reply(200, ids.split(',').filter(|i| !i.is_empty()).map(user).collect())
                }
                "/users/404" => json_reply(404, json!({ "error": "no such user" })),
                "/users/garbled" => {
                    Ok(Response::new(Full::new(Bytes::from_static(b"<html>not json</html>"))))
                }
                "/me" => {
                    let who = req.headers().get("x-user").and_then(|v| v.to_str().ok()).unwrap_or("");
                    json_reply(200, json!({ "id": who, "name": format!("me: {who}") }))
                }
                "/slow" => {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    json_reply(200, user("slow"))
                }
                p => json_reply(200, user(p.trim_start_matches("/users/"))),
            }
        }
    })
    .await;
    (addr, service)
}

/// The posts service: slow, and gated when `gate` is set.
pub async fn posts() -> (SocketAddr, Arc<Service>) {
    let service = Arc::new(Service::default());
    let seen = service.clone();
    let addr = serve_http1(move |req: Request<Incoming>| {
        let service = seen.clone();
        async move {
            let key = service.record(&req);
            let now = service.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            service.max_in_flight.fetch_max(now, Ordering::SeqCst);
            // Slow: every answer takes a while; gated: wait for the others (at most 5 s).
            tokio::time::sleep(Duration::from_millis(50)).await;
            let gate = service.gate.load(Ordering::SeqCst);
            for _ in 0..500 {
                if gate == 0 || service.max_in_flight.load(Ordering::SeqCst) >= gate {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            service.in_flight.fetch_sub(1, Ordering::SeqCst);
            match key.as_str() {
                "/posts" => json_reply(
                    200,
                    json!([
                        { "id": "p1", "title": "one", "authorId": "1" },
                        { "id": "p2", "title": "two", "authorId": "2" },
                        { "id": "p3", "title": "three", "authorId": "1" },
                    ]),
                ),
                p => {
                    let id = p.trim_start_matches("/posts/");
                    json_reply(200, json!({ "id": id, "title": format!("post {id}"), "authorId": "1" }))
                }
            }
        }
    })
    .await;
    (addr, service)
}
