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

/// An endpoint in the one form §9's rules compare (docs/api.md §9), so that every
/// spelling of an address has the same form (RFC 3986 §6.2.2, §6.2.3): scheme and host
/// in lower case, no default port and no leading zeros in a port, `/` for an empty
/// path, dot segments resolved, percent-encoding with unreserved characters decoded
/// and other hex digits in upper case, and no fragment (it is never sent). `None` for
/// what is not an absolute URL.
pub fn normal_endpoint(address: &str) -> Option<String> {
    let url = url::Url::parse(address).ok()?;
    let mut normal = url[..url::Position::BeforePath].to_string();
    normal.push_str(&normal_percent_encoding(url.path()));
    if let Some(query) = url.query() {
        normal.push('?');
        normal.push_str(&normal_percent_encoding(query));
    }
    Some(normal)
}

/// `%XX` of an unreserved character becomes the character; any other `%xx` becomes
/// `%XX`. Everything else stays, a `%` without two hex digits too.
fn normal_percent_encoding(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit));
        match (bytes[i], hex) {
            (b'%', Some(hex)) => {
                let hex = std::str::from_utf8(hex).expect("hex digits are ASCII");
                let byte = u8::from_str_radix(hex, 16).expect("two hex digits");
                if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                    out.push(byte as char);
                } else {
                    out.push('%');
                    out.push_str(&hex.to_ascii_uppercase());
                }
                i += 3;
            }
            _ => {
                // Whole characters: a URL's path and query are ASCII after parsing,
                // but nothing here relies on it.
                let c = text[i..].chars().next().expect("inside the text");
                out.push(c);
                i += c.len_utf8();
            }
        }
    }
    out
}

/// A watcher as stored, for [`upgrade_watchers`].
#[derive(Debug, Clone)]
pub struct StoredWatcher {
    pub pk: i64,
    pub owner: String,
    pub id: String,
    pub pattern: String,
    pub address: String,
}

/// What [`upgrade_watchers`] changes.
#[derive(Debug, Default)]
pub struct WatcherUpgrade {
    /// Endpoints that take their normal form: (pk, normal form).
    pub normalised: Vec<(i64, String)>,
    /// Watchers removed because another one sends the same events to the same
    /// endpoint: (pk, how it ended).
    pub removed: Vec<(i64, Ended)>,
}

/// Brings watchers stored by versions that compared endpoints as written up to the
/// rules: every endpoint takes its normal form; where one owner's watchers on one
/// endpoint then overlap, the broadest pattern (of equal ones, the oldest watcher)
/// stays and the watchers it covers are removed, so that no endpoint keeps getting an
/// event twice and none gets fewer events than before.
pub fn upgrade_watchers(mut watchers: Vec<StoredWatcher>, now: i64) -> WatcherUpgrade {
    let mut upgrade = WatcherUpgrade::default();
    for watcher in &mut watchers {
        if let Some(normal) = normal_endpoint(&watcher.address) {
            if normal != watcher.address {
                upgrade.normalised.push((watcher.pk, normal.clone()));
                watcher.address = normal;
            }
        }
    }
    // A pattern covers only patterns at least as long: broadest first, then oldest.
    watchers.sort_by_key(|w| (w.pattern.len(), w.pk));
    let mut kept: Vec<&StoredWatcher> = Vec::new();
    for watcher in &watchers {
        let covering = kept.iter().find(|k| {
            k.owner == watcher.owner
                && k.address == watcher.address
                && covers(&k.pattern, &watcher.pattern)
        });
        match covering {
            Some(k) => upgrade.removed.push((
                watcher.pk,
                Ended {
                    state: "stopped",
                    reason: format!(
                        "removed on upgrade: watcher {} with pattern {} sends every event it would to the same endpoint {}",
                        k.id, k.pattern, k.address
                    ),
                    at_ms: now,
                },
            )),
            None => kept.push(watcher),
        }
    }
    let removed: Vec<i64> = upgrade.removed.iter().map(|(pk, _)| *pk).collect();
    upgrade.normalised.retain(|(pk, _)| !removed.contains(pk));
    upgrade
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
#[derive(Debug)]
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
            filter: None,
            auth: None,
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
    fn every_spelling_of_an_endpoint_has_one_normal_form() {
        let normal = |a: &str| normal_endpoint(a).unwrap();
        for (spellings, form) in [
            (
                &[
                    "http://127.0.0.1:18796/w",
                    "HTTP://127.0.0.1:18796/w",
                    "http://127.0.0.1:18796/w#f",
                    "http://127.0.0.1:018796/w",
                    "http://127.0.0.1:18796/%77",
                    "http://127.0.0.1:18796/x/../w",
                ][..],
                "http://127.0.0.1:18796/w",
            ),
            (
                &[
                    "https://Hooks.Example.com",
                    "https://hooks.example.com:443/",
                    "https://hooks.example.com:0443",
                    "HTTPS://HOOKS.EXAMPLE.COM/#",
                ],
                "https://hooks.example.com/",
            ),
            (
                &[
                    "http://h:80/a%7eb%2fc?q=%7E%3d%3D",
                    "http://h/a~b%2Fc?q=~%3D%3D",
                ],
                "http://h/a~b%2Fc?q=~%3D%3D",
            ),
            (
                &["http://h/ä b", "http://h/%c3%a4%20b"],
                "http://h/%C3%A4%20b",
            ),
            (
                &["http://h:8080?x", "http://h:8080/?x#y"],
                "http://h:8080/?x",
            ),
            (
                &["http://h/100%zz", "http://h/100%ZZ"][..1],
                "http://h/100%zz",
            ),
        ] {
            for spelling in spellings {
                assert_eq!(normal(spelling), form, "{spelling}");
            }
            assert_eq!(normal(form), form, "the normal form is its own");
        }
        // Different addresses stay different.
        assert_ne!(normal("http://h/a"), normal("http://h/A"));
        assert_ne!(normal("http://h/a"), normal("https://h/a"));
        assert_ne!(normal("http://h/a?x"), normal("http://h/a"));
        assert_ne!(normal("http://h/a%2Fb"), normal("http://h/a/b"));
        assert_eq!(normal_endpoint("not a URL"), None);
    }

    #[test]
    fn an_upgrade_normalises_endpoints_and_keeps_one_watcher_per_event() {
        let watcher = |pk, owner: &str, pattern: &str, address: &str| StoredWatcher {
            pk,
            owner: owner.into(),
            id: format!("w-{pk}"),
            pattern: pattern.into(),
            address: address.into(),
        };
        let upgrade = upgrade_watchers(
            vec![
                watcher(1, "o", "/apps/x", "HTTP://h/w"),
                watcher(2, "o", "/apps", "http://h/w"),
                watcher(3, "o", "/apps/x", "http://h/w#f"),
                watcher(4, "o", "/apps/y", "http://h/other"),
                watcher(5, "p", "/apps/x", "http://H/w"),
                watcher(6, "o", "/apps2", "http://h:80/w"),
                watcher(7, "o", "/b", "http://h/w"),
                watcher(8, "o", "/b", "http://h/w"),
            ],
            9,
        );
        let removed: Vec<(i64, &str)> = upgrade
            .removed
            .iter()
            .map(|(pk, e)| (*pk, e.reason.as_str()))
            .collect();
        assert_eq!(
            removed.iter().map(|(pk, _)| *pk).collect::<Vec<_>>(),
            [8, 1, 3],
            "covered by /apps, or the same as an older one"
        );
        assert!(
            removed[1].1.contains("watcher w-2 with pattern /apps "),
            "{removed:?}"
        );
        assert!(
            removed[0].1.contains("watcher w-7 with pattern /b "),
            "{removed:?}"
        );
        assert!(upgrade
            .removed
            .iter()
            .all(|(_, e)| e.state == "stopped" && e.at_ms == 9));
        let mut normalised = upgrade.normalised;
        normalised.sort();
        assert_eq!(
            normalised,
            [(5, "http://h/w".to_string()), (6, "http://h/w".to_string())],
            "only the kept ones that were not in normal form"
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
        let expired = Removal::ExpiredAt {
            now_ms: 5,
            notice_ms: 0,
        };
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
