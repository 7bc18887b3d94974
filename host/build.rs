//! Generates the admin API's gRPC server from `proto/covet/admin/v1/admin.proto`
//! with the pure-Rust `protox` compiler (no `protoc` needed), and writes the
//! encoded descriptor set that gRPC reflection serves.
//!
//! For the embedded Python (runtime/python): links libpython with an rpath,
//! records the build interpreter's `sys.base_prefix` as `COVET_PYTHONHOME`
//! (the run-time default for `PYTHONHOME`), and embeds every file of the
//! `covet` Python package (`python/covet/`) through a generated list.

use std::{env, path::PathBuf};

const PROTO: &str = "proto/covet/admin/v1/admin.proto";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={PROTO}");
    #[cfg(feature = "python")]
    python()?;
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

/// libpython's rpath, the interpreter's home, and the embedded `covet` package
/// (only with the `python` feature: a native-only build never runs Python).
#[cfg(feature = "python")]
fn python() -> Result<(), Box<dyn std::error::Error>> {
    pyo3_build_config::add_libpython_rpath_link_args();
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
    let config = pyo3_build_config::get();
    let python = env::var("PYO3_PYTHON").ok().or_else(|| config.executable().map(str::to_owned)).unwrap_or_else(|| "python3".into());
    let out = std::process::Command::new(&python).args(["-c", "import sys; print(sys.base_prefix)"]).output()?;
    let home = String::from_utf8(out.stdout)?.trim().to_owned();
    println!("cargo:rustc-env=COVET_PYTHONHOME={home}");
    let package = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("python").join("covet");
    println!("cargo:rerun-if-changed={}", package.display());
    let mut files = Vec::new();
    collect_py(&package, "covet", &mut files)?;
    files.sort();
    let mut code = String::from("/// The `covet` package: (module name, is a package, source).\npub const COVET_PACKAGE: &[(&str, bool, &str)] = &[\n");
    for (module, is_pkg, path) in files {
        code.push_str(&format!("    ({module:?}, {is_pkg}, include_str!({:?})),\n", path.display().to_string()));
    }
    code.push_str("];\n");
    std::fs::write(PathBuf::from(env::var_os("OUT_DIR").ok_or("OUT_DIR is not set")?).join("covet_package.rs"), code)?;
    Ok(())
}

/// Every `.py` under `dir`, as (dotted module name, is a package, path).
#[cfg(feature = "python")]
fn collect_py(dir: &std::path::Path, prefix: &str, out: &mut Vec<(String, bool, PathBuf)>) -> std::io::Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(()) };
    for entry in entries {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        if path.is_dir() && path.join("__init__.py").is_file() {
            println!("cargo:rerun-if-changed={}", path.display());
            collect_py(&path, &format!("{prefix}.{name}"), out)?;
        } else if name == "__init__.py" {
            out.push((prefix.to_owned(), true, path));
        } else if let Some(stem) = name.strip_suffix(".py") {
            out.push((format!("{prefix}.{stem}"), false, path));
        }
    }
    Ok(())
}
