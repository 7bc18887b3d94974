//! Benchmark fixture: the no-op plugin of `fixtures/noop` without Rust's
//! std. As a filter its `on-request` continues; as a handler it answers
//! `200 ok`. With no std there is no WASI in the component: no stdio, no
//! environment, no exit, so a fresh instance links two imports instead of
//! twenty. A panic traps (`unreachable`), which the host reports as a 500.

#![no_std]

extern crate alloc;

use alloc::{string::String, vec::Vec};

#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}

/// The canonical ABI's allocator (std provides it on wasm32-wasip2; a
/// no_std guest must).
///
/// # Safety
/// Called by the host only, with the canonical ABI's arguments.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cabi_realloc(old: *mut u8, old_len: usize, align: usize, new_len: usize) -> *mut u8 {
    use alloc::alloc::{Layout, alloc, realloc};
    if new_len == 0 {
        return align as *mut u8;
    }
    // SAFETY: the canonical ABI passes a valid alignment and, for a
    // reallocation, a block this allocator returned with `old_len` bytes.
    unsafe {
        if old_len == 0 {
            alloc(Layout::from_size_align_unchecked(new_len, align))
        } else {
            realloc(old, Layout::from_size_align_unchecked(old_len, align), new_len)
        }
    }
}

wit_bindgen::generate!({ world: "covet:plugin/plugin", path: "../../plugin-api/wit" });

use covet::plugin::types::{Descriptor, Flow, OutgoingResponse, Phases, Request, Response};

struct Lean;

impl exports::covet::plugin::guest::Guest for Lean {
    fn describe() -> Descriptor {
        Descriptor { name: String::from("covet-wasm-noop-lean"), version: String::from("0.1.0"), phases: Phases::ON_REQUEST | Phases::HANDLE }
    }

    fn init(_config: String, _instance: String) -> Result<(), String> {
        Ok(())
    }

    fn on_request(_req: &Request) -> Flow {
        Flow::Continue
    }

    fn handle(_req: &Request) -> Response {
        Response { status: 200, headers: Vec::new(), body: Vec::from(&b"ok"[..]) }
    }

    fn on_response(_req: &Request, _resp: &OutgoingResponse) {}
}

export!(Lean);
