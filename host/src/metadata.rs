//! The per-request metadata bag plugins use to pass facts along the chain
//! (`jwt.sub`, `ratelimit.remaining`, …).
//!
//! Every key and value lives in one string buffer, so a chain that sets a
//! dozen entries makes two or three allocations instead of two per entry.
//! Overwriting a key appends the new value; the old bytes stay unused until
//! the request ends.

/// Key/value metadata for one request. Later writes of a key win.
#[derive(Default, Debug)]
pub struct Metadata {
    buf: String,
    /// `(key_start, value_start, value_end)` offsets into `buf`.
    entries: Vec<(u32, u32, u32)>,
}

/// Room reserved on the first write: enough for a typical JWT's claims.
const FIRST_BYTES: usize = 512;
const FIRST_ENTRIES: usize = 12;

impl Metadata {
    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.position(key).map(|i| {
            let (_, v, end) = self.entries[i];
            &self.buf[v as usize..end as usize]
        })
    }

    /// Sets `key` to `value`.
    pub fn set(&mut self, key: &str, value: &str) {
        if self.entries.is_empty() {
            self.buf.reserve(FIRST_BYTES);
            self.entries.reserve(FIRST_ENTRIES);
        }
        let found = self.position(key);
        let key_start = self.buf.len() as u32;
        self.buf.push_str(key);
        let value_start = self.buf.len() as u32;
        self.buf.push_str(value);
        let entry = (key_start, value_start, self.buf.len() as u32);
        match found {
            Some(i) => self.entries[i] = entry,
            None => self.entries.push(entry),
        }
    }

    /// Every `(key, value)`, in first-set order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|&(k, v, end)| (&self.buf[k as usize..v as usize], &self.buf[v as usize..end as usize]))
    }

    /// Compares lengths first and bytes only when they agree: slicing the
    /// `String` per entry (a char-boundary check at each end) and a `memcmp`
    /// call per key cost ~120 instructions a lookup with a JWT's worth of
    /// entries, on every `get` and `set` of the chain.
    ///
    /// Keys of one length (`jwt.sub`, `jwt.iss`, `jwt.aud`) are told apart by
    /// their last byte before a full compare.
    fn position(&self, key: &str) -> Option<usize> {
        let (buf, key) = (self.buf.as_bytes(), key.as_bytes());
        let len = key.len();
        self.entries.iter().position(|&(k, v, _)| {
            let (k, v) = (k as usize, v as usize);
            v - k == len && (len == 0 || buf[v - 1] == key[len - 1]) && buf[k..v] == *key
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_get_and_overwrite() {
        let mut m = Metadata::default();
        assert_eq!(m.get("jwt.sub"), None);
        m.set("jwt.sub", "alice");
        m.set("ratelimit.key", "10.0.0.1");
        m.set("jwt.sub", "bob");
        assert_eq!(m.get("jwt.sub"), Some("bob"));
        assert_eq!(m.get("ratelimit.key"), Some("10.0.0.1"));
        let all: Vec<_> = m.iter().collect();
        assert_eq!(all, [("jwt.sub", "bob"), ("ratelimit.key", "10.0.0.1")]);
    }

    #[test]
    fn a_key_that_prefixes_another_is_distinct() {
        let mut m = Metadata::default();
        m.set("a", "bc");
        m.set("ab", "c");
        assert_eq!((m.get("a"), m.get("ab")), (Some("bc"), Some("c")));
    }

    #[test]
    fn keys_of_one_length_are_told_apart_by_their_bytes() {
        let mut m = Metadata::default();
        m.set("jwt.sub", "ada");
        m.set("jwt.iss", "covet");
        m.set("jwt.sub", "bob");
        assert_eq!((m.get("jwt.sub"), m.get("jwt.iss"), m.get("jwt.aud")), (Some("bob"), Some("covet"), None));
        assert_eq!(m.iter().count(), 2);
        m.set("", "empty key");
        assert_eq!((m.get(""), m.get("jwt.sub")), (Some("empty key"), Some("bob")));
    }
}
