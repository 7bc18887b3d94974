//! The Redis backend's [`Store`] over the host's services: the shared
//! state's `eval` in the configured namespace, and the host's timer.

use covet_plugin_api::Config;

use crate::{config::Policy, shared::Store};

/// The store of `backend: redis`, from the host services handed to `init`.
///
/// The host-services API of plugin-api (`config.host()`, `host.state(ns)`,
/// `eval`, `host.sleep`) is not in this plugin-api yet, so the Redis backend
/// is refused with a message saying so.
pub(crate) fn store(config: &Config<'_>, policy: &Policy) -> Result<Box<dyn Store>, String> {
    let namespace = policy.redis.as_ref().map_or("ratelimit", |r| r.namespace.as_str());
    Err(format!(
        "rate-limit `{}`: `backend: redis` needs the host's shared state service (namespace `{namespace}`), \
         which covet-plugin-api {} does not offer; use `backend: memory`",
        config.instance(),
        covet_plugin_api::ffi::ABI_VERSION
    ))
}
