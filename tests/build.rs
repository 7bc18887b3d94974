//! Generates, with the pure-Rust `protox` compiler, the gRPC code of the
//! end-to-end tests: a client for the host's admin API
//! (`host/proto/covet/admin/v1/admin.proto`), and client and server for the
//! echo service the proxy tests put behind covet (`proto/echo/v1/echo.proto`).

const ADMIN: &str = "../host/proto/covet/admin/v1/admin.proto";
const ECHO: &str = "proto/echo/v1/echo.proto";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={ADMIN}");
    println!("cargo:rerun-if-changed={ECHO}");
    let admin = protox::compile([ADMIN], ["../host/proto"])?;
    tonic_prost_build::configure().build_server(false).build_transport(false).compile_fds(admin)?;
    let echo = protox::compile([ECHO], ["proto"])?;
    tonic_prost_build::configure().build_server(true).build_transport(false).compile_fds(echo)?;
    Ok(())
}
