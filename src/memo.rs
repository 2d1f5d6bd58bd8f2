//! A bounded memo by string key: values computed once and handed out again, for work
//! that many callers repeat on few keys (a resource's id at watch time, a webhook
//! address at each wake-up). At its bound it starts over: computing again is cheap,
//! so a plain bound is enough, and it never grows with the number of distinct keys.

use std::collections::HashMap;
use std::sync::Mutex;

pub struct Memo<V> {
    bound: usize,
    known: Mutex<HashMap<Box<str>, V>>,
}

impl<V: Clone> Memo<V> {
    pub fn new(bound: usize) -> Memo<V> {
        Memo {
            bound,
            known: Mutex::new(HashMap::new()),
        }
    }

    /// The value of `key`, made by `make` the first time (outside the lock).
    pub fn get_or_make(&self, key: &str, make: impl FnOnce() -> V) -> V {
        if let Some(known) = self.known.lock().unwrap().get(key) {
            return known.clone();
        }
        let made = make();
        let mut known = self.known.lock().unwrap();
        if known.len() >= self.bound {
            known.clear();
        }
        known.insert(key.into(), made.clone());
        made
    }

    /// Keys held now (at most the bound).
    #[allow(clippy::len_without_is_empty)] // a bound is what callers check
    pub fn len(&self) -> usize {
        self.known.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_once_per_key_until_the_bound_starts_it_over() {
        let memo = Memo::new(2);
        let made = std::cell::Cell::new(0);
        let get = |key: &str| {
            memo.get_or_make(key, || {
                made.set(made.get() + 1);
                key.len()
            })
        };
        assert_eq!(get("a"), 1);
        assert_eq!(get("a"), 1);
        assert_eq!(get("bb"), 2);
        assert_eq!(made.get(), 2, "each key made once");
        let mut made_after = 0;
        // A third key reaches the bound: the memo starts over, the answers stay right.
        assert_eq!(
            memo.get_or_make("ccc", || {
                made_after += 1;
                3
            }),
            3
        );
        assert_eq!(
            memo.get_or_make("a", || {
                made_after += 1;
                1
            }),
            1
        );
        assert_eq!(made_after, 2);
        assert!(memo.len() <= 2);
    }
}
