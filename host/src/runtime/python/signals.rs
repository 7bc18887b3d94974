//! Keeps WASM traps working when Python installs fault handlers.
//!
//! wasmtime turns a guest's trap (an out-of-bounds access, a stack
//! overflow, an illegal instruction) into an error by catching SIGSEGV,
//! SIGBUS, SIGILL and SIGFPE in its own handlers, which must run first.
//! Python's `faulthandler` (`PYTHONFAULTHANDLER=1`, or a plugin calling
//! `faulthandler.enable()` when it is imported) installs handlers for the
//! same signals on top of them; on a trap it dumps the Python stacks and
//! re-raises the signal from its own frame, where wasmtime no longer
//! recognises it as a guest's: the host dies by SIGILL instead of
//! answering 500 (tests/e2e/fault_matrix/fatal.rs).
//!
//! So the interpreter's start and every Python plugin's load run inside
//! [`keep_wasm_traps`]: a handler wasmtime had installed for one of those
//! signals before is put back on top afterwards. Python's handler stays
//! for SIGABRT (which wasmtime does not use), so an abort still names the
//! Python line. A fault outside any guest then goes to what wasmtime saw
//! before it (the default action: the process dies, as it would have).
//! When wasmtime starts after Python it installs its handlers on top by
//! itself, and nothing needs doing.

/// The signals wasmtime handles for traps.
const TRAP_SIGNALS: [libc::c_int; 4] = [libc::SIGSEGV, libc::SIGBUS, libc::SIGILL, libc::SIGFPE];

/// Runs `f` (which may start Python or import a plugin's code), then puts
/// back the trap handlers that were installed before it, where `f`
/// replaced them.
pub fn keep_wasm_traps<T>(f: impl FnOnce() -> T) -> T {
    let before = TRAP_SIGNALS.map(current);
    let out = f();
    for (signal, before) in TRAP_SIGNALS.into_iter().zip(before) {
        let Some(before) = before.filter(is_installed) else { continue };
        let Some(now) = current(signal) else { continue };
        if now.sa_sigaction != before.sa_sigaction {
            // SAFETY: `before` is a complete sigaction read from the kernel
            // for this signal; installing it again restores that handler.
            unsafe { libc::sigaction(signal, &before, std::ptr::null_mut()) };
            tracing::debug!(target: "covet::python", signal, "a fault handler Python installed was moved under wasmtime's");
        }
    }
    out
}

/// The handler installed for `signal` now.
fn current(signal: libc::c_int) -> Option<libc::sigaction> {
    // SAFETY: a zeroed sigaction is a valid out-parameter; a null `act`
    // only reads the current disposition.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::sigaction(signal, std::ptr::null(), &mut action) } == 0;
    ok.then_some(action)
}

/// Whether `action` is a handler (not the default action or ignore).
fn is_installed(action: &libc::sigaction) -> bool {
    action.sa_sigaction != libc::SIG_DFL && action.sa_sigaction != libc::SIG_IGN
}

#[cfg(test)]
mod tests {
    use super::*;

    extern "C" fn first(_: libc::c_int) {}
    extern "C" fn second(_: libc::c_int) {}

    fn install(signal: libc::c_int, handler: extern "C" fn(libc::c_int)) {
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = handler as usize;
        unsafe { libc::sigaction(signal, &action, std::ptr::null_mut()) };
    }

    #[test]
    fn a_handler_replaced_inside_is_put_back_and_a_default_is_left_alone() {
        // SIGFPE only: nothing else in the test process handles it.
        install(libc::SIGFPE, first);
        keep_wasm_traps(|| install(libc::SIGFPE, second));
        assert_eq!(current(libc::SIGFPE).unwrap().sa_sigaction, first as *const () as usize, "the earlier handler is back on top");
        unsafe { libc::signal(libc::SIGFPE, libc::SIG_DFL) };
        keep_wasm_traps(|| install(libc::SIGFPE, second));
        assert_eq!(current(libc::SIGFPE).unwrap().sa_sigaction, second as *const () as usize, "over the default, the new one stays");
        unsafe { libc::signal(libc::SIGFPE, libc::SIG_DFL) };
    }
}
