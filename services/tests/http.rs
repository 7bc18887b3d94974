//! Outbound HTTP against real local hyper servers: HTTP/1.1 in clear,
//! HTTP/2 over TLS with a test CA (and mTLS), streaming both ways, the
//! policy's denial, and each timeout.

mod support;

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use covet_services::ServiceError;
use covet_services::http::{self, HttpClient, HttpConfig, OutboundPolicy, RequestBody};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use support::{Certs, ServerBody};
use tokio::sync::mpsc;

fn client(config: HttpConfig, allow: &[String]) -> http::Outbound {
    HttpClient::new(config).unwrap().for_plugin("tester", OutboundPolicy::new(allow).unwrap())
}

fn get(url: &str) -> ::http::Request<RequestBody> {
    ::http::Request::get(url).body(http::empty()).unwrap()
}

fn text(body: &'static str) -> ServerBody {
    http_body_util::Full::new(Bytes::from(body)).boxed_unsync()
}

/// A body fed through a channel: each message is one chunk.
fn channel_body<E: Send + 'static>() -> (mpsc::Sender<Bytes>, UnsyncBody<E>) {
    let (tx, mut rx) = mpsc::channel::<Bytes>(1);
    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|c| c.map(|c| Ok(Frame::data(c)))));
    (tx, StreamBody::new(stream).boxed_unsync())
}
type UnsyncBody<E> = http_body_util::combinators::UnsyncBoxBody<Bytes, E>;

#[tokio::test]
async fn http1_response_streams_chunk_by_chunk() {
    let (release_tx, release_rx) = tokio::sync::watch::channel(false);
    let addr = support::serve(None, move |_req| {
        let mut release = release_rx.clone();
        async move {
            let (tx, body) = channel_body::<Infallible>();
            tokio::spawn(async move {
                tx.send(Bytes::from("first")).await.unwrap();
                // The second chunk is sent only after the client has read the first.
                release.wait_for(|r| *r).await.unwrap();
                tx.send(Bytes::from("second")).await.unwrap();
            });
            ::http::Response::new(body)
        }
    })
    .await;
    let outbound = client(HttpConfig::default(), &[format!("127.0.0.1:{}", addr.port())]);
    let response = outbound.send(get(&format!("http://127.0.0.1:{}/", addr.port())), None).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), ::http::Version::HTTP_11);
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first, "first");
    release_tx.send(true).unwrap();
    let second = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(second, "second");
    assert!(body.frame().await.is_none());
    assert_eq!(outbound.metrics().snapshot(), (1, 0, 0));
}

#[tokio::test]
async fn h2_over_tls_with_custom_ca_streams_the_request_body_too() {
    let certs = Certs::new();
    // The server echoes each request body chunk as it arrives.
    let addr = support::serve(Some(certs.acceptor(false)), |req: ::http::Request<hyper::body::Incoming>| async move {
        let body = req.into_body().map_err(|_| -> Infallible { unreachable!("test body error") });
        ::http::Response::new(body.boxed_unsync())
    })
    .await;
    let config = HttpConfig { ca_pem: Some(certs.ca_pem.clone().into_bytes()), ..HttpConfig::default() };
    let outbound = client(config, &["localhost".to_owned()]);
    let (tx, body) = channel_body::<http::BoxError>();
    let request = ::http::Request::post(format!("https://localhost:{}/echo", addr.port())).body(body).unwrap();
    tx.send(Bytes::from("ping")).await.unwrap();
    let response = outbound.send(request, None).await.unwrap();
    assert_eq!(response.version(), ::http::Version::HTTP_2, "ALPN negotiated h2");
    let mut body = response.into_body();
    assert_eq!(next_data(&mut body).await.unwrap(), "ping");
    // The request is still open: the next chunk goes up and comes back.
    tx.send(Bytes::from("pong")).await.unwrap();
    assert_eq!(next_data(&mut body).await.unwrap(), "pong");
    drop(tx);
    assert_eq!(next_data(&mut body).await, None);
}

/// The next non-empty data chunk (HTTP/2 may end a stream with an empty DATA frame).
async fn next_data(body: &mut http::ResponseBody) -> Option<Bytes> {
    while let Some(frame) = body.frame().await {
        match frame.unwrap().into_data() {
            Ok(data) if data.is_empty() => continue,
            Ok(data) => return Some(data),
            Err(_) => continue,
        }
    }
    None
}

#[tokio::test]
async fn tls_needs_the_ca_and_mtls_presents_the_client_certificate() {
    let certs = Certs::new();
    let addr = support::serve(Some(certs.acceptor(true)), |_req| async { ::http::Response::new(text("hello")) }).await;
    let url = format!("https://127.0.0.1:{}/", addr.port());
    let allow = [format!("127.0.0.1:{}", addr.port())];

    let untrusted = client(HttpConfig::default(), &allow);
    let error = untrusted.send(get(&url), None).await.unwrap_err();
    assert!(matches!(error, ServiceError::Tls(_)), "without the CA: {error}");
    assert_eq!(untrusted.metrics().snapshot(), (1, 0, 1));

    let ca = Some(certs.ca_pem.clone().into_bytes());
    let no_cert = client(HttpConfig { ca_pem: ca.clone(), ..HttpConfig::default() }, &allow);
    let error = no_cert.send(get(&url), None).await;
    assert!(error.is_err(), "the server requires a client certificate");

    let (cert, key) = certs.issue(&["tester.clients.test"], rcgen::ExtendedKeyUsagePurpose::ClientAuth);
    let client_cert = Some(http::ClientCert { cert_pem: cert.into_bytes(), key_pem: key.into_bytes() });
    let mtls = client(HttpConfig { ca_pem: ca, client_cert, ..HttpConfig::default() }, &allow);
    let response = mtls.send(get(&url), None).await.unwrap();
    assert_eq!(response.into_body().collect().await.unwrap().to_bytes(), "hello");
}

#[tokio::test]
async fn a_host_not_granted_is_denied_before_connecting() {
    let outbound = client(HttpConfig::default(), &["api.example.com".to_owned()]);
    let error = outbound.send(get("http://127.0.0.1:9/"), None).await.unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, ServiceError::Denied { .. }), "{error:?}");
    assert!(text.contains("tester") && text.contains("127.0.0.1:9") && text.contains("outbound_http"), "{text}");
    assert_eq!(outbound.metrics().snapshot(), (0, 1, 0));
    let error = outbound.send(get("/relative"), None).await.unwrap_err();
    assert!(matches!(error, ServiceError::Http(_)), "{error:?}");
}

#[tokio::test]
async fn connect_refused_is_a_connect_error() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let outbound = client(HttpConfig::default(), &["127.0.0.1".to_owned()]);
    let error = outbound.send(get(&format!("http://127.0.0.1:{port}/")), None).await.unwrap_err();
    assert!(matches!(error, ServiceError::Connect { .. }), "{error:?}");
}

#[tokio::test]
async fn request_timeout_until_the_response_head() {
    let addr = support::serve(None, |_req| async {
        std::future::pending::<()>().await;
        unreachable!()
    })
    .await;
    let outbound = client(HttpConfig::default(), &["127.0.0.1".to_owned()]);
    let url = format!("http://127.0.0.1:{}/", addr.port());
    let error = outbound.send(get(&url), Some(Duration::from_millis(100))).await.unwrap_err();
    assert!(matches!(error, ServiceError::Timeout { .. }), "{error:?}");
    assert!(error.to_string().contains("100ms"), "{error}");
}

#[tokio::test]
async fn body_idle_timeout_between_chunks() {
    let addr = support::serve(None, |_req| async {
        let (tx, body) = channel_body::<Infallible>();
        tokio::spawn(async move {
            tx.send(Bytes::from("only")).await.unwrap();
            std::future::pending::<()>().await;
            drop(tx);
        });
        ::http::Response::new(body)
    })
    .await;
    let config = HttpConfig { body_idle_timeout: Duration::from_millis(100), ..HttpConfig::default() };
    let outbound = client(config, &["127.0.0.1".to_owned()]);
    let response = outbound.send(get(&format!("http://127.0.0.1:{}/", addr.port())), None).await.unwrap();
    let mut body = response.into_body();
    assert_eq!(body.frame().await.unwrap().unwrap().into_data().unwrap(), "only");
    let error = body.frame().await.unwrap().unwrap_err();
    assert!(matches!(error, ServiceError::Timeout { .. }), "{error:?}");
    assert_eq!(outbound.metrics().snapshot(), (1, 0, 1));
}

#[test]
fn a_bad_ca_bundle_is_a_config_error() {
    let config = HttpConfig { ca_pem: Some(b"not a certificate".to_vec()), ..HttpConfig::default() };
    let Err(error) = HttpClient::new(config) else { panic!("accepted a bad CA bundle") };
    assert!(matches!(error, ServiceError::Config(_)), "{error:?}");
}
