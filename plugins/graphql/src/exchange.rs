//! [`Exchange`]: what one GraphQL request's resolvers share: the request
//! metadata and headers the templates use (captured once), the calls in
//! flight (identical calls share one answer: a field's call is made inside
//! its own future, `inflight.rs`; a batched call is a shared future) and
//! the open batch of each batched field.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use covet_plugin_api::Request;
use futures_util::{FutureExt, future::{BoxFuture, Shared}};

use crate::{
    call::{Answer, Call, Caller},
    inflight::InFlight,
};

/// A call in flight, awaited by every field that needs it.
pub type SharedCall = Shared<BoxFuture<'static, Answer>>;

/// The keys gathered for one batched call, and the call once started.
#[derive(Default)]
pub struct Slot {
    /// Keys, in arrival order, without repeats.
    pub keys: Mutex<Vec<String>>,
    /// The call, started by the first instance to wake after the keys are in.
    pub call: OnceLock<SharedCall>,
}

/// Per-request state of the resolvers (request data of the async-graphql request).
pub struct Exchange {
    meta: HashMap<String, String>,
    headers: HashMap<String, String>,
    caller: Arc<Caller>,
    /// Calls made so far: a list (a request makes few; no table to allocate),
    /// indexed by a map once it grows past [`LIST_MAX`].
    calls: Mutex<Calls>,
    batches: Mutex<HashMap<usize, Arc<Slot>>>,
    prevalidated: bool,
}

/// Which metadata keys and headers the templates read (known at init).
#[derive(Debug, Default, Clone)]
pub struct Captures {
    /// Metadata keys.
    pub meta: Vec<String>,
    /// Header names (lower case).
    pub headers: Vec<String>,
}

impl Exchange {
    /// Captures what the templates read from `req`.
    pub fn new(req: &Request<'_>, captures: &Captures, caller: Arc<Caller>) -> Exchange {
        let meta = captures.meta.iter().filter_map(|k| Some((k.clone(), req.metadata(k)?.to_owned()))).collect();
        let headers = captures.headers.iter().filter_map(|h| Some((h.clone(), req.header(h)?.to_owned()))).collect();
        Exchange { meta, headers, caller, calls: Mutex::default(), batches: Mutex::default(), prevalidated: false }
    }

    /// Marks the request's document as validated by the schema before (`validated.rs`).
    pub fn with_prevalidated(mut self, prevalidated: bool) -> Exchange {
        self.prevalidated = prevalidated;
        self
    }

    /// Whether the request's document was validated by the schema before.
    pub fn prevalidated(&self) -> bool {
        self.prevalidated
    }

    /// A metadata value.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.meta.get(key).map(String::as_str)
    }

    /// A request header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// The answer of `call` for one field: an identical call's (in flight or
    /// made), else `call` made now, inside this future.
    pub async fn answer(&self, call: Call, timeout: Duration, ttl: Option<Duration>) -> Answer {
        /// What this field does: make the call, or await an identical one.
        enum Role {
            Lead(Arc<InFlight>, Arc<Call>),
            Wait(Arc<InFlight>),
            Share(SharedCall),
        }
        let role = {
            let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
            match calls.get(&call) {
                Some(Entry::Flight(flight)) => Role::Wait(flight.clone()),
                Some(Entry::Shared(shared)) => Role::Share(shared.clone()),
                None => {
                    let (flight, call) = (Arc::new(InFlight::default()), Arc::new(call));
                    calls.insert(call.clone(), Entry::Flight(flight.clone()));
                    Role::Lead(flight, call)
                }
            }
        };
        match role {
            Role::Lead(flight, call) => flight.lead(self.caller.clone().run(call, timeout, ttl)).await,
            Role::Wait(flight) => flight.wait().await,
            Role::Share(shared) => shared.await,
        }
    }

    /// The answer of `call` as a shared future (a batched call, awaited by
    /// every instance in the batch): an identical call's, else a new one.
    pub fn call(&self, call: Call, timeout: Duration, ttl: Option<Duration>) -> SharedCall {
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        match calls.get(&call) {
            Some(Entry::Flight(flight)) => return flight.clone().wait().boxed().shared(),
            Some(Entry::Shared(shared)) => return shared.clone(),
            None => {}
        }
        let call = Arc::new(call);
        let shared = self.caller.clone().run(call.clone(), timeout, ttl).boxed().shared();
        calls.insert(call, Entry::Shared(shared.clone()));
        shared
    }

    /// Adds `key` to the open batch of field `id` (a full batch is closed and a new one opened).
    pub fn join_batch(&self, id: usize, key: String, max_keys: usize) -> Arc<Slot> {
        let mut batches = self.batches.lock().unwrap_or_else(|e| e.into_inner());
        let slot = batches.entry(id).or_default();
        {
            let mut keys = slot.keys.lock().unwrap_or_else(|e| e.into_inner());
            if keys.contains(&key) {
                return slot.clone();
            }
            if keys.len() < max_keys && slot.call.get().is_none() {
                keys.push(key);
                return slot.clone();
            }
        }
        let fresh = Arc::new(Slot { keys: Mutex::new(vec![key]), call: OnceLock::new() });
        *slot = fresh.clone();
        fresh
    }

    /// Closes `slot` for new keys (its call is starting).
    pub fn close_batch(&self, id: usize, slot: &Arc<Slot>) {
        let mut batches = self.batches.lock().unwrap_or_else(|e| e.into_inner());
        if batches.get(&id).is_some_and(|open| Arc::ptr_eq(open, slot)) {
            batches.remove(&id);
        }
    }
}

/// Up to this many calls are looked up by comparing them one by one.
const LIST_MAX: usize = 8;

/// A call of the request: made by a field, or a batch's shared future.
enum Entry {
    Flight(Arc<InFlight>),
    Shared(SharedCall),
}

/// The calls of one request by their rendered form.
#[derive(Default)]
struct Calls {
    list: Vec<(Arc<Call>, Entry)>,
    /// Positions in `list`, once it is longer than [`LIST_MAX`].
    index: Option<HashMap<Arc<Call>, usize, foldhash::fast::RandomState>>,
}

impl Calls {
    fn get(&self, call: &Call) -> Option<&Entry> {
        let at = match &self.index {
            Some(index) => *index.get(call)?,
            None => self.list.iter().position(|(c, _)| **c == *call)?,
        };
        Some(&self.list[at].1)
    }

    fn insert(&mut self, call: Arc<Call>, entry: Entry) {
        let at = self.list.len();
        if let Some(index) = &mut self.index {
            index.insert(call.clone(), at);
        } else if at == LIST_MAX {
            let mut index: HashMap<_, _, foldhash::fast::RandomState> = HashMap::default();
            index.extend(self.list.iter().enumerate().map(|(i, (c, _))| (c.clone(), i)));
            index.insert(call.clone(), at);
            self.index = Some(index);
        }
        self.list.push((call, entry));
    }
}
