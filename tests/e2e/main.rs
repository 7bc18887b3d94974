//! End-to-end tests: each test starts the real `covet` binary on port 0 with
//! real plugin libraries (see `harness/`), talks HTTP to it and stops it.
//! One file per area; build everything first with `cargo build --workspace`.

mod common;
mod tokens;

mod access_log;
mod admin;
mod async_native;
mod background;
mod cache_purge_admin;
mod authority;
mod cache;
mod auth_jwt;
mod auth_jwks;
mod chain;
mod example_plugin;
mod cli;
mod fleet;
mod deploy;
mod connections;
mod control_cli;
mod faults;
mod fault_matrix;
mod head;
mod io_uring;
mod lifecycle;
mod malformed;
mod limits;
mod lingering;
mod plugins;
mod proxy;
mod rate_limit_redis;
mod services_native;
mod python;
mod routing;
mod reload;
mod swap;
mod swap_load;
mod proxy_tunnels;
mod wasm;
mod telemetry;
mod tls;
mod trailers;
mod upgrade;
mod workers;
mod park;
mod upstreams_admin;
mod h3;
mod half_close;
mod web_cors;
mod web_security_headers;
mod web_compress;
mod graphql;
mod graphql_limits;
mod h2_attacks;
mod slow_clients;
