//! The spec's rules that a store enforces inside its transactions, written once for
//! every backend (docs/api.md §6, §9, §10). A backend supplies what its database holds
//! and the serialisation that makes the check and the write one step; the decision is
//! here.

use std::collections::HashMap;

use super::{Idempotency, PublishReceipt, StoreError};
use crate::model::{ChannelSpec, Seq, SharedEvent};
use crate::protocol::resource::{collection, covers, self_and_ancestors};

/// How long an Idempotency-Key is remembered (docs/api.md §6).
pub const IDEMPOTENCY_WINDOW_MS: i64 = 24 * 3600 * 1000;

/// A publish remembered under an Idempotency-Key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RememberedPublish {
    pub body_hash: String,
    pub last_seq: Seq,
    pub count: usize,
    pub created_ms: i64,
}

/// What a publish with an Idempotency-Key does, given what was remembered under it:
/// `None` to publish; `Some(answer)` to answer without publishing — the first answer
/// again for the same body within the window, a conflict for another body.
pub fn idempotent_answer(
    remembered: Option<RememberedPublish>,
    request: &Idempotency,
    now_ms: i64,
) -> Option<Result<PublishReceipt, StoreError>> {
    let earlier = remembered.filter(|r| r.created_ms > now_ms - IDEMPOTENCY_WINDOW_MS)?;
    Some(if earlier.body_hash == request.body_hash {
        Ok(PublishReceipt {
            last_seq: earlier.last_seq,
            count: earlier.count,
            replayed: true,
        })
    } else {
        Err(StoreError::IdempotencyConflict)
    })
}

/// The rules that keep one owner's watchers from delivering an event twice to one
/// endpoint (docs/api.md §9), with the messages they are known by and the watcher the
/// new one conflicts with. `existing` are the owner's watchers on the same endpoint, as
/// (id, pattern).
pub fn watcher_conflict(
    new: &ChannelSpec,
    existing: impl IntoIterator<Item = (String, String)>,
) -> Option<StoreError> {
    existing.into_iter().find_map(|(id, pattern)| {
        let rule = if *pattern == *new.resource {
            "Record already exists"
        } else if covers(&new.resource, &pattern) {
            "Pattern would overwrite existing"
        } else if covers(&pattern, &new.resource) {
            "Pattern is already provided"
        } else {
            return None;
        };
        Some(StoreError::WatcherConflict {
            rule,
            existing: (id, pattern),
        })
    })
}

/// One entry of the polling index (docs/api.md §7): the newest event on or below a
/// path, and whether the path is a collection (the parent of a published resource).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixUpdate<'a> {
    pub path: &'a str,
    pub last_seq: Seq,
    pub is_collection: bool,
}

/// What committed events change in the polling index: every path on or above each
/// event, with the newest seq there. Computed once per transaction, not per publish:
/// single-event publishes that share a commit mostly share their ancestors too.
pub fn prefix_updates<'a>(events: impl Iterator<Item = &'a SharedEvent>) -> Vec<PrefixUpdate<'a>> {
    let mut touched: HashMap<&str, (Seq, bool)> = HashMap::new();
    for event in events {
        let parent = collection(&event.resource);
        for path in self_and_ancestors(&event.resource) {
            let entry = touched.entry(path).or_insert((0, false));
            entry.0 = entry.0.max(event.seq);
            entry.1 |= path == parent;
        }
    }
    touched
        .into_iter()
        .map(|(path, (last_seq, is_collection))| PrefixUpdate {
            path,
            last_seq,
            is_collection,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ChannelKind;

    fn watcher(pattern: &str) -> ChannelSpec {
        ChannelSpec {
            kind: ChannelKind::Watcher,
            owner: "o".into(),
            id: "w-new".into(),
            resource: pattern.into(),
            resource_id: "".into(),
            resource_uri: "".into(),
            address: "https://example.com/".into(),
            token: None,
            expiration_ms: None,
            params: None,
            payload: true,
            signing_secret: None,
            created_ms: 0,
        }
    }

    fn rule(new: &str, existing: &str) -> Option<&'static str> {
        match watcher_conflict(&watcher(new), [("w-old".to_string(), existing.to_string())]) {
            Some(StoreError::WatcherConflict { rule, existing }) => {
                assert_eq!(existing.0, "w-old");
                Some(rule)
            }
            _ => None,
        }
    }

    #[test]
    fn the_three_watcher_rules_and_siblings() {
        assert_eq!(rule("/apps", "/apps"), Some("Record already exists"));
        assert_eq!(
            rule("/apps", "/apps/x"),
            Some("Pattern would overwrite existing")
        );
        assert_eq!(
            rule("/apps/x", "/apps"),
            Some("Pattern is already provided")
        );
        assert_eq!(
            rule("/apps2", "/apps"),
            None,
            "a string prefix is not a path prefix"
        );
    }

    #[test]
    fn idempotency_replays_within_the_window_and_conflicts_on_another_body() {
        let request = Idempotency {
            owner: "o".into(),
            key: "k".into(),
            body_hash: "h".into(),
        };
        let remembered = |hash: &str, created_ms| RememberedPublish {
            body_hash: hash.into(),
            last_seq: 7,
            count: 2,
            created_ms,
        };
        let now = 100 * IDEMPOTENCY_WINDOW_MS;
        assert_eq!(idempotent_answer(None, &request, now), None);
        let replayed = idempotent_answer(Some(remembered("h", now - 1)), &request, now);
        assert_eq!(
            replayed,
            Some(Ok(PublishReceipt {
                last_seq: 7,
                count: 2,
                replayed: true
            }))
        );
        assert!(matches!(
            idempotent_answer(Some(remembered("other", now - 1)), &request, now),
            Some(Err(StoreError::IdempotencyConflict))
        ));
        let expired = remembered("other", now - IDEMPOTENCY_WINDOW_MS);
        assert_eq!(idempotent_answer(Some(expired), &request, now), None);
    }
}
