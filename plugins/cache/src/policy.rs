//! Freshness and revalidation facts of a stored response (RFC 9111 §4.2):
//! what the core reads to decide fresh, stale-servable or must-revalidate.
//! Opaque to the store, which only serialises it for the shared tier.
//! (Owned by the core; this is the placeholder the contract commit ships.)

use serde::{Deserialize, Serialize};

/// What the core keeps about a stored response to judge its freshness.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Policy {}
