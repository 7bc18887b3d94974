//! Test certificates, generated with rcgen when a test runs (no key is
//! committed): a CA, and server or client certificates it issues, as PEM
//! text ready to write next to a manifest, plus rustls client configs.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::{
    ClientConfig, RootCertStore, SupportedProtocolVersion,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
};

/// A certificate authority.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate with its key.
pub struct Leaf {
    /// The certificate (PEM).
    pub cert_pem: String,
    /// Its private key (PEM, PKCS#8).
    pub key_pem: String,
    /// The certificate (DER), to compare with what a peer presented.
    pub der: CertificateDer<'static>,
}

impl Ca {
    /// A new self-signed CA named `name`.
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().expect("CA key");
        Ca { issuer: CertifiedIssuer::self_signed(params, key).expect("CA certificate") }
    }

    /// The CA certificate (PEM).
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server certificate for `names` (DNS names or IP addresses).
    pub fn server(&self, names: &[&str]) -> Leaf {
        self.issue(names, names.first().copied().unwrap_or("server"), ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate with common name `cn`.
    pub fn client(&self, cn: &str) -> Leaf {
        self.issue(&[&format!("{cn}.clients.test")], cn, ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn issue(&self, names: &[&str], cn: &str, usage: ExtendedKeyUsagePurpose) -> Leaf {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign leaf");
        Leaf { cert_pem: cert.pem(), key_pem: key.serialize_pem(), der: cert.der().clone() }
    }

    /// Trust anchors holding this CA.
    pub fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(self.issuer.der().clone()).expect("CA as root");
        roots
    }

    /// A client config trusting this CA, offering `alpn`, limited to `versions`,
    /// presenting `identity` when given.
    pub fn client_config(
        &self,
        alpn: &[&[u8]],
        versions: &[&'static SupportedProtocolVersion],
        identity: Option<&Leaf>,
    ) -> Arc<ClientConfig> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .expect("versions")
            .with_root_certificates(self.roots());
        let mut config = match identity {
            Some(leaf) => {
                let chain = vec![leaf.der.clone()];
                let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).expect("client key");
                builder.with_client_auth_cert(chain, key).expect("client cert")
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}
