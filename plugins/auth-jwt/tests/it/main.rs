//! Tests of the auth-jwt filter through its plugin interface, with real tokens
//! signed by jsonwebtoken using the shared fixture keys in `tests/fixtures/keys`.

mod attacks;
mod cache;
mod claims;
mod config;
mod families;
mod remote;
mod support;
