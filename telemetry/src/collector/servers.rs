//! The collector's two servers: OTLP/gRPC (tonic) and OTLP/HTTP (hyper,
//! protobuf bodies). Each records what it receives in the shared store and
//! stops on its shutdown signal.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{MetricsService, MetricsServiceServer};
use opentelemetry_proto::tonic::collector::metrics::v1::{ExportMetricsServiceRequest, ExportMetricsServiceResponse};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use prost::Message;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

use super::model::{metrics_of, spans_of, Transport};
use super::{ReceivedRequest, Store};

type Started = (SocketAddr, (oneshot::Sender<()>, JoinHandle<()>));

/// Starts the gRPC server on `addr`.
pub(super) async fn grpc(addr: SocketAddr, store: Arc<Store>) -> std::io::Result<Started> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let service = Grpc(store);
    let server = tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(service.clone()))
        .add_service(MetricsServiceServer::new(service))
        .serve_with_incoming_shutdown(tokio_stream::wrappers::TcpListenerStream::new(listener), async {
            let _ = stopped.await;
        });
    let task = tokio::spawn(async move {
        if let Err(e) = server.await {
            tracing::warn!("test OTLP gRPC collector: {e}");
        }
    });
    Ok((local, (stop, task)))
}

#[derive(Clone)]
struct Grpc(Arc<Store>);

#[tonic::async_trait]
impl TraceService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let headers = headers(&request.metadata().clone().into_headers());
        let spans = spans_of(request.get_ref(), Transport::Grpc);
        let received = ReceivedRequest { transport: Transport::Grpc, signal: "traces", headers, items: spans.len() };
        self.0.add_spans(received, spans);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let headers = headers(&request.metadata().clone().into_headers());
        let metrics = metrics_of(request.get_ref(), Transport::Grpc);
        let received = ReceivedRequest { transport: Transport::Grpc, signal: "metrics", headers, items: metrics.len() };
        self.0.add_metrics(received, metrics);
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

/// Starts the HTTP server on `addr`. Stopping it closes the listener and
/// every open connection.
pub(super) async fn http(addr: SocketAddr, store: Arc<Store>) -> std::io::Result<Started> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let (stop, mut stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        let store = store.clone();
                        let service = hyper::service::service_fn(move |req| answer(store.clone(), req));
                        connections.spawn(hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service));
                    }
                    Err(e) => tracing::warn!("test OTLP HTTP collector: accept: {e}"),
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        // Dropping `connections` aborts every open connection.
    });
    Ok((local, (stop, task)))
}

async fn answer(store: Arc<Store>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.method() != Method::POST {
        return Ok(plain(StatusCode::METHOD_NOT_ALLOWED, "POST only"));
    }
    let protobuf = req.headers().get(http::header::CONTENT_TYPE).is_some_and(|v| v.as_bytes() == b"application/x-protobuf");
    if !protobuf {
        return Ok(plain(StatusCode::UNSUPPORTED_MEDIA_TYPE, "application/x-protobuf only"));
    }
    let path = req.uri().path().to_owned();
    let headers = headers(req.headers());
    let body = match req.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) => return Ok(plain(StatusCode::BAD_REQUEST, &format!("body: {e}"))),
    };
    Ok(match path.as_str() {
        "/v1/traces" => match ExportTraceServiceRequest::decode(body) {
            Ok(request) => {
                let spans = spans_of(&request, Transport::Http);
                let received = ReceivedRequest { transport: Transport::Http, signal: "traces", headers, items: spans.len() };
                store.add_spans(received, spans);
                protobuf_response(ExportTraceServiceResponse::default().encode_to_vec())
            }
            Err(e) => plain(StatusCode::BAD_REQUEST, &format!("protobuf: {e}")),
        },
        "/v1/metrics" => match ExportMetricsServiceRequest::decode(body) {
            Ok(request) => {
                let metrics = metrics_of(&request, Transport::Http);
                let received = ReceivedRequest { transport: Transport::Http, signal: "metrics", headers, items: metrics.len() };
                store.add_metrics(received, metrics);
                protobuf_response(ExportMetricsServiceResponse::default().encode_to_vec())
            }
            Err(e) => plain(StatusCode::BAD_REQUEST, &format!("protobuf: {e}")),
        },
        _ => plain(StatusCode::NOT_FOUND, "/v1/traces or /v1/metrics"),
    })
}

fn protobuf_response(body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/x-protobuf"));
    response
}

fn plain(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(text.to_owned())));
    *response.status_mut() = status;
    response
}

fn headers(map: &HeaderMap) -> Vec<(String, String)> {
    map.iter().map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned())).collect()
}
