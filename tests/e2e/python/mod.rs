//! Python plugins end to end: the real binary with `kind: python` plugins.
//!
//! - [`decorator`]: decorator apps (`covet.Covet`): typed parameters, 422s,
//!   HTTPException, JSON bodies, sync and async handlers, faults;
//! - [`filters`]: Python filters in chains with native and WASM plugins;
//! - [`asgi`]: ASGI apps;
//! - [`asgi_stream`]: ASGI request bodies streamed through `receive`;
//! - [`fastapi_diff`]: the FastAPI example under covet and under uvicorn;
//! - [`asgi_diff`]: Starlette and Django apps under covet and under uvicorn,
//!   back-pressure on streamed responses, clients that leave;
//! - [`event_loop`]: the asyncio loop on I/O worker 0, driven by the host;
//! - [`faults`]: failures of Python plugins and the runtime;
//! - [`swap`]: hot swap of Python plugins;
//! - [`services`]: host services (`covet.sleep`, `covet.http`, `covet.state`,
//!   background tasks) from a decorator app;
//! - [`tracing`]: `covet.trace` from a filter, a decorator app, an ASGI app
//!   and a FastAPI app.

mod asgi;
mod asgi_diff;
mod asgi_stream;
mod covetpy;
mod decorator;
mod event_loop;
mod fastapi_diff;
mod faults;
mod filters;
mod services;
mod swap;
mod tracing;
mod uvicorn;
