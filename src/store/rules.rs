//! The spec's rules that a store enforces inside its transactions, written once for
//! every backend (docs/api.md §2, §6, §8, §9, §10). A backend supplies what its database holds
//! and the serialisation that makes the check and the write one step; the decision is
//! here.

use std::collections::HashMap;

use super::{Idempotency, PublishReceipt, Removal, StoreError};
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

/// How and when a channel ended, for the record it leaves (docs/api.md §8).
pub struct Ended {
    /// `stopped`, `expired` or `gone`.
    pub state: &'static str,
    pub reason: String,
    pub at_ms: i64,
}

impl Ended {
    /// How a removal ends the channels it removes.
    pub fn by(removal: &Removal, now: i64) -> Ended {
        let (state, reason) = match removal {
            Removal::Stop { .. } => ("stopped", "stopped with channels.stop".to_string()),
            Removal::Watcher { .. } => ("stopped", "deleted with DELETE /v1/watchers/{id}".into()),
            Removal::Gone { reason, .. } => ("gone", reason.clone()),
            Removal::ExpiredAt { .. } => ("expired", "it reached its expiration".into()),
        };
        Ended {
            state,
            reason,
            at_ms: now,
        }
    }
}

/// A new channel asks for an id that one of its owner's channels holds: refused while
/// that channel lives; once it has expired, it ends and the new channel takes the id.
pub fn take_over_id(id: &str, expiration_ms: Option<i64>, now: i64) -> Result<Ended, StoreError> {
    if expiration_ms.is_none_or(|ms| ms > now) {
        return Err(StoreError::DuplicateChannel(id.into()));
    }
    Ok(Ended {
        state: "expired",
        reason: "it expired; a new channel took its id".into(),
        at_ms: now,
    })
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
            within: None,
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
        // The whole namespace covers every pattern.
        assert_eq!(rule("/", "/"), Some("Record already exists"));
        assert_eq!(rule("/", "/apps"), Some("Pattern would overwrite existing"));
        assert_eq!(rule("/apps/x", "/"), Some("Pattern is already provided"));
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

    #[test]
    fn an_id_is_taken_over_only_from_an_expired_channel() {
        let now = 1_000;
        for live in [None, Some(now + 1)] {
            assert!(matches!(
                take_over_id("c", live, now),
                Err(StoreError::DuplicateChannel(id)) if id == "c"
            ));
        }
        let ended = take_over_id("c", Some(now), now).unwrap();
        assert_eq!((ended.state, ended.at_ms), ("expired", now));
        assert!(ended.reason.contains("new channel took its id"));
    }

    #[test]
    fn each_removal_says_how_its_channels_ended() {
        let gone = Removal::Gone {
            pk: 1,
            reason: "the receiver answered 410 Gone".into(),
        };
        let watcher = Removal::Watcher {
            owner: "o".into(),
            id: "w".into(),
        };
        let expired = Removal::ExpiredAt { now_ms: 5 };
        let by = |r: &Removal| {
            let e = Ended::by(r, 7);
            (e.state, e.reason, e.at_ms)
        };
        assert_eq!(
            by(&gone),
            ("gone", "the receiver answered 410 Gone".into(), 7)
        );
        assert_eq!(by(&watcher).0, "stopped");
        assert!(by(&watcher).1.contains("DELETE /v1/watchers"));
        assert_eq!(by(&expired).0, "expired");
    }
}
