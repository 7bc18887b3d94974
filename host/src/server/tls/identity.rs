//! What a TLS (or QUIC) handshake established, as request metadata for
//! plugins: `tls.version`, `tls.alpn`, `tls.sni`, and for a client that
//! presented a verified certificate (mTLS) `tls.client.subject`,
//! `tls.client.issuer`, `tls.client.san` and `tls.client.fingerprint`.
//! Computed once per connection and copied into each request's metadata.

use http::HeaderValue;
use rustls::{ProtocolVersion, pki_types::CertificateDer};
use sha2::{Digest, Sha256};
use x509_parser::{extensions::GeneralName, prelude::FromDer};

/// The TLS facts of one connection.
#[derive(Debug, Default)]
pub struct ConnTls {
    /// `(key, value)` pairs set on every request's metadata.
    pub metadata: Vec<(&'static str, String)>,
    /// `Alt-Svc` to add to every response (listeners with `http3: true`).
    pub alt_svc: Option<HeaderValue>,
}

/// The handshake's outcome, from rustls or quinn.
pub struct Handshake<'a> {
    /// The negotiated version.
    pub version: Option<ProtocolVersion>,
    /// The negotiated ALPN protocol.
    pub alpn: Option<&'a [u8]>,
    /// The server name the client asked for.
    pub sni: Option<&'a str>,
    /// The client's verified chain (leaf first), when it sent one.
    pub peer: Option<&'a [CertificateDer<'static>]>,
}

impl ConnTls {
    /// The metadata of a connection with handshake `hs`.
    pub fn new(hs: Handshake<'_>, alt_svc: Option<HeaderValue>) -> ConnTls {
        let mut metadata = Vec::with_capacity(7);
        let version = match hs.version {
            Some(ProtocolVersion::TLSv1_3) => "1.3",
            Some(ProtocolVersion::TLSv1_2) => "1.2",
            _ => "unknown",
        };
        metadata.push(("tls.version", version.to_owned()));
        if let Some(alpn) = hs.alpn {
            metadata.push(("tls.alpn", String::from_utf8_lossy(alpn).into_owned()));
        }
        if let Some(sni) = hs.sni {
            metadata.push(("tls.sni", sni.to_owned()));
        }
        if let Some(leaf) = hs.peer.and_then(|chain| chain.first()) {
            client_identity(leaf, &mut metadata);
        }
        ConnTls { metadata, alt_svc }
    }
}

fn client_identity(leaf: &CertificateDer<'_>, out: &mut Vec<(&'static str, String)>) {
    let fingerprint = Sha256::digest(leaf.as_ref()).iter().map(|b| format!("{b:02x}")).collect::<String>();
    if let Ok((_, cert)) = x509_parser::certificate::X509Certificate::from_der(leaf) {
        out.push(("tls.client.subject", cert.subject().to_string()));
        out.push(("tls.client.issuer", cert.issuer().to_string()));
        let sans = cert.subject_alternative_name().ok().flatten().map(|san| {
            san.value.general_names.iter().filter_map(san_text).collect::<Vec<_>>().join(",")
        });
        if let Some(sans) = sans.filter(|s| !s.is_empty()) {
            out.push(("tls.client.san", sans));
        }
    }
    out.push(("tls.client.fingerprint", fingerprint));
}

/// `DNS:name`, `email:addr`, `URI:uri` or `IP:addr`; other kinds are skipped.
fn san_text(name: &GeneralName<'_>) -> Option<String> {
    match name {
        GeneralName::DNSName(dns) => Some(format!("DNS:{dns}")),
        GeneralName::RFC822Name(mail) => Some(format!("email:{mail}")),
        GeneralName::URI(uri) => Some(format!("URI:{uri}")),
        GeneralName::IPAddress(bytes) => ip_text(bytes).map(|ip| format!("IP:{ip}")),
        _ => None,
    }
}

fn ip_text(bytes: &[u8]) -> Option<std::net::IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(std::net::IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(std::net::IpAddr::from),
        _ => None,
    }
}
