//! The shared backend's [`Store`] over the host's services: the shared
//! state's `eval`, `get` and `compare_and_set` in the configured namespace
//! (`capabilities: { state: [ns] }` in the manifest), the host's timer, and
//! the wall clock (`SystemTime`, which every process of one host shares).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use covet_plugin_api::host::{Host, ServiceError, ServiceErrorKind, State, Value};

use crate::shared::{BoxFuture, Store, StoreError, UNSUPPORTED};

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
            let reply = self.state.eval(script, &keys, &args).await.map_err(eval_error)?;
            integers(&reply)
        })
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, StoreError>> {
        Box::pin(async move { self.state.get(key).await.map_err(store_error) })
    }

    fn compare_and_set<'a>(
        &'a self,
        key: &'a str,
        expected: Option<&'a [u8]>,
        new: Vec<u8>,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            self.state.compare_and_set(key, expected, Some(new), Some(ttl)).await.map_err(store_error)
        })
    }

    fn now_micros(&self) -> u64 {
        let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        u64::try_from(since_epoch.as_micros()).unwrap_or(u64::MAX)
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

/// `eval`'s errors: [`UNSUPPORTED`] when the state runs no scripts (the
/// limiter then switches to get + compare-and-set), else as [`store_error`].
fn eval_error(error: ServiceError) -> StoreError {
    match error.kind {
        ServiceErrorKind::Unsupported => StoreError { kind: UNSUPPORTED, message: error.message },
        _ => store_error(error),
    }
}

fn store_error(error: ServiceError) -> StoreError {
    let kind = match error.kind {
        ServiceErrorKind::Timeout => "timeout",
        ServiceErrorKind::Connect | ServiceErrorKind::Tls => "connect",
        // The manifest does not grant the namespace, or there are no host
        // services: the log line (the host's message) says which to fix.
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
    fn without_a_host_eval_is_unsupported_and_the_other_calls_misconfigured() {
        use covet_plugin_api::testing::block_on;
        let store = store(Host::unavailable(), "ratelimit");
        let keys = ["{k}".to_string()];
        assert_eq!(block_on(store.eval("return 1", &keys, &[])).unwrap_err().kind, UNSUPPORTED);
        assert_eq!(block_on(store.get("{k}")).unwrap_err().kind, "misconfigured");
        let swap = store.compare_and_set("{k}", None, b"1".to_vec(), Duration::from_secs(1));
        assert_eq!(block_on(swap).unwrap_err().kind, "misconfigured");
    }

    #[test]
    fn only_unsupported_eval_errors_switch_backends() {
        let unsupported = ServiceError::new(ServiceErrorKind::Unsupported, "eval (Lua scripts)");
        assert_eq!(eval_error(unsupported.clone()).kind, UNSUPPORTED);
        assert_eq!(store_error(unsupported).kind, "misconfigured", "get/CAS unsupported is a misconfiguration");
        assert_eq!(eval_error(ServiceError::new(ServiceErrorKind::Timeout, "slow")).kind, "timeout");
    }

    #[test]
    fn the_clock_is_wall_clock_microseconds() {
        let store = store(Host::unavailable(), "ratelimit");
        let before = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros() as u64;
        let now = store.now_micros();
        assert!(now >= before && now - before < 60_000_000, "{now} vs {before}");
    }
}
