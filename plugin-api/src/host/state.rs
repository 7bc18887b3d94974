//! Shared state for plugin authors: [`State`], one namespace of the host's
//! key-value store (in process or Redis, as the manifest chooses), and
//! [`Value`], what a Lua script returns.

use std::time::Duration;

use abi_stable::std_types::{ROption, RString, RVec};

use super::{Host, ServiceError, ServiceErrorKind, result, ttl_ms};

/// One shared state namespace (granted by `capabilities.state`). Operations
/// are atomic per key; values are bytes, counters decimal text.
#[derive(Clone, Debug)]
pub struct State {
    host: Host,
    ns: String,
}

impl State {
    pub(super) fn new(host: Host, ns: &str) -> State {
        State { host, ns: ns.to_owned() }
    }

    fn ns(&self) -> RString {
        RString::from(self.ns.as_str())
    }

    /// The value of `key`, `None` when absent or expired.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, ServiceError> {
        let value = result(self.host.ops()?.state_get(self.ns(), key.into()).await)?;
        Ok(value.into_option().map(RVec::into_vec))
    }

    /// Stores `value` (replacing value and TTL); `ttl` `None`: no expiry.
    pub async fn set(&self, key: &str, value: impl Into<Vec<u8>>, ttl: Option<Duration>) -> Result<(), ServiceError> {
        result(self.host.ops()?.state_set(self.ns(), key.into(), RVec::from(value.into()), ttl_ms(ttl)).await)
    }

    /// Adds `delta` to the counter at `key` (absent: 0) and returns the new
    /// value; `ttl` applies only when this call creates the key.
    pub async fn incr(&self, key: &str, delta: i64, ttl: Option<Duration>) -> Result<i64, ServiceError> {
        result(self.host.ops()?.state_incr(self.ns(), key.into(), delta, ttl_ms(ttl)).await)
    }

    /// Sets `key` to `new` (`None`: deletes it) only if its value is
    /// `expected` (`None`: absent); returns whether it did.
    pub async fn compare_and_set(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: Option<Vec<u8>>,
        ttl: Option<Duration>,
    ) -> Result<bool, ServiceError> {
        let expected: ROption<RVec<u8>> = expected.map(|e| RVec::from(e.to_vec())).into();
        let new: ROption<RVec<u8>> = new.map(RVec::from).into();
        result(self.host.ops()?.state_cas(self.ns(), key.into(), expected, new, ttl_ms(ttl)).await)
    }

    /// Removes `key`; returns whether it existed.
    pub async fn delete(&self, key: &str) -> Result<bool, ServiceError> {
        result(self.host.ops()?.state_delete(self.ns(), key.into()).await)
    }

    /// Runs Lua `script` atomically (Redis backend only; the in-process
    /// backend fails with `Unsupported`). `keys` are namespaced like the other
    /// operations' keys.
    pub async fn eval(&self, script: &str, keys: &[&str], args: &[&str]) -> Result<Value, ServiceError> {
        let keys = keys.iter().map(|k| RString::from(*k)).collect();
        let args = args.iter().map(|a| RString::from(*a)).collect();
        let json = result(self.host.ops()?.state_eval(self.ns(), script.into(), keys, args).await)?;
        let value: serde_json::Value = serde_json::from_str(&json)
            .map_err(|e| ServiceError::new(ServiceErrorKind::Backend, format!("script reply: {e}")))?;
        Ok(Value::from_json(value))
    }
}

/// A script's reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// `nil` / `false`.
    Nil,
    /// An integer.
    Int(i64),
    /// A string or status reply.
    Bytes(Vec<u8>),
    /// A table.
    Array(Vec<Value>),
}

impl Value {
    /// The FFI encoding: JSON `null`, a number, a string (UTF-8 bytes),
    /// `{"bytes": [..]}` (other bytes) or an array.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Nil => serde_json::Value::Null,
            Value::Int(i) => (*i).into(),
            Value::Bytes(b) => match std::str::from_utf8(b) {
                Ok(text) => text.into(),
                Err(_) => serde_json::json!({ "bytes": b }),
            },
            Value::Array(items) => items.iter().map(Value::to_json).collect(),
        }
    }

    /// Decodes [`Value::to_json`]'s encoding.
    pub fn from_json(json: serde_json::Value) -> Value {
        match json {
            serde_json::Value::Number(n) => Value::Int(n.as_i64().unwrap_or_default()),
            serde_json::Value::String(s) => Value::Bytes(s.into_bytes()),
            serde_json::Value::Array(items) => Value::Array(items.into_iter().map(Value::from_json).collect()),
            serde_json::Value::Object(o) => {
                let bytes = o.get("bytes").and_then(|b| serde_json::from_value(b.clone()).ok()).unwrap_or_default();
                Value::Bytes(bytes)
            }
            serde_json::Value::Null | serde_json::Value::Bool(_) => Value::Nil,
        }
    }

    /// The integer, if this is one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Value;

    #[test]
    fn values_survive_the_json_encoding() {
        let value = Value::Array(vec![Value::Nil, Value::Int(-3), Value::Bytes(b"ok".to_vec()), Value::Bytes(vec![0xff, 0])]);
        assert_eq!(Value::from_json(value.to_json()), value);
    }
}
