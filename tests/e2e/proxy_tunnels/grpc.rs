//! gRPC through the proxy: a tonic echo service (h2c on 127.0.0.1:0) behind
//! covet with the upstream's `protocol: http2`, called by a tonic client over
//! h2c. Unary calls, server streaming in order with the final status in the
//! trailers, and error statuses (trailers-only, and after messages) reach the
//! client as the service sent them.

use std::{net::SocketAddr, pin::Pin};

use futures_util::Stream;
use serde_json::json;
use tokio::net::TcpListener;
use tonic::{
    Code, Request, Response, Status,
    metadata::MetadataMap,
    transport::{Channel, Server, server::TcpIncoming},
};

use super::{patiently, start};

/// The code generated from `tests/proto/echo/v1/echo.proto` (tests/build.rs).
pub(super) mod pb {
    tonic::include_proto!("echo.v1");
}

use pb::{
    CountReply, CountRequest, SayReply, SayRequest,
    echo_client::EchoClient,
    echo_server::{Echo, EchoServer},
};

/// `Say` with this text answers NOT_FOUND.
const MISSING: &str = "missing";

/// The echo service.
struct EchoService;

#[tonic::async_trait]
impl Echo for EchoService {
    async fn say(&self, request: Request<SayRequest>) -> Result<Response<SayReply>, Status> {
        let text = request.into_inner().text;
        if text == MISSING {
            let mut metadata = MetadataMap::new();
            metadata.insert("x-echo-detail", "nothing by that name".parse().unwrap());
            return Err(Status::with_metadata(Code::NotFound, "no such text: missing", metadata));
        }
        Ok(Response::new(SayReply { text: format!("echo: {text}") }))
    }

    type CountStream = Pin<Box<dyn Stream<Item = Result<CountReply, Status>> + Send>>;

    async fn count(&self, request: Request<CountRequest>) -> Result<Response<Self::CountStream>, Status> {
        let CountRequest { count, fail_with } = request.into_inner();
        let replies = (1..=count).map(|n| Ok(CountReply { n }));
        let end = (!fail_with.is_empty()).then(|| Err(Status::aborted(fail_with)));
        let stream = futures_util::stream::iter(replies.chain(end));
        Ok(Response::new(Box::pin(stream)))
    }
}

/// Serves the echo service over h2c on 127.0.0.1:0.
pub(super) async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Server::builder().add_service(EchoServer::new(EchoService));
    tokio::spawn(server.serve_with_incoming(TcpIncoming::from(listener)));
    addr
}

/// The upstream settings for the echo service at `addr` (h2c).
pub(super) fn h2c_upstream(addr: SocketAddr) -> serde_json::Value {
    json!({ "endpoints": [addr.to_string()], "protocol": "http2" })
}

/// A gRPC client of the echo service through covet at `addr` (h2c).
pub(super) async fn client(addr: SocketAddr) -> EchoClient<Channel> {
    let endpoint = Channel::from_shared(format!("http://{addr}")).unwrap();
    let channel = patiently("h2c connection to covet", endpoint.connect()).await.expect("connect to covet");
    EchoClient::new(channel)
}

/// covet proxying to the echo service over h2c, and a client to covet.
async fn gateway() -> (covet_e2e::Host, EchoClient<Channel>) {
    let host = start(h2c_upstream(echo_server().await), json!({})).await;
    let client = client(host.addr()).await;
    (host, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unary_call_returns_the_echo() {
    let (_host, mut client) = gateway().await;
    for text in ["hello", "", "ünïcode ✓"] {
        let reply = patiently("Say", client.say(SayRequest { text: text.into() })).await;
        let reply = reply.unwrap_or_else(|status| panic!("Say({text:?}) failed: {status:?}"));
        assert_eq!(reply.into_inner().text, format!("echo: {text}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_streaming_returns_every_message_in_order_and_status_ok() {
    let (_host, mut client) = gateway().await;
    let call = client.count(CountRequest { count: 200, fail_with: String::new() });
    let mut stream = patiently("Count", call).await.expect("Count starts").into_inner();
    let mut received = Vec::new();
    while let Some(reply) = patiently("next message", stream.message()).await.expect("no error status mid-stream") {
        received.push(reply.n);
    }
    assert_eq!(received, (1..=200).collect::<Vec<_>>(), "all messages, in order");
    let trailers = patiently("trailers", stream.trailers()).await.expect("status OK");
    assert!(trailers.is_some(), "the stream ended with trailers (grpc-status 0)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_status_reaches_the_client_as_sent() {
    let (_host, mut client) = gateway().await;
    let status = patiently("Say", client.say(SayRequest { text: MISSING.into() })).await.expect_err("NOT_FOUND");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert_eq!(status.message(), "no such text: missing");
    assert_eq!(status.metadata().get("x-echo-detail").and_then(|v| v.to_str().ok()), Some("nothing by that name"));

    // The client's connection still works after an error.
    let reply = patiently("Say", client.say(SayRequest { text: "after".into() })).await.expect("Say after an error");
    assert_eq!(reply.into_inner().text, "echo: after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_after_streamed_messages_crosses_in_the_trailers() {
    let (_host, mut client) = gateway().await;
    let call = client.count(CountRequest { count: 3, fail_with: "stopped at three".into() });
    let mut stream = patiently("Count", call).await.expect("Count starts").into_inner();
    let mut received = Vec::new();
    let status = loop {
        match patiently("next message", stream.message()).await {
            Ok(Some(reply)) => received.push(reply.n),
            Ok(None) => panic!("the stream ended with status OK after {received:?}: the ABORTED trailers were lost"),
            Err(status) => break status,
        }
    };
    assert_eq!(received, [1, 2, 3], "the messages before the error");
    assert_eq!(status.code(), Code::Aborted, "{status:?}");
    assert_eq!(status.message(), "stopped at three");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_on_one_connection_each_get_their_own_answers() {
    let (_host, client) = gateway().await;
    let says = (0..32).map(|i| {
        let mut client = client.clone();
        tokio::spawn(
            async move { client.say(SayRequest { text: format!("call {i}") }).await.map(|r| r.into_inner().text) },
        )
    });
    let counts = (1..=4u32).map(|k| {
        let mut client = client.clone();
        tokio::spawn(async move {
            let mut stream = client.count(CountRequest { count: 50 * k, fail_with: String::new() }).await?.into_inner();
            let mut received = Vec::new();
            while let Some(reply) = stream.message().await? {
                received.push(reply.n);
            }
            Ok::<_, Status>(received)
        })
    });
    let (says, counts): (Vec<_>, Vec<_>) = (says.collect(), counts.collect());
    for (i, call) in says.into_iter().enumerate() {
        let text = patiently("a concurrent Say", call).await.expect("task").expect("Say");
        assert_eq!(text, format!("echo: call {i}"));
    }
    for (k, call) in (1..=4u32).zip(counts) {
        let received = patiently("a concurrent Count", call).await.expect("task").expect("Count");
        assert_eq!(received, (1..=50 * k).collect::<Vec<_>>(), "stream {k}: all its own messages, in order");
    }
}
