//! Bare hyper hello-world: the baseline covet is measured against. Same
//! tokio runtime (multi-thread, default worker count) and the same hyper-util
//! auto builder (HTTP/1.1 + h2c) as covet, answering "hello" on every path.
//!
//! (`src/bin/hyper-proxy.rs` is the bare hyper proxy of bench/proxy.sh.)
//!
//! Usage: `hello-hyper [ADDR]` (default 127.0.0.1:0); prints `listening on http://ADDR`.

use std::{convert::Infallible, io::Write};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, body::Incoming, service::service_fn};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};

async fn hello(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut resp = Response::new(Full::new(Bytes::from_static(b"hello")));
    resp.headers_mut().insert("content-type", "text/plain; charset=utf-8".parse().expect("static"));
    Ok(resp)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:0".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    std::io::stdout().flush()?;
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let builder = auto::Builder::new(TokioExecutor::new());
            let _ = builder.serve_connection(TokioIo::new(stream), service_fn(hello)).await;
        });
    }
}
