//! The OTLP collector the telemetry cost bench (bench/telemetry/instructions.sh)
//! exports to: the test collector of `covet_telemetry::collector` (tonic gRPC
//! and hyper HTTP servers on 127.0.0.1, ports chosen by the system) as a
//! process of its own, so covet's export work (batching, protobuf encoding,
//! the gRPC call) runs and counts while covet is measured.
//!
//! Prints `grpc http://ADDR` and `http http://ADDR`, then runs until SIGINT,
//! when it prints `received N spans in M export calls` and exits.
//!
//! ```sh
//! cargo build -p covet-e2e --example otlp-sink
//! ```

use covet_telemetry::collector::Collector;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let collector = Collector::start().await.expect("start the OTLP collector");
    println!("grpc {}", collector.grpc_endpoint());
    println!("http {}", collector.http_endpoint());
    tokio::signal::ctrl_c().await.expect("wait for SIGINT");
    let (spans, calls) = (collector.spans().len(), collector.requests().len());
    println!("received {spans} spans in {calls} export calls");
}
