//! Reading certificates and keys from PEM files: a listener's certificate
//! chain with its key (checked to belong together), the names a certificate
//! is valid for (its DNS subject alternative names), and a client CA bundle.
//!
//! The manifest check (`covet check`) and the running server use the same
//! functions, so a file that passes the check is one the server accepts, and
//! a reload fails with the same message a start would.

use std::{path::Path, sync::Arc};

use rustls::{
    RootCertStore,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    sign::CertifiedKey,
};
use x509_parser::{extensions::GeneralName, prelude::FromDer};

/// Which of the two files of a pair a problem is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// The certificate chain (`cert`).
    Cert,
    /// The private key (`key`).
    Key,
}

/// Why a certificate, key or CA file cannot be used, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertProblem {
    /// The file at fault.
    pub which: Which,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub help: String,
}

impl std::fmt::Display for CertProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.help)
    }
}

fn problem(which: Which, message: String, help: &str) -> CertProblem {
    CertProblem { which, message, help: help.to_owned() }
}

/// Reads a PEM certificate chain (leaf first) and its private key
/// (PKCS#8, PKCS#1 or SEC1) and checks that the key matches the leaf.
pub fn load_pair(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, CertProblem> {
    let chain = load_chain(cert, Which::Cert)?;
    let key_der = load_key(key)?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let certified = CertifiedKey::from_der(chain, key_der, &provider).map_err(|e| {
        let message = format!("key {} does not fit certificate {}: {e}", key.display(), cert.display());
        problem(Which::Key, message, "give the private key the certificate was issued for (the first certificate in the PEM is the leaf)")
    })?;
    Ok(Arc::new(certified))
}

/// Every certificate in a PEM file; an empty file is an error.
pub fn load_chain(path: &Path, which: Which) -> Result<Vec<CertificateDer<'static>>, CertProblem> {
    let unreadable = |e: &dyn std::fmt::Display| {
        problem(which, format!("cannot read certificate file {}: {e}", path.display()), "check the path (relative to the manifest) and that the file is PEM (`-----BEGIN CERTIFICATE-----`)")
    };
    let iter = CertificateDer::pem_file_iter(path).map_err(|e| unreadable(&e))?;
    let chain = iter.collect::<Result<Vec<_>, _>>().map_err(|e| unreadable(&e))?;
    if chain.is_empty() {
        let message = format!("no certificate in {}", path.display());
        return Err(problem(which, message, "the file must hold at least one `-----BEGIN CERTIFICATE-----` block"));
    }
    if let Some(bad) = chain.iter().position(|der| x509_parser::certificate::X509Certificate::from_der(der).is_err()) {
        let message = format!("certificate {} in {} is not valid X.509", bad + 1, path.display());
        return Err(problem(which, message, "regenerate the certificate; the PEM block does not hold a DER certificate"));
    }
    Ok(chain)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, CertProblem> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| {
        let message = format!("cannot read a private key from {}: {e}", path.display());
        problem(Which::Key, message, "give a PEM private key: `BEGIN PRIVATE KEY` (PKCS#8), `BEGIN RSA PRIVATE KEY` (PKCS#1) or `BEGIN EC PRIVATE KEY` (SEC1)")
    })
}

/// The trust anchors for client certificates (mTLS).
pub fn load_ca(path: &Path) -> Result<Arc<RootCertStore>, CertProblem> {
    let mut store = RootCertStore::empty();
    for der in load_chain(path, Which::Cert)? {
        store.add(der).map_err(|e| {
            let message = format!("a certificate in {} cannot be a trust anchor: {e}", path.display());
            problem(Which::Cert, message, "`client_ca` must hold the CA certificate(s) that issued the client certificates")
        })?;
    }
    Ok(Arc::new(store))
}

/// The DNS names (lower-case) a certificate is issued for, from its subject
/// alternative names; wildcards such as `*.example.com` are kept as written.
pub fn dns_names(cert: &CertificateDer<'_>) -> Vec<String> {
    let Ok((_, parsed)) = x509_parser::certificate::X509Certificate::from_der(cert) else { return Vec::new() };
    let Ok(Some(san)) = parsed.subject_alternative_name() else { return Vec::new() };
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some(dns.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}
