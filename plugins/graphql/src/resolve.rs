//! Field resolvers: [`json_field`] reads the parent's JSON (a field without
//! `@http`), [`http_field`] makes the plan's call (deduplicated, cached or
//! batched through the request's [`Exchange`]) and maps the selected part of
//! the answer onto the field's type ([`Shape`]). Failures become GraphQL
//! field errors with `extensions.code`; async-graphql nulls the field (or
//! its nearest nullable parent) and keeps the rest of the answer.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use async_graphql::{
    Error, ErrorExtensions, Name, Value as GqlValue,
    dynamic::{FieldFuture, FieldValue, ResolverContext},
    indexmap::IndexMap,
};
use futures_util::FutureExt;
use serde_json::Value;

use crate::{
    call::Call,
    exchange::Exchange,
    plan::{BatchPlan, Plan},
    template::{Encoding, Env, Source, walk},
};

/// The JSON → GraphQL mapping of an output type (nullability is async-graphql's to check).
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// A list of the inner shape.
    List(Box<Shape>),
    /// An object type: the JSON object becomes the parent of its fields.
    Object,
    /// An interface or union: the JSON object names its type in `__typename`.
    Abstract,
    /// A scalar or enum: the JSON value as is.
    Leaf,
}

/// A resolver function as async-graphql takes it.
pub type Resolver = Box<dyn for<'a> Fn(ResolverContext<'a>) -> FieldFuture<'a> + Send + Sync>;

/// The resolver of a field read from its parent's JSON object.
pub fn json_field(name: String, shape: Shape) -> Resolver {
    Box::new(move |ctx| {
        let Some(value) = parent_json(ctx.parent_value).and_then(|p| p.get(&name)) else {
            return FieldFuture::Value(None);
        };
        match borrowed(value, &shape) {
            Ok(v) => FieldFuture::Value(v),
            Err(e) => {
                report(&ctx, e);
                FieldFuture::Value(None)
            }
        }
    })
}

/// The resolver of a field resolved by `plan`'s call.
pub fn http_field(plan: Plan, shape: Shape) -> Resolver {
    let (plan, shape) = (Arc::new(plan), Arc::new(shape));
    Box::new(move |ctx| {
        let (plan, shape) = (plan.clone(), shape.clone());
        FieldFuture::new(async move {
            let resolved = async {
                let exchange = ctx.data::<Exchange>()?;
                let env = FieldEnv { args: ctx.args.as_index_map(), parent: parent_json(ctx.parent_value), exchange };
                let value = match &plan.batch {
                    None => {
                        let Some(answer) = single(&plan, &env).await? else { return Ok(None) };
                        return shared(answer, &plan, &shape);
                    }
                    Some(batch) => batched(&plan, batch, &shape, &env).await?,
                };
                match value {
                    None | Some(Value::Null) => Ok(None),
                    Some(v) => owned(v, &shape),
                }
            };
            match resolved.await {
                Ok(value) => Ok(value),
                Err(e) => {
                    report(&ctx, e);
                    Ok(None)
                }
            }
        })
    })
}

/// Records `error` at the field's path and lets the field be null. (An
/// error returned to async-graphql's dynamic executor loses its path and
/// drops the field from `data`.)
fn report(ctx: &ResolverContext<'_>, error: Error) {
    ctx.add_error(ctx.set_error_path(error.into_server_error(ctx.item.pos)));
}

/// One call for this field instance (its whole answer); `None` when a placeholder has no value.
async fn single(plan: &Plan, env: &FieldEnv<'_>) -> Result<Option<Arc<Value>>, Error> {
    let Some(call) = render(plan, env) else { return Ok(None) };
    let answer = env.exchange.answer(call, plan.timeout, plan.cache_ttl).await.map_err(|e| e.to_graphql())?;
    Ok(Some(answer))
}

/// An object answered by a call, read in place: the part at `plan.select`
/// of the shared answer (no copy of it per field).
struct Answered {
    answer: Arc<Value>,
    plan: Arc<Plan>,
}

impl Answered {
    fn get(&self) -> Option<&Value> {
        walk(&self.answer, &self.plan.select)
    }
}

/// The field value of `plan.select` in `answer`: an object stays in the
/// shared answer, anything else is copied out.
fn shared(answer: Arc<Value>, plan: &Arc<Plan>, shape: &Shape) -> Result<Option<FieldValue<'static>>, Error> {
    let part = match walk(&answer, &plan.select) {
        None | Some(Value::Null) => return Ok(None),
        Some(part) => part,
    };
    match (shape, part) {
        (Shape::Object, Value::Object(_)) => {
            Ok(Some(FieldValue::owned_any(Answered { answer: answer.clone(), plan: plan.clone() })))
        }
        (Shape::Abstract, Value::Object(map)) => {
            let ty = typename(map)?;
            Ok(Some(FieldValue::owned_any(Answered { answer: answer.clone(), plan: plan.clone() }).with_type(ty)))
        }
        _ => owned(part.clone(), shape),
    }
}

/// This instance's key joins the open batch; after one yield (so every
/// sibling polled in the same pass has joined) the first instance awake
/// starts the call with all keys, and each picks its items from the answer.
async fn batched(plan: &Plan, batch: &BatchPlan, shape: &Shape, env: &FieldEnv<'_>) -> Result<Option<Value>, Error> {
    let Some(key) = batch.key.render(env, Encoding::Raw) else { return Ok(None) };
    let exchange = env.exchange;
    let slot = exchange.join_batch(plan.id, key.clone(), batch.max_keys);
    YieldOnce(false).await;
    let shared = slot
        .call
        .get_or_init(|| {
            exchange.close_batch(plan.id, &slot);
            let keys = slot.keys.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let env = BatchEnv { inner: env, keys: &keys, separator: &batch.separator };
            match render(plan, &env) {
                Some(call) => exchange.call(call, plan.timeout, plan.cache_ttl),
                None => async { Ok(Arc::new(Value::Null)) }.boxed().shared(),
            }
        })
        .clone();
    let answer = shared.await.map_err(|e| e.to_graphql())?;
    let items = match walk(&answer, &plan.select) {
        Some(Value::Array(items)) => items,
        None | Some(Value::Null) => return Ok(None),
        Some(_) => return Err(bad_response(format!("{}: the batched answer is not a list", plan.field))),
    };
    let mut matches = items.iter().filter(|item| item.get(&batch.match_field).and_then(key_text).as_deref() == Some(&key));
    Ok(match shape {
        Shape::List(_) => Some(Value::Array(matches.cloned().collect())),
        _ => matches.next().cloned(),
    })
}

/// The text of a key value (strings as they are, numbers written out).
fn key_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The rendered call; `None` when the path, URL or body lacks a value.
fn render(plan: &Plan, env: &dyn Env) -> Option<Call> {
    let path = plan.path.render(env, Encoding::Url)?;
    let headers = plan.headers.iter().filter_map(|(n, t)| Some((n.clone(), t.render(env, Encoding::Raw)?))).collect();
    let body = match &plan.body {
        Some(t) => Some(t.render(env, Encoding::Json)?),
        None => None,
    };
    Some(Call { target: plan.target.clone(), method: plan.method.clone(), path, headers, body })
}

/// A `BAD_RESPONSE` field error.
fn bad_response(message: String) -> Error {
    Error::new(message).extend_with(|_, ext| ext.set("code", "BAD_RESPONSE"))
}

/// The JSON object a parent value holds (`None` at the root).
fn parent_json<'a>(parent: &'a FieldValue<'a>) -> Option<&'a Value> {
    match parent.downcast_ref::<Value>() {
        Some(value) => Some(value),
        None => parent.downcast_ref::<Answered>()?.get(),
    }
}

/// A JSON value borrowed from the parent as a field value.
fn borrowed<'a>(value: &'a Value, shape: &Shape) -> Result<Option<FieldValue<'a>>, Error> {
    Ok(Some(match (shape, value) {
        (_, Value::Null) => return Ok(None),
        (Shape::List(inner), Value::Array(items)) => FieldValue::list(
            items.iter().map(|i| borrowed(i, inner).map(|v| v.unwrap_or(FieldValue::NULL))).collect::<Result<Vec<_>, _>>()?,
        ),
        (Shape::Object, Value::Object(_)) => FieldValue::borrowed_any(value),
        (Shape::Abstract, Value::Object(map)) => FieldValue::borrowed_any(value).with_type(typename(map)?),
        (Shape::Leaf, v) => FieldValue::value(leaf(v.clone())?),
        (shape, v) => return Err(mismatch(shape, v)),
    }))
}

/// A JSON value owned by the field (an answer's selected part).
fn owned(value: Value, shape: &Shape) -> Result<Option<FieldValue<'static>>, Error> {
    Ok(Some(match (shape, value) {
        (_, Value::Null) => return Ok(None),
        (Shape::List(inner), Value::Array(items)) => FieldValue::list(
            items.into_iter().map(|i| owned(i, inner).map(|v| v.unwrap_or(FieldValue::NULL))).collect::<Result<Vec<_>, _>>()?,
        ),
        (Shape::Object, v @ Value::Object(_)) => FieldValue::owned_any(v),
        (Shape::Abstract, Value::Object(map)) => {
            let ty = typename(&map)?;
            FieldValue::owned_any(Value::Object(map)).with_type(ty)
        }
        (Shape::Leaf, v) => FieldValue::value(leaf(v)?),
        (shape, v) => return Err(mismatch(shape, &v)),
    }))
}

fn typename(map: &serde_json::Map<String, Value>) -> Result<String, Error> {
    match map.get("__typename") {
        Some(Value::String(s)) => Ok(s.clone()),
        _ => Err(bad_response("an interface or union value needs its type in `__typename`".into())),
    }
}

fn leaf(value: Value) -> Result<GqlValue, Error> {
    match value {
        // Scalars directly (what `from_json` makes of them, without serde's round trip).
        Value::String(s) => Ok(GqlValue::String(s)),
        Value::Number(n) => Ok(GqlValue::Number(n)),
        Value::Bool(b) => Ok(GqlValue::Boolean(b)),
        Value::Null => Ok(GqlValue::Null),
        other => GqlValue::from_json(other).map_err(|e| bad_response(format!("not a GraphQL value: {e}"))),
    }
}

fn mismatch(shape: &Shape, value: &Value) -> Error {
    let want = match shape {
        Shape::List(_) => "a list",
        Shape::Object | Shape::Abstract => "an object",
        Shape::Leaf => "a value",
    };
    let got = match value {
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
        _ => "a value",
    };
    bad_response(format!("the service answered {got} where the schema wants {want}"))
}

/// Template values of one field instance.
struct FieldEnv<'a> {
    args: &'a IndexMap<Name, GqlValue>,
    parent: Option<&'a Value>,
    exchange: &'a Exchange,
}

impl Env for FieldEnv<'_> {
    fn lookup(&self, source: &Source) -> Option<Value> {
        let value = match source {
            Source::Args(path) => {
                let arg = self.args.get(path[0].as_str())?;
                match (path.len(), scalar_json(arg)) {
                    (1, Some(value)) => Some(value),
                    _ => walk(&arg.clone().into_json().ok()?, &path[1..]).cloned(),
                }
            }
            Source::Parent(path) => walk(self.parent?, path).cloned(),
            Source::Meta(key) => self.exchange.meta(key).map(|v| Value::String(v.to_owned())),
            Source::Header(name) => self.exchange.header(name).map(|v| Value::String(v.to_owned())),
            Source::BatchKeys => None,
        };
        value.filter(|v| !v.is_null())
    }
}

/// A scalar argument as JSON, as `into_json` makes it (without serde's round trip); `None` for lists and objects.
fn scalar_json(value: &GqlValue) -> Option<Value> {
    Some(match value {
        GqlValue::Null => Value::Null,
        GqlValue::String(s) => Value::String(s.clone()),
        GqlValue::Enum(name) => Value::String(name.to_string()),
        GqlValue::Number(n) => Value::Number(n.clone()),
        GqlValue::Boolean(b) => Value::Bool(*b),
        GqlValue::Binary(_) | GqlValue::List(_) | GqlValue::Object(_) => return None,
    })
}

/// A batched call's template values: the keys, and the request's meta and headers.
struct BatchEnv<'a> {
    inner: &'a FieldEnv<'a>,
    keys: &'a [String],
    separator: &'a str,
}

impl Env for BatchEnv<'_> {
    fn lookup(&self, source: &Source) -> Option<Value> {
        self.inner.lookup(source)
    }

    fn batch_keys(&self) -> Option<(&[String], &str)> {
        Some((self.keys, self.separator))
    }
}

/// Pending once (waking itself), then ready: lets sibling resolvers polled
/// in the same pass join a batch before it is sent.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
