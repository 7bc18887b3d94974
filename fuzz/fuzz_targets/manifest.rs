//! The manifest parser and validator: YAML text → `Manifest::parse` (serde-saphyr,
//! then every validation rule), and on refusal the error report with its
//! source excerpts (`ManifestError`'s Display). Relative artifact paths
//! resolve against examples/, so the example manifests validate.
#![no_main]

use std::path::PathBuf;
use std::sync::LazyLock;

use covet::manifest::Manifest;

static SOURCE: LazyLock<PathBuf> = LazyLock::new(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/fuzz.yaml")));

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match Manifest::parse(&SOURCE, text) {
        Ok(manifest) => {
            assert!(!manifest.listen.is_empty(), "a valid manifest listens somewhere");
            for route in &manifest.routes {
                for named in route.filters.iter().chain(std::iter::once(&route.handler)) {
                    assert!(manifest.plugin(&named.name).is_some(), "route {} names an undefined plugin {}", route.path, named.name);
                }
            }
            // Deterministic: the same text validates to the same manifest.
            let again = Manifest::parse(&SOURCE, text).expect("a manifest that validated once validates again");
            assert_eq!(format!("{manifest:?}"), format!("{again:?}"));
        }
        Err(error) => {
            assert!(!error.diagnostics.is_empty(), "a refusal says why");
            // Lines as YAML counts them: LF, CRLF and a lone CR each end one.
            let lines = text.replace("\r\n", "\n").bytes().filter(|b| matches!(b, b'\n' | b'\r')).count() as u64 + 1;
            for diagnostic in &error.diagnostics {
                assert!(!diagnostic.message.is_empty(), "an empty diagnostic");
                if let Some(loc) = &diagnostic.loc {
                    assert!(loc.line <= lines, "diagnostic at line {} of a {lines}-line text", loc.line);
                }
            }
            let report = error.to_string();
            assert!(!report.is_empty());
        }
    }
});
