//! A bare hyper reverse proxy: the floor of a hyper-based proxy, measured
//! next to covet's proxy plugin, nginx and HAProxy by `bench/proxy.sh`.
//!
//! One current-thread tokio runtime (as covet's one worker on one core);
//! hyper's HTTP/1.1 server; hyper-util's pooled client (keep-alive, what a
//! hyper-based proxy would use) to one upstream; the request and response
//! bodies streamed through. It does only what every proxy must: rewrite the
//! URI's authority and drop the hop-by-hop headers both ways. No routing,
//! balancing, retries, health, metrics, logs or forwarding headers: what it
//! costs per request is what covet's proxy cannot go below while it is
//! built on hyper.
//!
//! Usage: `hyper-proxy UPSTREAM [ADDR]` (UPSTREAM `host:port`; ADDR default
//! 127.0.0.1:0); prints `listening on http://ADDR`.

use std::io::Write;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, Uri, header};
use http_body_util::{Either, Full};
use hyper::{Request, Response, StatusCode, body::Incoming, service::service_fn};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::{TokioExecutor, TokioIo},
};

type Upstream = Client<HttpConnector, Incoming>;

/// RFC 9110 §7.6.1 plus the ones a `Connection` header names.
fn drop_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [header::CONNECTION, header::TE, header::TRAILER, header::TRANSFER_ENCODING, header::UPGRADE, header::PROXY_AUTHORIZATION, header::PROXY_AUTHENTICATE] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
}

async fn forward(client: Upstream, authority: http::uri::Authority, mut req: Request<Incoming>) -> Result<Response<Incoming>, String> {
    let mut parts = req.uri().clone().into_parts();
    parts.scheme = Some(http::uri::Scheme::HTTP);
    parts.authority = Some(authority);
    *req.uri_mut() = Uri::from_parts(parts).map_err(|e| e.to_string())?;
    drop_hop_by_hop(req.headers_mut());
    let mut resp = client.request(req).await.map_err(|e| e.to_string())?;
    drop_hop_by_hop(resp.headers_mut());
    Ok(resp)
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let upstream: http::uri::Authority = args.next().expect("usage: hyper-proxy UPSTREAM [ADDR]").parse().expect("UPSTREAM is host:port");
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:0".into());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        println!("listening on http://{}", listener.local_addr()?);
        std::io::stdout().flush()?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client: Upstream = Client::builder(TokioExecutor::new()).build(connector);
        loop {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            let (client, upstream) = (client.clone(), upstream.clone());
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let (client, upstream) = (client.clone(), upstream.clone());
                    async move {
                        let resp = match forward(client, upstream, req).await {
                            Ok(resp) => resp.map(Either::Left),
                            Err(e) => {
                                let mut resp = Response::new(Either::Right(Full::new(Bytes::from(e))));
                                *resp.status_mut() = StatusCode::BAD_GATEWAY;
                                resp
                            }
                        };
                        Ok::<_, std::convert::Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    })
}
