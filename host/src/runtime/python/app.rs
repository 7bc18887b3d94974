//! `covet.Covet` decorator apps (`app:`). The app's routes
//! (`_covet_routes()`) are read once at load into a matchit router, so
//! routing happens in Rust: a request reaches Python only for an endpoint
//! that matches its path and method. Async endpoints run on the event loop
//! (`_covet_is_async`, asked once per endpoint); sync ones inline on the
//! loop's thread, or on the pool when marked `blocking=True`
//! (`_covet_is_blocking`).

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use covet_plugin_api::Phases;
use http::Method;
use pyo3::prelude::*;

use super::{
    Target,
    convert::{self, ReqData},
    describe,
    interp::{self, Interp},
    on_loop, on_loop_inline, on_pool, run_hook,
    services::PyInstance,
    trace::PySpan,
};
use crate::{
    exchange::{Exchange, HostResponse},
    problem,
    runtime::{Decision, Executor, Fault, Outcome, PluginInfo},
};

/// Where an endpoint runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Runs {
    /// A coroutine: a task on the event loop.
    Loop,
    /// A sync function, inline on the event loop's thread.
    Inline,
    /// A sync function marked `blocking=True`: on the thread pool.
    Pool,
}

/// Endpoints for one path: (methods, index, where it runs); empty methods = any.
type Endpoints = Vec<(Vec<Method>, usize, Runs)>;

/// One live decorator app.
pub struct AppExecutor {
    info: PluginInfo,
    interp: &'static Interp,
    app: Arc<Py<PyAny>>,
    router: matchit::Router<Endpoints>,
    timeout: Duration,
    instance: Arc<PyInstance>,
}

impl AppExecutor {
    /// Loads the app, reads its routes and runs `_covet_init(config)`.
    pub fn load(interp: &'static Interp, target: &Target, config: &serde_json::Value) -> Result<AppExecutor, String> {
        let (app, routes) = Python::attach(|py| -> Result<_, String> {
            let app = target.load(py)?;
            let routes = read_routes(app.bind(py)).map_err(|e| format!("_covet_routes() failed: {}", describe(py, e)))?;
            Ok((app, routes))
        })?;
        let router = build_router(routes)?;
        let config = config.to_string();
        let app_ref = Python::attach(|py| app.clone_ref(py));
        run_hook(interp, &target.instance, "_covet_init", move |py| {
            let config = py.import("json")?.getattr("loads")?.call1((config,))?;
            app_ref.bind(py).call_method1("_covet_init", (config,)).map(Bound::unbind)
        })?;
        let info = PluginInfo {
            name: target.plugin.clone(),
            kind: "python",
            plugin_name: target.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            version: "app".into(),
            api_version: "covet-python 1".into(),
            phases: Phases::HANDLE,
        };
        let instance = target.instance.clone();
        Ok(AppExecutor { info, interp, app: Arc::new(app), router, timeout: target.settings.timeout, instance })
    }

    /// Calls endpoint `index` (with the plugin call's span, when tracing is on).
    async fn call(&self, index: usize, runs: Runs, req: ReqData, call: Call) -> Result<HostResponse, Fault> {
        let app = self.app.clone();
        let Call { request_id, span } = call;
        let result = match runs {
            Runs::Loop => {
                on_loop(self.interp, &self.instance, self.timeout, move |py| {
                    let bridge = interp::bridge(py)?;
                    let args = (app.clone_ref(py), index, req.to_py(py)?, PySpan::wrap(py, span.as_ref())?).into_pyobject(py)?;
                    Ok((bridge.getattr(pyo3::intern!(py, "app_call_async"))?.unbind(), args.unbind()))
                })
                .await?
            }
            Runs::Inline => {
                let limit = self.timeout.as_secs_f64();
                on_loop_inline(self.interp, self.timeout, move |py| sync_call(py, "app_call_inline", &app, index, req, span, Some(limit))).await?
            }
            Runs::Pool => on_pool(self.interp, self.timeout, move |py| sync_call(py, "app_call", &app, index, req, span, None)).await?,
        };
        convert::handler_outcome(&self.info.name, &request_id, result)
    }
}

/// A sync endpoint through the bridge's `entry` (`app_call`, or
/// `app_call_inline` with the time limit the loop's watchdog applies).
fn sync_call(
    py: Python<'_>,
    entry: &'static str,
    app: &Py<PyAny>,
    index: usize,
    req: ReqData,
    span: Option<covet_telemetry::Span>,
    limit: Option<f64>,
) -> convert::PyResult_ {
    let run = || -> PyResult<convert::PyResult_> {
        let bridge = interp::bridge(py)?;
        let span = PySpan::wrap(py, span.as_ref())?;
        let call = bridge.getattr(entry)?;
        let result = match limit {
            Some(limit) => call.call1((app.bind(py), index, req.to_py(py)?, span, limit))?,
            None => call.call1((app.bind(py), index, req.to_py(py)?, span))?,
        };
        Ok(convert::read(&result))
    };
    run().unwrap_or_else(|e| convert::PyResult_::Error(describe(py, e)))
}

/// What a call carries besides the request: its id (for errors) and span.
struct Call {
    request_id: String,
    span: Option<covet_telemetry::Span>,
}

type RouteRow = (Vec<String>, String, usize);

fn read_routes(app: &Bound<'_, PyAny>) -> PyResult<Vec<(RouteRow, Runs)>> {
    let rows: Vec<RouteRow> = app.call_method0("_covet_routes")?.extract()?;
    let blocking_known = app.hasattr("_covet_is_blocking")?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let runs = if app.call_method1("_covet_is_async", (row.2,))?.extract()? {
            Runs::Loop
        } else if blocking_known && app.call_method1("_covet_is_blocking", (row.2,))?.extract()? {
            Runs::Pool
        } else {
            Runs::Inline
        };
        out.push((row, runs));
    }
    Ok(out)
}

fn build_router(routes: Vec<(RouteRow, Runs)>) -> Result<matchit::Router<Endpoints>, String> {
    let mut by_path: BTreeMap<String, Endpoints> = BTreeMap::new();
    for ((methods, path, index), runs) in routes {
        let methods = methods
            .iter()
            .map(|m| Method::from_bytes(m.as_bytes()).map_err(|_| format!("route {path}: invalid method {m:?}")))
            .collect::<Result<Vec<_>, _>>()?;
        by_path.entry(path).or_default().push((methods, index, runs));
    }
    let mut router = matchit::Router::new();
    for (path, endpoints) in by_path {
        router.insert(path.clone(), endpoints).map_err(|e| format!("route {path}: {e}"))?;
    }
    Ok(router)
}

impl Executor for AppExecutor {
    fn info(&self) -> &PluginInfo {
        &self.info
    }

    fn on_request<'a>(&'a self, _: &'a mut Exchange) -> Outcome<'a, Decision> {
        Outcome::Ready(Ok(Decision::Continue))
    }

    fn handle<'a>(&'a self, ex: &'a mut Exchange) -> Outcome<'a, HostResponse> {
        let Ok(found) = self.router.at(ex.uri.path()) else {
            return Outcome::Ready(Ok(problem::not_found(ex.uri.path(), ex.id())));
        };
        let endpoint = found.value.iter().find(|(methods, _, _)| methods.is_empty() || methods.contains(&ex.method));
        let Some(&(_, index, runs)) = endpoint else {
            let allowed: Vec<Method> = found.value.iter().flat_map(|(m, _, _)| m.iter().cloned()).collect();
            return Outcome::Ready(Ok(problem::method_not_allowed(ex.method.as_str(), &allowed, ex.id())));
        };
        let params = found.params.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        let req = ReqData::new(ex, params);
        let call = Call { request_id: ex.id().to_owned(), span: ex.span.clone() };
        Outcome::Pending(Box::pin(self.call(index, runs, req, call)))
    }

    fn on_response<'a>(&'a self, _: &'a mut Exchange, _: &'a mut HostResponse) -> Outcome<'a, ()> {
        Outcome::Ready(Ok(()))
    }

    fn shutdown(&self) {
        let app = self.app.clone();
        let hook = move |py: Python<'_>| app.bind(py).call_method0("_covet_shutdown").map(Bound::unbind);
        if let Err(e) = run_hook(self.interp, &self.instance, "_covet_shutdown", hook) {
            tracing::error!(target: "covet::python", plugin = %self.info.name, "{e}");
        }
        self.instance.close();
    }
}
