//! Pre-initialised instances: a covet plugin's `init` runs once per
//! manifest entry, after its load or swap (on a thread of its own, see
//! `WasmComponent::pre_initialise`), and the memory and globals it leaves
//! are snapshotted (wasmtime-wizer) into a new component from which every
//! fresh instance then starts. A fresh call skips `init` (its config
//! parsing, its allocations, the memory they dirty) and starts from the
//! initialised heap, mapped copy-on-write from the snapshot's memory image.
//!
//! What the snapshot keeps is what lives in the guest: linear memory and
//! globals. What it cannot keep refuses it, and the plugin then runs `init`
//! in every fresh instance as before (the reason is logged): a component
//! wizer cannot take apart (nested components, a module instantiated twice,
//! table mutations), or an `init` that leaves a host resource open (a
//! stream, an outbound request), which a new instance would not have.
//! Randomness `init` drew is in the snapshot too: every instance starts
//! with the same (docs/wasm.md, "Instances").

use std::time::Instant;

use wasmtime::component::{Component, ComponentExportIndex, Instance, Lift, Linker, WasmList};
use wasmtime::{Engine, Store};
use wasmtime_wizer::{ComponentInstanceState, Wizer};

use super::{GUEST_EXPORT, bindings::PluginPre, sandbox::{Ctx, Sandbox}};

/// Runs `init(config, name)` in an instance of `bytes` and returns the
/// component that starts where that `init` ended, linked and typed. The
/// error says why there is no snapshot; `init`'s own refusal is one of them
/// (the caller has already run `init` once, so it does not happen).
pub async fn take(bytes: &[u8], engine: &Engine, linker: &Linker<Ctx>, sandbox: &Sandbox, config: &str, name: &str) -> Result<PluginPre<Ctx>, String> {
    let started = Instant::now();
    let wizer = Wizer::new();
    let (cx, instrumented) = wizer.instrument_component(bytes).map_err(|e| format!("cannot instrument the component: {e:#}"))?;
    let component = Component::new(engine, &instrumented).map_err(|e| format!("cannot compile the instrumented component: {e:#}"))?;
    let pre = linker.instantiate_pre(&component).map_err(|e| format!("cannot link the instrumented component: {e:#}"))?;
    let mut store = sandbox.store(engine)?;
    sandbox.arm(&mut store, Instant::now() + sandbox.limits().timeout);
    let instance = pre.instantiate_async(&mut store).await.map_err(|e| format!("cannot instantiate it: {e:#}"))?;
    run_init(&mut store, &instance, &component, sandbox, config, name).await?;
    if store.data().holds_resources() {
        return Err("`init` left a host resource open (a stream, a request, a file), which a snapshot cannot keep".into());
    }
    sandbox.arm(&mut store, Instant::now() + sandbox.limits().timeout);
    let snapshot = wizer.snapshot_component(&cx, &mut Access { store: &mut store, instance }).await.map_err(|e| format!("cannot snapshot it: {e:#}"))?;
    let component = Component::new(engine, &snapshot).map_err(|e| format!("cannot compile the snapshot: {e:#}"))?;
    let pre = linker.instantiate_pre(&component).map_err(|e| format!("cannot link the snapshot: {e:#}"))?;
    let pre = PluginPre::new(pre).map_err(|e| format!("the snapshot's exports do not match: {e:#}"))?;
    tracing::debug!(plugin = name, bytes = snapshot.len(), took_ms = started.elapsed().as_millis() as u64, "init snapshotted");
    Ok(pre)
}

/// Calls the guest's `init` under the sandbox's time limit.
async fn run_init(store: &mut Store<Ctx>, instance: &Instance, component: &Component, sandbox: &Sandbox, config: &str, name: &str) -> Result<(), String> {
    let guest = component.get_export_index(None, GUEST_EXPORT).ok_or("no guest export")?;
    let init = component.get_export_index(Some(&guest), "init").ok_or("no init export")?;
    let init = instance.get_typed_func::<(&str, &str), (Result<(), String>,)>(&mut *store, &init).map_err(|e| format!("{e:#}"))?;
    let call = init.call_async(&mut *store, (config, name));
    match tokio::time::timeout(sandbox.limits().timeout, call).await {
        Ok(Ok((Ok(()),))) => Ok(()),
        Ok(Ok((Err(refusal),))) => Err(format!("init refused its config: {refusal}")),
        Ok(Err(e)) => Err(format!("init failed: {e:#}")),
        Err(_) => Err("init ran past its time limit".into()),
    }
}

/// Lets wizer read the instance's memories and globals through the accessor
/// functions it added to the component.
struct Access<'a> {
    store: &'a mut Store<Ctx>,
    instance: Instance,
}

impl Access<'_> {
    async fn call<R: Lift + Send + Sync + 'static, T>(&mut self, instance: &str, func: &str, take: impl FnOnce(&Store<Ctx>, R) -> T) -> T {
        let index = self.export(instance, func);
        let func = self.instance.get_typed_func::<(), (R,)>(&mut *self.store, index).expect("wizer's accessor has the type it declares");
        let (ret,) = func.call_async(&mut *self.store, ()).await.expect("wizer's accessor does not trap");
        take(self.store, ret)
    }

    fn export(&mut self, instance: &str, func: &str) -> ComponentExportIndex {
        let (_, parent) = self.instance.get_export(&mut *self.store, None, instance).expect("wizer's accessor instance");
        let (_, index) = self.instance.get_export(&mut *self.store, Some(&parent), func).expect("wizer's accessor function");
        index
    }
}

impl ComponentInstanceState for Access<'_> {
    async fn call_func_ret_list_u8(&mut self, instance: &str, func: &str, contents: impl FnOnce(&[u8]) + Send) {
        self.call(instance, func, |store, list: WasmList<u8>| contents(list.as_le_slice(store))).await
    }

    async fn call_func_ret_s32(&mut self, instance: &str, func: &str) -> i32 {
        self.call(instance, func, |_, r| r).await
    }

    async fn call_func_ret_s64(&mut self, instance: &str, func: &str) -> i64 {
        self.call(instance, func, |_, r| r).await
    }

    async fn call_func_ret_f32(&mut self, instance: &str, func: &str) -> u32 {
        self.call(instance, func, |_, r: f32| r.to_bits()).await
    }

    async fn call_func_ret_f64(&mut self, instance: &str, func: &str) -> u64 {
        self.call(instance, func, |_, r: f64| r.to_bits()).await
    }
}
