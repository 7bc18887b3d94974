//! Reference-counted, immutable parts of a [`crate::Response`]: [`Body`] and
//! [`Headers`]. Cloning one is an atomic increment, so a handler that answers
//! with a prebuilt response (static content, a cached page) copies nothing
//! per request, and the host hands the body to the socket without copying it
//! either. Editing a shared value copies it first (copy on write).

use std::ops::Deref;

use abi_stable::{
    StableAbi,
    std_types::{RArc, RVec},
};

use crate::Header;

/// A response body: immutable bytes shared by reference count.
#[repr(transparent)]
#[derive(StableAbi, Clone, PartialEq, Eq)]
pub struct Body(RArc<RVec<u8>>);

impl Body {
    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        self.0.as_slice()
    }

    /// Whether another owner holds these bytes too (a prebuilt response the
    /// plugin keeps); the host caches its conversion of such bodies.
    pub fn is_shared(&self) -> bool {
        RArc::strong_count(&self.0) > 1
    }

    /// Whether both are the same shared bytes (identity, not equality).
    pub fn same(&self, other: &Body) -> bool {
        std::ptr::eq(&*self.0, &*other.0)
    }
}

impl Default for Body {
    fn default() -> Body {
        Body::from(Vec::new())
    }
}

impl From<Vec<u8>> for Body {
    fn from(bytes: Vec<u8>) -> Body {
        Body(RArc::new(RVec::from(bytes)))
    }
}

impl Deref for Body {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for Body {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Body({:?})", String::from_utf8_lossy(self.as_slice()))
    }
}

/// Response headers, in order, shared by reference count.
#[repr(transparent)]
#[derive(StableAbi, Clone, PartialEq, Eq, Debug)]
pub struct Headers(RArc<RVec<Header>>);

impl Headers {
    /// Appends a header (copying the list first if it is shared).
    pub fn push(&mut self, header: Header) {
        RArc::make_mut(&mut self.0).push(header);
    }

    /// Whether another owner holds this list too (a prebuilt response the
    /// plugin keeps); the host caches its conversion of such lists.
    pub fn is_shared(&self) -> bool {
        RArc::strong_count(&self.0) > 1
    }

    /// Whether both are the same shared list (identity, not equality).
    pub fn same(&self, other: &Headers) -> bool {
        std::ptr::eq(&*self.0, &*other.0)
    }
}

impl Default for Headers {
    fn default() -> Headers {
        Headers::from(Vec::new())
    }
}

impl From<Vec<Header>> for Headers {
    fn from(headers: Vec<Header>) -> Headers {
        Headers(RArc::new(RVec::from(headers)))
    }
}

impl Deref for Headers {
    type Target = [Header];
    fn deref(&self) -> &[Header] {
        self.0.as_slice()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_and_edits_copy() {
        let mut a = Headers::from(vec![Header::new("x-a", "1")]);
        let b = a.clone();
        a.push(Header::new("x-b", "2"));
        assert_eq!((a.len(), b.len()), (2, 1));
        assert!(!a.is_shared() && !b.is_shared() && !a.same(&b));
        let body = Body::from(b"hi".to_vec());
        let copy = body.clone();
        assert!(body.is_shared() && body.same(&copy));
        assert_eq!(&*copy, b"hi");
    }
}
