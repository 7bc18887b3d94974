//! Generates the admin API's gRPC server from `proto/covet/admin/v1/admin.proto`
//! with the pure-Rust `protox` compiler (no `protoc` needed), and writes the
//! encoded descriptor set that gRPC reflection serves.

use std::{env, path::PathBuf};

const PROTO: &str = "proto/covet/admin/v1/admin.proto";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={PROTO}");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").ok_or("OUT_DIR is not set")?);
    let mut compiler = protox::Compiler::new(["proto"])?;
    compiler.include_imports(true).include_source_info(true).open_file(PROTO)?;
    std::fs::write(out_dir.join("admin_descriptor.bin"), compiler.encode_file_descriptor_set())?;
    tonic_prost_build::configure()
        .build_client(false)
        .build_transport(false)
        .compile_fds(compiler.file_descriptor_set())?;
    Ok(())
}
