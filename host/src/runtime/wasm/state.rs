//! The host side of `covet:plugin/state@0.2.0` (`plugin-api/wit/0.2.0/`):
//! shared state as a WIT import, over the plugin's
//! [`covet_services::state::StateHandle`] (the manifest's
//! `services.state` backend and the plugin's `capabilities.state`
//! namespaces).
//!
//! The imports are async on the host: while the backend answers (a Redis
//! round trip) the guest's fiber is suspended and the tokio worker runs
//! other work; no thread waits. Any component may import the interface: a
//! covet plugin (still exporting `covet:plugin/guest@0.1.0`) or a wasi:http
//! component. Components that do not import it are unaffected.

use std::time::Duration;

use covet_services::{ServiceError, state::Namespace};

use self::covet::plugin::state::{Error, ErrorKind, Host};
use super::sandbox::Ctx;

wasmtime::component::bindgen!({
    world: "covet:plugin/services",
    path: "../plugin-api/wit/0.2.0",
    imports: { default: async },
});


impl Host for Ctx {
    async fn get(&mut self, namespace: String, key: String) -> Result<Option<Vec<u8>>, Error> {
        let ns = self.granted(&namespace)?;
        ns.get(&key).await.map_err(wit_error)
    }

    async fn set(&mut self, namespace: String, key: String, value: Vec<u8>, ttl_ms: Option<u64>) -> Result<(), Error> {
        let ns = self.granted(&namespace)?;
        ns.set(&key, value, ttl_ms.map(Duration::from_millis)).await.map_err(wit_error)
    }

    async fn incr(&mut self, namespace: String, key: String, delta: i64, ttl_ms: Option<u64>) -> Result<i64, Error> {
        let ns = self.granted(&namespace)?;
        ns.incr(&key, delta, ttl_ms.map(Duration::from_millis)).await.map_err(wit_error)
    }

    async fn compare_and_set(
        &mut self,
        namespace: String,
        key: String,
        expected: Option<Vec<u8>>,
        replacement: Option<Vec<u8>>,
        ttl_ms: Option<u64>,
    ) -> Result<bool, Error> {
        let ns = self.granted(&namespace)?;
        let ttl = ttl_ms.map(Duration::from_millis);
        ns.compare_and_set(&key, expected.as_deref(), replacement, ttl).await.map_err(wit_error)
    }

    async fn delete(&mut self, namespace: String, key: String) -> Result<bool, Error> {
        let ns = self.granted(&namespace)?;
        ns.delete(&key).await.map_err(wit_error)
    }
}

impl Ctx {
    /// Namespace `ns` when the plugin was granted it; else a `denied` error
    /// naming it and the manifest key (logged too: it is a manifest problem).
    fn granted(&self, ns: &str) -> Result<Namespace, Error> {
        self.state().namespace(ns).map_err(|e| {
            tracing::warn!("{e}");
            wit_error(e)
        })
    }
}

/// The WIT error for a service error.
fn wit_error(error: ServiceError) -> Error {
    let kind = match &error {
        ServiceError::Denied { .. } => ErrorKind::Denied,
        ServiceError::Timeout { .. } => ErrorKind::Timeout,
        ServiceError::Connect { .. }
        | ServiceError::Tls(_)
        | ServiceError::ShutDown
        | ServiceError::Config(_)
        | ServiceError::Unavailable { .. }
        | ServiceError::Overloaded { .. } => ErrorKind::Unavailable,
        ServiceError::Backend(_) | ServiceError::Unsupported(_) | ServiceError::Http(_) => ErrorKind::Backend,
    };
    Error { kind, message: error.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_keep_their_kind_and_message() {
        let denied = ServiceError::Denied { plugin: "p".into(), what: "shared state namespace 'x'".into(), grant: "state" };
        let error = wit_error(denied);
        assert_eq!(error.kind, ErrorKind::Denied);
        assert!(error.message.contains("namespace 'x'") && error.message.contains("capabilities: { state"), "{}", error.message);
        let timeout = wit_error(ServiceError::Timeout { what: "redis INCR".into(), after: Duration::from_millis(50) });
        assert_eq!(timeout.kind, ErrorKind::Timeout);
        assert_eq!(wit_error(ServiceError::Backend("WRONGTYPE".into())).kind, ErrorKind::Backend);
    }
}
