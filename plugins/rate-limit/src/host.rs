//! The Redis backend's [`Store`] over the host's services: the shared
//! state's `eval` in the configured namespace (`capabilities: { state: [ns] }`
//! in the manifest; `services.state.backend: redis`), and the host's timer.

use std::time::Duration;

use covet_plugin_api::host::{Host, ServiceError, ServiceErrorKind, State, Value};

use crate::shared::{BoxFuture, Store, StoreError};

/// The shared state namespace `namespace` of `host`, as the limiter's store.
pub(crate) fn store(host: Host, namespace: &str) -> Box<dyn Store> {
    Box::new(HostStore { state: host.state(namespace), host })
}

struct HostStore {
    host: Host,
    state: State,
}

impl Store for HostStore {
    fn eval<'a>(
        &'a self,
        script: &'static str,
        keys: &'a [String],
        args: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<i64>, StoreError>> {
        Box::pin(async move {
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let reply = self.state.eval(script, &keys, &args).await.map_err(store_error)?;
            integers(&reply)
        })
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        let host = self.host.clone();
        Box::pin(async move {
            // A sleep that fails (the instance is shutting down) ends the wait at once.
            let _ = host.sleep(duration).await;
        })
    }
}

/// The script's reply as integers, or a `reply` error naming what came back.
fn integers(reply: &Value) -> Result<Vec<i64>, StoreError> {
    let not_integers = || StoreError { kind: "reply", message: format!("the rate-limit script answered {reply:?}") };
    match reply {
        Value::Array(items) => items.iter().map(|v| v.as_int().ok_or_else(not_integers)).collect(),
        _ => Err(not_integers()),
    }
}

fn store_error(error: ServiceError) -> StoreError {
    let kind = match error.kind {
        ServiceErrorKind::Timeout => "timeout",
        ServiceErrorKind::Connect | ServiceErrorKind::Tls => "connect",
        // The manifest does not grant the namespace, or the host's state is
        // not Redis: the log line (the host's message) says which to fix.
        ServiceErrorKind::Denied | ServiceErrorKind::Unsupported | ServiceErrorKind::Config => "misconfigured",
        ServiceErrorKind::ShutDown => "shut_down",
        _ => "backend",
    };
    StoreError { kind, message: error.message }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_must_be_lists_of_integers() {
        assert_eq!(integers(&Value::Array(vec![Value::Int(1), Value::Int(4), Value::Int(0)])), Ok(vec![1, 4, 0]));
        let err = integers(&Value::Bytes(b"OK".to_vec())).unwrap_err();
        assert_eq!(err.kind, "reply");
        assert!(integers(&Value::Array(vec![Value::Nil])).is_err());
    }

    #[test]
    fn without_a_host_every_check_fails_as_misconfigured() {
        let store = store(Host::unavailable(), "ratelimit");
        let keys = ["{k}".to_string()];
        let err = covet_plugin_api::testing::block_on(store.eval("return 1", &keys, &[])).unwrap_err();
        assert_eq!(err.kind, "misconfigured");
    }
}
