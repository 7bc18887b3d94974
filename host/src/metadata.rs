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
        let key_start = self.buf.len() as u32;
        self.buf.push_str(key);
        let value_start = self.buf.len() as u32;
        self.buf.push_str(value);
        let entry = (key_start, value_start, self.buf.len() as u32);
        match self.position(key) {
            Some(i) => self.entries[i] = entry,
            None => self.entries.push(entry),
        }
    }

    /// Every `(key, value)`, in first-set order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|&(k, v, end)| (&self.buf[k as usize..v as usize], &self.buf[v as usize..end as usize]))
    }

    fn position(&self, key: &str) -> Option<usize> {
        self.entries.iter().position(|&(k, v, _)| &self.buf[k as usize..v as usize] == key)
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
}
