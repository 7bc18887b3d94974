//! A native filter that does nothing: `on_request` continues at once and
//! no other phase is declared. `bench/instructions.sh` puts it in front of
//! the static route; the difference is what the host spends on one filter
//! call (the FFI call, the timing and counters, the chain step), with no
//! plugin work mixed in.

use covet_plugin_api::{Config, Flow, Phases, Plugin, Request, export_plugin};

/// The plugin: no state.
pub struct NoopFilter;

impl Plugin for NoopFilter {
    const PHASES: Phases = Phases::ON_REQUEST;

    fn init(_: Config<'_>) -> Result<Self, String> {
        Ok(NoopFilter)
    }

    fn on_request(&self, _: &mut Request<'_>) -> Flow {
        Flow::Continue
    }
}

export_plugin!(NoopFilter);
