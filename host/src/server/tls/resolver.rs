//! Picks the certificate for a handshake by the server name the client sent
//! (SNI). The certificate set sits behind an [`ArcSwap`], so a reload
//! ([`super::reload`]) swaps it for new handshakes while connections already
//! open keep theirs.

use std::{collections::HashMap, fmt, sync::Arc};

use arc_swap::ArcSwap;
use rustls::{
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};

use super::certs::{self, CertProblem};
use crate::manifest::TlsSettings;

/// A listener's certificates, loaded.
pub struct CertSet {
    default: Arc<CertifiedKey>,
    /// Exact names, lower-case.
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `*.example.com` entries as `.example.com`, matching one label.
    wildcard: Vec<(String, Arc<CertifiedKey>)>,
}

impl CertSet {
    /// Reads every certificate and key `settings` names.
    pub fn load(settings: &TlsSettings) -> Result<CertSet, CertProblem> {
        let default = certs::load_pair(&settings.default.cert, &settings.default.key)?;
        let mut set = CertSet { default, exact: HashMap::new(), wildcard: Vec::new() };
        for sni in &settings.sni {
            let key = certs::load_pair(&sni.files.cert, &sni.files.key)?;
            let names = if sni.names.is_empty() { certs::dns_names(&key.cert[0]) } else { sni.names.clone() };
            for name in names {
                match name.strip_prefix('*') {
                    Some(suffix) => set.wildcard.push((suffix.to_owned(), key.clone())),
                    None => {
                        set.exact.entry(name).or_insert_with(|| key.clone());
                    }
                }
            }
        }
        Ok(set)
    }

    /// The certificate for `name`: an exact SNI entry, a wildcard one, else the default.
    fn pick(&self, name: Option<&str>) -> Arc<CertifiedKey> {
        let Some(name) = name.map(str::to_ascii_lowercase) else { return self.default.clone() };
        if let Some(key) = self.exact.get(&name) {
            return key.clone();
        }
        let found = self.wildcard.iter().find(|(suffix, _)| wildcard_matches(&name, suffix));
        found.map_or_else(|| self.default.clone(), |(_, key)| key.clone())
    }
}

/// Whether `name` is one label followed by `suffix` (`.example.com` from
/// `*.example.com`): `a.example.com` is, `example.com` and `a.b.example.com` are not.
fn wildcard_matches(name: &str, suffix: &str) -> bool {
    name.strip_suffix(suffix).is_some_and(|head| !head.is_empty() && !head.contains('.'))
}

/// The rustls certificate resolver of one listener (TCP and QUIC share it).
pub struct Resolver {
    current: ArcSwap<CertSet>,
}

impl Resolver {
    /// A resolver serving `set`.
    pub fn new(set: CertSet) -> Resolver {
        Resolver { current: ArcSwap::from_pointee(set) }
    }

    /// Serves `set` to every handshake from now on.
    pub fn replace(&self, set: CertSet) {
        self.current.store(Arc::new(set));
    }
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver").field("names", &self.current.load().exact.len()).finish()
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load().pick(hello.server_name()))
    }
}

#[cfg(test)]
mod tests {
    use super::wildcard_matches;

    #[test]
    fn a_wildcard_covers_exactly_one_label() {
        assert!(wildcard_matches("api.example.com", ".example.com"));
        assert!(!wildcard_matches("example.com", ".example.com"));
        assert!(!wildcard_matches("a.api.example.com", ".example.com"));
        assert!(!wildcard_matches("api.example.org", ".example.com"));
    }
}
