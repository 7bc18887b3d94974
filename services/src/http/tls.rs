//! The outbound TLS configuration: rustls on aws-lc-rs with the system's
//! roots (rustls-native-certs) and the Mozilla roots (webpki-roots) both
//! trusted, plus an optional extra CA bundle and an optional client
//! certificate for mTLS.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use crate::ServiceError;

/// A client certificate and its private key, both PEM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCert {
    /// The certificate chain, leaf first (PEM).
    pub cert_pem: Vec<u8>,
    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_pem: Vec<u8>,
}

/// The rustls client configuration for outbound HTTPS (ALPN is set by the connector).
pub fn client_config(extra_ca_pem: Option<&[u8]>, client_cert: Option<&ClientCert>) -> Result<ClientConfig, ServiceError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServiceError::Tls(e.to_string()))?
        .with_root_certificates(roots(extra_ca_pem)?);
    match client_cert {
        None => Ok(builder.with_no_client_auth()),
        Some(cc) => {
            let chain = parse_certs(&cc.cert_pem, "client certificate")?;
            let key = PrivateKeyDer::from_pem_slice(&cc.key_pem)
                .map_err(|e| ServiceError::Config(format!("client certificate key: {e}")))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| ServiceError::Tls(format!("client certificate: {e}")))
        }
    }
}

fn roots(extra_ca_pem: Option<&[u8]>) -> Result<RootCertStore, ServiceError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let native = rustls_native_certs::load_native_certs();
    if !native.errors.is_empty() {
        tracing::debug!(errors = ?native.errors, "some system root certificates could not be loaded");
    }
    roots.add_parsable_certificates(native.certs);
    if let Some(pem) = extra_ca_pem {
        for cert in parse_certs(pem, "CA bundle")? {
            roots.add(cert).map_err(|e| ServiceError::Config(format!("CA bundle: {e}")))?;
        }
    }
    Ok(roots)
}

fn parse_certs(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, ServiceError> {
    let certs = CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>();
    let certs = certs.map_err(|e| ServiceError::Config(format!("{what}: {e}")))?;
    if certs.is_empty() {
        return Err(ServiceError::Config(format!("{what}: no PEM certificate found")));
    }
    Ok(certs)
}
