//! The `tls:` and `http3:` keys of a listener, as written ([`RawTls`]) and as
//! checked ([`TlsSettings`]).
//!
//! ```yaml
//! listen:
//!   - addr: 0.0.0.0:8443
//!     tls:
//!       cert: certs/site.pem          # PEM chain, relative to the manifest
//!       key: certs/site.key           # PEM key (PKCS#8, PKCS#1 or SEC1)
//!       sni:                          # more certificates, chosen by server name
//!         - { cert: certs/other.pem, key: certs/other.key }   # names from the SANs, or `names: [..]`
//!       client_ca: certs/ca.pem       # mTLS: client certificates must chain to this CA
//!       client_auth: required         # or `optional` (default: required when client_ca is set)
//!       min_version: "1.2"            # or "1.3"
//!     http3: true                     # also HTTP/3 over QUIC on UDP, same port
//! ```
//!
//! Every file is read and checked here (certificate and key parse and belong
//! together), so `covet check` reports a broken PEM at the line naming it.

use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::Loc;
use super::validate::Problems;
use crate::server::tls::certs::{self, Which};

/// A listener's TLS settings as written.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Tls")]
pub struct RawTls {
    /// The default certificate chain (PEM, leaf first), relative to the manifest's directory; served for unknown or absent server names.
    #[schemars(with = "String")]
    pub cert: Spanned<String>,
    /// The private key of `cert` (PEM: PKCS#8, PKCS#1 or SEC1).
    #[schemars(with = "String")]
    pub key: Spanned<String>,
    /// More certificates, chosen by the server name (SNI) the client asks for.
    #[serde(default)]
    #[schemars(with = "Vec<RawSniCert>")]
    pub sni: Vec<Spanned<RawSniCert>>,
    /// A PEM bundle of CA certificates; turns on client certificate authentication (mTLS).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub client_ca: Option<Spanned<String>>,
    /// `required` (default with `client_ca`) or `optional` (a client without a certificate is let in; one with a bad certificate is not).
    #[serde(default)]
    #[schemars(with = "Option<ClientAuth>")]
    pub client_auth: Option<Spanned<ClientAuth>>,
    /// The oldest TLS version accepted: `"1.2"` (default) or `"1.3"`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub min_version: Option<Spanned<String>>,
}

/// One extra certificate for SNI.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "SniCert")]
pub struct RawSniCert {
    /// The certificate chain (PEM).
    #[schemars(with = "String")]
    pub cert: Spanned<String>,
    /// Its private key (PEM).
    #[schemars(with = "String")]
    pub key: Spanned<String>,
    /// The server names it answers; default: the certificate's DNS subject alternative names.
    #[serde(default)]
    pub names: Option<Vec<String>>,
}

/// Whether a client certificate is demanded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// A client must present a certificate issued by `client_ca`.
    #[default]
    Required,
    /// A client may present one; if it does, it must be valid.
    Optional,
}

/// The oldest TLS version a listener accepts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TlsVersion {
    /// TLS 1.2 and 1.3.
    #[default]
    V1_2,
    /// TLS 1.3 only.
    V1_3,
}

/// A certificate chain and its key, as absolute paths.
#[derive(Clone, Debug, PartialEq)]
pub struct CertFiles {
    /// The PEM chain.
    pub cert: PathBuf,
    /// The PEM key.
    pub key: PathBuf,
}

/// An SNI certificate and the names it answers (lower-case; empty: its SANs).
#[derive(Clone, Debug, PartialEq)]
pub struct SniCert {
    /// Its files.
    pub files: CertFiles,
    /// Names given in the manifest; empty means the certificate's DNS SANs.
    pub names: Vec<String>,
}

/// A listener's TLS settings, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct TlsSettings {
    /// The default certificate.
    pub default: CertFiles,
    /// Certificates chosen by server name.
    pub sni: Vec<SniCert>,
    /// The client CA bundle (mTLS), if any.
    pub client_ca: Option<PathBuf>,
    /// Whether a client certificate is required (only with `client_ca`).
    pub client_auth: ClientAuth,
    /// The oldest accepted version.
    pub min_version: TlsVersion,
}

/// Checks a listener's `tls:` (reading every file) and its `http3:` flag.
pub fn check(base: &Path, raw: Option<&Spanned<RawTls>>, http3: Option<&Spanned<bool>>, key: &str, problems: &mut Problems) -> Option<TlsSettings> {
    if let Some(flag) = http3.filter(|f| f.value && raw.is_none()) {
        let help = "HTTP/3 runs over QUIC, which is always encrypted: add `tls: { cert: .., key: .. }` to this listener, or remove `http3`";
        problems.report(Loc::of(flag), format!("{key}.http3"), "`http3: true` needs `tls` on the same listener".to_owned(), Some(help.to_owned()));
    }
    let raw = &raw?.value;
    let key = format!("{key}.tls");
    let default = pair(base, &raw.cert, &raw.key, &key, problems);
    let sni = raw.sni.iter().enumerate().map(|(i, entry)| sni_cert(base, entry, &format!("{key}.sni[{i}]"), problems)).collect();
    let client_ca = raw.client_ca.as_ref().map(|ca| {
        let path = base.join(&ca.value);
        if let Err(p) = certs::load_ca(&path) {
            problems.report(Loc::of(ca), format!("{key}.client_ca"), p.message, Some(p.help));
        }
        path
    });
    if let (Some(auth), None) = (&raw.client_auth, &client_ca) {
        let help = "add `client_ca: <CA bundle>` to check client certificates, or remove `client_auth`";
        problems.report(Loc::of(auth), format!("{key}.client_auth"), "`client_auth` without `client_ca`".to_owned(), Some(help.to_owned()));
    }
    Some(TlsSettings {
        default,
        sni,
        client_ca,
        client_auth: raw.client_auth.as_ref().map(|a| a.value).unwrap_or_default(),
        min_version: min_version(raw.min_version.as_ref(), &key, problems),
    })
}

fn min_version(raw: Option<&Spanned<String>>, key: &str, problems: &mut Problems) -> TlsVersion {
    match raw.map(|v| (v, v.value.trim())) {
        None | Some((_, "1.2")) => TlsVersion::V1_2,
        Some((_, "1.3")) => TlsVersion::V1_3,
        Some((v, other)) => {
            let help = "write \"1.2\" (TLS 1.2 and 1.3) or \"1.3\" (TLS 1.3 only), quoted";
            problems.report(Loc::of(v), format!("{key}.min_version"), format!("unknown TLS version \"{other}\""), Some(help.to_owned()));
            TlsVersion::V1_2
        }
    }
}

fn sni_cert(base: &Path, raw: &Spanned<RawSniCert>, key: &str, problems: &mut Problems) -> SniCert {
    let files = pair(base, &raw.value.cert, &raw.value.key, key, problems);
    let names: Vec<String> = raw.value.names.iter().flatten().map(|n| n.trim().to_ascii_lowercase()).collect();
    if names.is_empty() {
        let from_san = certs::load_chain(&files.cert, Which::Cert).ok().and_then(|c| c.first().map(certs::dns_names));
        if from_san.is_some_and(|n| n.is_empty()) {
            let help = "list the server names it answers: `names: [example.com]`, or use a certificate with DNS subject alternative names";
            problems.report(Loc::of(raw), key.to_owned(), "the SNI certificate has no DNS names".to_owned(), Some(help.to_owned()));
        }
    }
    SniCert { files, names }
}

fn pair(base: &Path, cert: &Spanned<String>, key_path: &Spanned<String>, key: &str, problems: &mut Problems) -> CertFiles {
    let files = CertFiles { cert: base.join(&cert.value), key: base.join(&key_path.value) };
    if let Err(p) = certs::load_pair(&files.cert, &files.key) {
        let (at, field) = match p.which {
            Which::Cert => (cert, "cert"),
            Which::Key => (key_path, "key"),
        };
        problems.report(Loc::of(at), format!("{key}.{field}"), p.message, Some(p.help));
    }
    files
}
