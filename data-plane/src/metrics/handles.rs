//! Metric handles kept per worker thread, so the request path does not rebuild them.
//!
//! `metrics`' macros build a key (the name and every label, owned) and look it up in the
//! recorder's registry on every call: for the few metrics recorded on every request that was
//! about a tenth of the proxy's instructions per request (callgrind). Here a call site's
//! handles are built once per distinct label values on each worker thread and then cloned (an
//! `Arc` each). The recorder keeps no idle timeout, so a kept handle always records into the
//! series it was made for.
//!
//! Bounded: a thread keeps at most [`MAX_ENTRIES`] label sets and starts afresh past that (a
//! caller typing ever new model names cannot grow it without bound; capped labels still apply
//! when a handle is built).

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::rc::Rc;

/// Label sets kept per thread, over all call sites.
pub const MAX_ENTRIES: usize = 4096;

struct Entry {
    site: &'static str,
    values: Box<[Box<str>]>,
    handles: Rc<dyn Any>,
}

#[derive(Default)]
struct Cache {
    by_hash: HashMap<u64, Vec<Entry>>,
    len: usize,
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache::default());
}

/// The handles of call site `site` for label `values`, built by `make` the first time this
/// thread sees them. `site` must name one kind of `H` (the handles a call site records into).
pub fn cached<H: Clone + 'static>(
    site: &'static str,
    values: &[&str],
    make: impl FnOnce() -> H,
) -> H {
    let mut hasher = DefaultHasher::new();
    site.hash(&mut hasher);
    values.hash(&mut hasher);
    let hash = hasher.finish();
    let found = CACHE.with_borrow(|cache| {
        cache.by_hash.get(&hash).and_then(|entries| {
            entries
                .iter()
                .find(|e| {
                    e.site == site
                        && e.values.len() == values.len()
                        && e.values.iter().zip(values).all(|(a, b)| &**a == *b)
                })
                .and_then(|e| e.handles.downcast_ref::<H>().cloned())
        })
    });
    if let Some(handles) = found {
        return handles;
    }
    let handles = make();
    CACHE.with_borrow_mut(|cache| {
        if cache.len >= MAX_ENTRIES {
            *cache = Cache::default();
        }
        cache.len += 1;
        cache.by_hash.entry(hash).or_default().push(Entry {
            site,
            values: values.iter().map(|v| Box::from(*v)).collect(),
            handles: Rc::new(handles.clone()),
        });
    });
    handles
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn built_once_per_site_and_values_and_bounded() {
        let built = Cell::new(0);
        let make = |n: u32| {
            built.set(built.get() + 1);
            n
        };
        assert_eq!(cached("a", &["x", "y"], || make(1)), 1);
        assert_eq!(cached("a", &["x", "y"], || make(2)), 1, "kept");
        assert_eq!(cached("a", &["x", "z"], || make(3)), 3, "other values");
        assert_eq!(cached("b", &["x", "y"], || make(4)), 4, "other site");
        assert_eq!(
            cached("a", &["xy"], || make(5)),
            5,
            "values are not concatenated"
        );
        assert_eq!(built.get(), 4);
        for i in 0..MAX_ENTRIES {
            cached("many", &[&i.to_string()], || 0u32);
        }
        assert!(CACHE.with_borrow(|c| c.len) <= MAX_ENTRIES);
        assert_eq!(
            cached("a", &["x", "y"], || make(6)),
            6,
            "dropped when the cache filled"
        );
    }
}
