//! Paths known before any frame arrives, such as a server's routes. A
//! decoder given them hands a frame whose path is one of them a static
//! [`Bytes`] instead of a slice of its read buffer: taking such a path and
//! dropping it then cost no atomic reference count, where a slice costs two
//! (one to share the buffer, one to let it go).
//!
//! The static copies are interned once per process: every distinct path
//! ever made known is kept, once, until the process ends. The memory this
//! holds is bounded by the distinct paths a program names (a server's
//! routes), never by the frames it receives.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use rustc_hash::FxHashSet;

use super::scan::same_bytes;

/// A set of known paths and the one found last. Cloning shares the set.
/// The default knows no path: every path stays a slice of the buffer it
/// arrived in.
#[derive(Debug, Clone, Default)]
pub struct KnownPaths {
    paths: Arc<FxHashSet<&'static [u8]>>,
    /// The path found last: a connection mostly sends the same one again,
    /// which then costs one comparison instead of a hash lookup.
    last: Option<&'static [u8]>,
}

impl KnownPaths {
    /// The set of `paths`, each interned for the rest of the process.
    pub fn new<'a>(paths: impl IntoIterator<Item = &'a [u8]>) -> KnownPaths {
        let paths = paths.into_iter().map(intern).collect::<FxHashSet<_>>();
        KnownPaths { paths: Arc::new(paths), last: None }
    }

    /// How many paths are known.
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    /// Whether no path is known.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// `path` as a static [`Bytes`], when it is one of the known paths.
    #[inline(always)]
    pub fn get(&mut self, path: &[u8]) -> Option<Bytes> {
        match self.last {
            Some(last) if same_bytes(last, path) => Some(Bytes::from_static(last)),
            // Nothing found yet: a decoder that knows no path stops here.
            None if self.paths.is_empty() => None,
            _ => self.look_up(path),
        }
    }

    /// [`KnownPaths::get`] when the path is not the one found last.
    #[inline(never)]
    fn look_up(&mut self, path: &[u8]) -> Option<Bytes> {
        let found = *self.paths.get(path)?;
        self.last = Some(found);
        Some(Bytes::from_static(found))
    }
}

/// `bytes` as a static [`Bytes`]: the copy interned for the process, made
/// the first time these bytes are asked for. Its clones and drops touch no
/// reference count.
pub fn interned(bytes: &[u8]) -> Bytes {
    Bytes::from_static(intern(bytes))
}

/// The process's one copy of `bytes`.
fn intern(bytes: &[u8]) -> &'static [u8] {
    static INTERNED: OnceLock<Mutex<HashSet<&'static [u8]>>> = OnceLock::new();
    let mut interned = INTERNED.get_or_init(Default::default).lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(known) = interned.get(bytes) {
        return known;
    }
    let copy: &'static [u8] = Box::leak(bytes.to_vec().into_boxed_slice());
    interned.insert(copy);
    copy
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_path_is_static_and_interned_once() {
        let mut known = KnownPaths::new([b"/echo".as_slice(), b"/add"]);
        assert_eq!(known.len(), 2);
        let first = known.get(b"/echo").expect("known");
        let again = known.get(b"/echo").expect("known, found last");
        let other = known.get(b"/add").expect("known");
        assert_eq!((&first[..], &other[..]), (b"/echo".as_slice(), b"/add".as_slice()));
        // The same interned bytes every time, and for a second set too.
        assert_eq!(first.as_ptr(), again.as_ptr());
        let mut second = KnownPaths::new([b"/echo".as_slice()]);
        assert_eq!(second.get(b"/echo").expect("known").as_ptr(), first.as_ptr());
        assert_eq!(interned(b"/echo").as_ptr(), first.as_ptr());
    }

    #[test]
    fn an_unknown_path_is_not_found() {
        let mut known = KnownPaths::new([b"/echo".as_slice()]);
        assert_eq!(known.get(b"/echo?x=1"), None);
        assert_eq!(known.get(b"/ech"), None);
        assert_eq!(known.get(b""), None);
        // Found last, then asked for another.
        assert!(known.get(b"/echo").is_some());
        assert_eq!(known.get(b"/other"), None);
        let mut none = KnownPaths::default();
        assert!(none.is_empty());
        assert_eq!(none.get(b"/echo"), None);
    }
}
