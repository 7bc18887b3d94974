//! Generates a gRPC client for the host's admin API
//! (`host/proto/covet/admin/v1/admin.proto`) for the end-to-end tests, with
//! the pure-Rust `protox` compiler.

const PROTO: &str = "../host/proto/covet/admin/v1/admin.proto";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={PROTO}");
    let descriptors = protox::compile([PROTO], ["../host/proto"])?;
    tonic_prost_build::configure().build_server(false).build_transport(false).compile_fds(descriptors)?;
    Ok(())
}
