//! Resource states (docs/api.md §4): what `X-Goog-Resource-State` may carry.

use std::fmt;

/// The state of a notification. `Sync` opens every channel; every other state comes
/// from a published event.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ResourceState {
    Sync,
    Exists,
    NotExists,
    /// Drive states.
    Add,
    Remove,
    Update,
    Trash,
    Untrash,
    Change,
    /// An Admin-style event name such as `CREATE_USER`: `[A-Z][A-Z0-9_]{0,63}`.
    Named(String),
}

impl ResourceState {
    /// Parses a state as it appears on the wire. `None` for anything §4 does not allow.
    pub fn parse(s: &str) -> Option<ResourceState> {
        Some(match s {
            "sync" => ResourceState::Sync,
            "exists" => ResourceState::Exists,
            "not_exists" => ResourceState::NotExists,
            "add" => ResourceState::Add,
            "remove" => ResourceState::Remove,
            "update" => ResourceState::Update,
            "trash" => ResourceState::Trash,
            "untrash" => ResourceState::Untrash,
            "change" => ResourceState::Change,
            other if is_event_name(other) => ResourceState::Named(other.to_string()),
            _ => return None,
        })
    }

    /// Parses a state a backend may publish: any valid state but `sync`.
    pub fn parse_publishable(s: &str) -> Option<ResourceState> {
        ResourceState::parse(s).filter(|st| *st != ResourceState::Sync)
    }

    pub fn as_str(&self) -> &str {
        match self {
            ResourceState::Sync => "sync",
            ResourceState::Exists => "exists",
            ResourceState::NotExists => "not_exists",
            ResourceState::Add => "add",
            ResourceState::Remove => "remove",
            ResourceState::Update => "update",
            ResourceState::Trash => "trash",
            ResourceState::Untrash => "untrash",
            ResourceState::Change => "change",
            ResourceState::Named(name) => name,
        }
    }
}

impl AsRef<str> for ResourceState {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for ResourceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[A-Z][A-Z0-9_]{0,63}`
fn is_event_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_uppercase()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == b'_')
}

/// A `changed` token (docs/api.md §4): `[A-Za-z0-9_-]{1,64}`.
pub fn is_changed_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_named_state_and_round_trips() {
        for s in [
            "sync",
            "exists",
            "not_exists",
            "add",
            "remove",
            "update",
            "trash",
            "untrash",
            "change",
            "CREATE_USER",
            "X",
            "A1_B2",
        ] {
            assert_eq!(ResourceState::parse(s).unwrap().as_str(), s);
        }
    }

    #[test]
    fn rejects_unknown_states() {
        for s in [
            "",
            "Exists",
            "EXISTS ",
            "created",
            "_X",
            "1ABC",
            "a_b",
            &"A".repeat(65),
        ] {
            assert!(ResourceState::parse(s).is_none(), "{s:?}");
        }
        assert!(ResourceState::parse_publishable("sync").is_none());
        assert!(ResourceState::parse_publishable("exists").is_some());
    }

    #[test]
    fn changed_tokens() {
        assert!(is_changed_token("content"));
        assert!(is_changed_token("a-b_C9"));
        assert!(!is_changed_token(""));
        assert!(!is_changed_token("a,b"));
        assert!(!is_changed_token(&"a".repeat(65)));
    }
}
