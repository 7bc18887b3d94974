//! An upstream for tests of outbound calls: a hyper HTTP/1.1 server on
//! 127.0.0.1:0, one task per connection, answering with the test's function.

use std::{convert::Infallible, future::Future, net::SocketAddr};

use hyper::{Request, Response, body::Incoming, service::service_fn};

/// Serves `answer` on a fresh loopback port until the test's runtime ends;
/// returns the bound address.
pub async fn serve_http1<F, Fut, B>(answer: F) -> SocketAddr
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<B>, Infallible>> + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let answer = answer.clone();
            tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(socket);
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service_fn(answer)).await;
            });
        }
    });
    addr
}
