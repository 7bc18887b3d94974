//! # covet-cache
//!
//! An RFC 9111 HTTP cache as a covet filter, in front of any handler.
//! (Contract commit: the modules the core and the store share.)
#![deny(missing_docs)]

pub mod policy;
pub mod store;
