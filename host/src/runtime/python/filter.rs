//! Filter modules (`filter:`): module-level `init(config)`,
//! `on_request(request)`, `on_response(request, response)` and `shutdown()`,
//! each optional and each sync (run on the pool) or `async def` (run on the
//! event loop). `on_request` may change `request.metadata` and
//! `request.headers` (read back and applied) or return a response (which
//! short-circuits); `on_response` may edit the response or replace it.
//! A streaming response (an ASGI app's `more_body`) passes `on_response`
//! untouched: its body is not buffered.

use std::{sync::Arc, time::Duration};

use covet_plugin_api::Phases;
use pyo3::{prelude::*, types::PyBytes};

use super::{
    Target,
    convert::{self, PyResult_, ReqData},
    describe,
    interp::{self, Interp},
    on_loop, on_pool, run_hook,
    services::PyInstance,
    trace::PySpan,
};
use crate::{
    exchange::{Exchange, HostResponse},
    runtime::{Decision, Executor, Fault, Outcome, PluginInfo},
};

/// A hook function and whether it is a coroutine function.
struct Hook {
    func: Arc<Py<PyAny>>,
    is_async: bool,
}

/// One live filter module.
pub struct FilterExecutor {
    info: PluginInfo,
    interp: &'static Interp,
    module: Arc<Py<PyAny>>,
    on_request: Option<Hook>,
    on_response: Option<Hook>,
    timeout: Duration,
    instance: Arc<PyInstance>,
}

impl FilterExecutor {
    /// Loads the module and runs its `init(config)` if it has one.
    pub fn load(interp: &'static Interp, target: &Target, config: &serde_json::Value) -> Result<FilterExecutor, String> {
        let (module, on_request, on_response) = Python::attach(|py| -> Result<_, String> {
            let module = target.load(py)?;
            let hook = |name: &str| hook(py, module.bind(py), name).map_err(|e| describe(py, e));
            Ok((module.clone_ref(py), hook("on_request")?, hook("on_response")?))
        })?;
        let config = config.to_string();
        let init = Python::attach(|py| module.clone_ref(py));
        run_hook(interp, &target.instance, "init", move |py| {
            let Some(init) = init.bind(py).getattr_opt("init")? else { return Ok(py.None()) };
            let config = py.import("json")?.getattr("loads")?.call1((config,))?;
            init.call1((config,)).map(Bound::unbind)
        })?;
        let mut phases = Phases::NONE;
        if on_request.is_some() {
            phases = phases.union(Phases::ON_REQUEST);
        }
        if on_response.is_some() {
            phases = phases.union(Phases::ON_RESPONSE);
        }
        let info = PluginInfo {
            name: target.plugin.clone(),
            kind: "python",
            plugin_name: target.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            version: "filter".into(),
            api_version: "covet-python 1".into(),
            phases,
        };
        let instance = target.instance.clone();
        Ok(FilterExecutor { info, interp, module: Arc::new(module), on_request, on_response, timeout: target.settings.timeout, instance })
    }

    /// Runs `bridge.NAME(func, *args[, span])` (or `NAME_async` on the
    /// loop); the call's span goes last, only when it has one.
    async fn run(
        &self,
        hook: &Hook,
        name: &'static str,
        span: Option<covet_telemetry::Span>,
        args: impl for<'py> FnOnce(Python<'py>) -> PyResult<Vec<Bound<'py, PyAny>>> + Send + 'static,
    ) -> Result<PyResult_, Fault> {
        let func = hook.func.clone();
        if hook.is_async {
            return on_loop(self.interp, &self.instance, self.timeout, move |py| {
                let bridge = interp::bridge(py)?;
                let tuple = call_args(py, &func, args, span.as_ref())?;
                Ok((bridge.getattr(format!("{name}_async"))?.unbind(), tuple.unbind()))
            })
            .await;
        }
        on_pool(self.interp, self.timeout, move |py| {
            let run = || -> PyResult<PyResult_> {
                let bridge = interp::bridge(py)?;
                let result = bridge.getattr(name)?.call1(call_args(py, &func, args, span.as_ref())?)?;
                Ok(convert::read(&result))
            };
            run().unwrap_or_else(|e| PyResult_::Error(describe(py, e)))
        })
        .await
    }

    async fn request_phase(&self, ex: &mut Exchange) -> Result<Decision, Fault> {
        let Some(hook) = &self.on_request else { return Ok(Decision::Continue) };
        let req = ReqData::new(ex, Vec::new());
        let result = self.run(hook, "filter_request", ex.span.clone(), move |py| Ok(vec![req.to_py(py)?.into_any()])).await?;
        let (metadata, headers, respond) = match result {
            PyResult_::Continue(m, h) => (m, h, None),
            PyResult_::Respond(m, h, wire) => (m, h, Some(wire)),
            other => return convert::handler_outcome(&self.info.name, ex.id(), other).map(Decision::respond),
        };
        for (k, v) in &metadata {
            if ex.metadata.get(k) != Some(v.as_str()) {
                ex.metadata.set(k, v);
            }
        }
        if let Some(headers) = headers {
            ex.headers = convert::headers(&headers).map_err(Fault::Error)?;
        }
        match respond {
            Some(wire) => convert::response(wire).map(Decision::respond),
            None => Ok(Decision::Continue),
        }
    }

    async fn response_phase(&self, ex: &mut Exchange, resp: &mut HostResponse) -> Result<(), Fault> {
        let Some(hook) = &self.on_response else { return Ok(()) };
        if resp.stream.is_some() {
            return Ok(());
        }
        let req = ReqData::new(ex, Vec::new());
        let status = resp.status.as_u16();
        let headers: Vec<(String, String)> =
            resp.headers.iter().filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned()))).collect();
        let body = resp.body.clone();
        let result = self
            .run(hook, "filter_response", ex.span.clone(), move |py| {
                let headers = headers.into_pyobject(py)?.into_any();
                Ok(vec![req.to_py(py)?.into_any(), status.into_pyobject(py)?.into_any(), headers, PyBytes::new(py, &body).into_any()])
            })
            .await?;
        *resp = convert::handler_outcome(&self.info.name, ex.id(), result)?;
        Ok(())
    }
}

/// `(func, *args[, span])`: the span goes last, only when the call has one.
fn call_args<'py>(
    py: Python<'py>,
    func: &Py<PyAny>,
    args: impl FnOnce(Python<'py>) -> PyResult<Vec<Bound<'py, PyAny>>>,
    span: Option<&covet_telemetry::Span>,
) -> PyResult<Bound<'py, pyo3::types::PyTuple>> {
    let mut all = vec![func.bind(py).clone()];
    all.extend(args(py)?);
    if let Some(span) = PySpan::wrap(py, span)? {
        all.push(span.into_bound(py).into_any());
    }
    pyo3::types::PyTuple::new(py, all)
}

fn hook(py: Python<'_>, module: &Bound<'_, PyAny>, name: &str) -> PyResult<Option<Hook>> {
    let Some(func) = module.getattr_opt(name)? else { return Ok(None) };
    let is_async = py.import("inspect")?.getattr("iscoroutinefunction")?.call1((&func,))?.is_truthy()?;
    Ok(Some(Hook { func: Arc::new(func.unbind()), is_async }))
}

impl Executor for FilterExecutor {
    fn info(&self) -> &PluginInfo {
        &self.info
    }

    fn on_request<'a>(&'a self, ex: &'a mut Exchange) -> Outcome<'a, Decision> {
        Outcome::Pending(Box::pin(self.request_phase(ex)))
    }

    fn handle<'a>(&'a self, _: &'a mut Exchange) -> Outcome<'a, HostResponse> {
        Outcome::Ready(Err(Fault::Error("a filter module has no handler".into())))
    }

    fn on_response<'a>(&'a self, ex: &'a mut Exchange, resp: &'a mut HostResponse) -> Outcome<'a, ()> {
        Outcome::Pending(Box::pin(self.response_phase(ex, resp)))
    }

    fn shutdown(&self) {
        let module = self.module.clone();
        let hook = move |py: Python<'_>| match module.bind(py).getattr_opt("shutdown")? {
            Some(f) => f.call0().map(Bound::unbind),
            None => Ok(py.None()),
        };
        if let Err(e) = run_hook(self.interp, &self.instance, "shutdown", hook) {
            tracing::error!(target: "covet::python", plugin = %self.info.name, "{e}");
        }
        self.instance.close();
    }
}
