//! A real redis-server for the tests: started on a unix socket in a
//! temporary directory, killed on drop; and [`RedisStore`], the limiter's
//! [`Store`] over it, which runs each call on a thread of its own with the
//! sync `redis` client, so a hung call does not block the timer racing it.
//! Its compare-and-set is a small script, as the host's Redis state does it.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, PoisonError},
    task::{Poll, Waker},
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use crate::shared::{BoxFuture, Store, StoreError};

/// A redis-server of our own, killed on drop.
pub(crate) struct RedisServer {
    child: Child,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("redis.sock");
        let child = Command::new("redis-server")
            .args(["--port", "0", "--save", "", "--appendonly", "no", "--unixsocket"])
            .arg(&socket)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is not installed (apt-get install -y redis-server; scripts/test.sh does it)");
        let server = RedisServer { child, socket, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if server.try_connect().is_some() {
                return server;
            }
            thread::sleep(Duration::from_millis(10));
        }
        panic!("redis-server did not start listening on {}", server.socket.display());
    }

    pub fn try_connect(&self) -> Option<redis::Connection> {
        let mut conn = redis::Client::open(self.url()).ok()?.get_connection().ok()?;
        redis::cmd("PING").query::<String>(&mut conn).ok()?;
        Some(conn)
    }

    pub fn connect(&self) -> redis::Connection {
        self.try_connect().expect("cannot connect to the test redis-server")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl RedisServer {
    /// `redis+unix://…`, the server's URL.
    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket.display())
    }

    /// Sends the server `signal` (`STOP` freezes it: connections hang; `CONT` resumes it).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill").arg(format!("-{signal}")).arg(self.child.id().to_string()).status().unwrap();
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Kills the server and waits for it: connections are refused from now on.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `f` on a new thread; the future completes with its result.
fn on_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> BoxFuture<'static, T> {
    type Slot<T> = Arc<Mutex<(Option<T>, Option<Waker>)>>;
    let slot: Slot<T> = Arc::new(Mutex::new((None, None)));
    let filled = Arc::clone(&slot);
    thread::spawn(move || {
        let value = f();
        let mut slot = filled.lock().unwrap_or_else(PoisonError::into_inner);
        slot.0 = Some(value);
        if let Some(waker) = slot.1.take() {
            waker.wake();
        }
    });
    Box::pin(std::future::poll_fn(move |cx| {
        let mut slot = slot.lock().unwrap_or_else(PoisonError::into_inner);
        match slot.0.take() {
            Some(value) => Poll::Ready(value),
            None => {
                slot.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }))
}

/// The store over the sync `redis` client, one connection per call.
pub(crate) struct RedisStore {
    url: String,
}

impl RedisStore {
    pub fn new(server: &RedisServer) -> RedisStore {
        RedisStore { url: server.url() }
    }
}

impl Store for RedisStore {
    fn eval<'a>(
        &'a self,
        script: &'static str,
        keys: &'a [String],
        args: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<i64>, StoreError>> {
        let (keys, args) = (keys.to_vec(), args.to_vec());
        self.query(move |conn| redis::cmd("EVAL").arg(script).arg(keys.len()).arg(keys).arg(args).query(conn))
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, StoreError>> {
        let key = key.to_owned();
        self.query(move |conn| redis::cmd("GET").arg(key).query(conn))
    }

    fn compare_and_set<'a>(
        &'a self,
        key: &'a str,
        expected: Option<&'a [u8]>,
        new: Vec<u8>,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let (key, expected) = (key.to_owned(), expected.map(<[u8]>::to_vec));
        self.query(move |conn| {
            let mut cmd = redis::cmd("EVAL");
            cmd.arg(CAS).arg(1).arg(key).arg(u8::from(expected.is_some())).arg(expected.unwrap_or_default());
            cmd.arg(new).arg(ttl.as_millis().max(1) as u64).query::<i64>(conn).map(|done| done == 1)
        })
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        on_thread(move || thread::sleep(duration))
    }

    fn now_micros(&self) -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros() as u64
    }
}

/// Compare-and-set: ARGV = expected-present (0/1), expected, new, ttl ms.
const CAS: &str = r"
local cur = redis.call('GET', KEYS[1])
if ARGV[1] == '1' then
  if cur ~= ARGV[2] then return 0 end
elseif cur then
  return 0
end
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
return 1";

impl RedisStore {
    /// Runs `call` on a fresh connection, on a thread of its own.
    fn query<T: Send + 'static>(
        &self,
        call: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T> + Send + 'static,
    ) -> BoxFuture<'static, Result<T, StoreError>> {
        let url = self.url.clone();
        on_thread(move || {
            let run = || call(&mut redis::Client::open(url)?.get_connection()?);
            run().map_err(|e| {
                let kind = if e.is_io_error() || e.is_connection_refusal() { "connect" } else { "backend" };
                StoreError { kind, message: e.to_string() }
            })
        })
    }
}

