//! Resource paths (docs/api.md §1): one canonical form for watch URLs, publish bodies and
//! query parameters, and the segment-wise "covers" relation used for matching.

use std::fmt;

/// Longest canonical path accepted, in bytes.
pub const MAX_RESOURCE_BYTES: usize = 1024;

/// Leading service paths Google's client libraries may keep (docs/api.md §2).
pub const DEFAULT_SERVICE_PREFIXES: &[&str] = &[
    "/calendar/v3",
    "/drive/v2",
    "/drive/v3",
    "/storage/v1",
    "/admin/reports/v1",
    "/admin/reports_v1",
];

/// `/` alone: every resource is on or below it (docs/api.md §1), but for the gateway's
/// own [`OPERATIONAL`] events.
pub const WHOLE_NAMESPACE: &str = "/";

/// Where the gateway publishes events about its own channels (docs/api.md §18): only
/// it publishes there, only `admin` keys read it, and `/` does not cover it.
pub const OPERATIONAL: &str = "/watchwire";

/// Whether `path` is [`OPERATIONAL`] or below it.
pub fn is_operational(path: &str) -> bool {
    path.strip_prefix(OPERATIONAL)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// `text` as one canonical path segment (a `/` in it escaped).
pub fn segment(text: &str) -> String {
    percent_encode(text.as_bytes())
}

/// Paths that belong to the gateway itself and can never name a resource: the API,
/// the operations endpoints and the console's pages (`/console/watch` would otherwise
/// be a watch on a path the console's files shadow).
const RESERVED: &[&str] = &["v1", "healthz", "metrics", "console"];

/// Why a path is not a valid resource. The message is meant for a person and begins
/// with the word "resource"; [`ResourceError::named`] puts the caller's field name there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceError(pub String);

impl ResourceError {
    /// The message about the field `field` (`pattern`, `events[2].resource`, …)
    /// rather than about "resource".
    pub fn named(&self, field: &str) -> String {
        match self.0.strip_prefix("resource") {
            Some(rest) => format!("{field}{rest}"),
            None => format!("{field}: {}", self.0),
        }
    }
}

impl fmt::Display for ResourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ResourceError {}

/// The service prefixes stripped from the front of every path, as canonical segments.
#[derive(Debug, Clone)]
pub struct ServicePrefixes(Vec<Vec<String>>);

impl Default for ServicePrefixes {
    fn default() -> Self {
        ServicePrefixes::new(DEFAULT_SERVICE_PREFIXES.iter().copied()).expect("defaults are valid")
    }
}

impl ServicePrefixes {
    /// Builds the list from paths such as `/calendar/v3`; longest first so that the
    /// most specific prefix wins.
    pub fn new<'a>(prefixes: impl IntoIterator<Item = &'a str>) -> Result<Self, ResourceError> {
        let mut list = Vec::new();
        for p in prefixes {
            let segments = canonical_segments(p)?;
            if segments.is_empty() {
                return Err(ResourceError(format!("service prefix {p:?} is empty")));
            }
            list.push(segments);
        }
        list.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Ok(ServicePrefixes(list))
    }

    /// The defaults plus `extra`.
    pub fn with_extra(extra: &[String]) -> Result<Self, ResourceError> {
        ServicePrefixes::new(
            DEFAULT_SERVICE_PREFIXES
                .iter()
                .copied()
                .chain(extra.iter().map(|s| s.as_str())),
        )
    }

    /// Canonicalises a resource events are published on: `raw` (percent-encoded or
    /// not), stripping one leading service prefix. The result starts with `/`, has at
    /// least one segment (nothing is published on the whole namespace) and is not
    /// reserved.
    pub fn canonicalize(&self, raw: &str) -> Result<String, ResourceError> {
        match self.canonicalize_watched(raw)? {
            root if root == WHOLE_NAMESPACE => Err(ResourceError(format!(
                "resource {raw:?} names the whole namespace, which can be watched but not published on: give a path such as /calendars/primary/events"
            ))),
            path => Ok(path),
        }
    }

    /// Canonicalises a resource to watch, stream, poll or limit a key to: as
    /// [`ServicePrefixes::canonicalize`], but `/` (also `/calendar/v3` and the other
    /// service prefixes alone) is [`WHOLE_NAMESPACE`].
    pub fn canonicalize_watched(&self, raw: &str) -> Result<String, ResourceError> {
        let mut segments = canonical_segments(raw)?;
        if let Some(prefix) = self.0.iter().find(|p| segments.starts_with(p)) {
            segments.drain(..prefix.len());
            // Stripping a second prefix would make the canonical form name another
            // resource when it is canonicalised again; refuse instead.
            if self.0.iter().any(|p| segments.starts_with(p)) {
                return Err(ResourceError(format!(
                    "resource {raw:?} starts with two service prefixes; give the path with at most one, e.g. /calendar/v3/calendars/primary/events"
                )));
            }
        }
        if segments.is_empty() {
            return Ok(WHOLE_NAMESPACE.to_string());
        }
        if RESERVED.contains(&segments[0].as_str()) {
            return Err(ResourceError(format!(
                "resource {raw:?} is reserved: /{} belongs to the gateway itself",
                segments[0]
            )));
        }
        let path: String = segments.iter().flat_map(|s| ["/", s.as_str()]).collect();
        if path.len() > MAX_RESOURCE_BYTES {
            return Err(ResourceError(format!(
                "resource is {} bytes long in canonical form; the limit is {MAX_RESOURCE_BYTES}",
                path.len()
            )));
        }
        Ok(path)
    }
}

/// Splits a path into canonical segments: each percent-decoded and re-encoded in the
/// one normal form (RFC 3986 §6.2.2).
fn canonical_segments(raw: &str) -> Result<Vec<String>, ResourceError> {
    if raw.is_empty() {
        return Err(ResourceError(
            "resource is empty: give a path such as /calendars/primary/events".into(),
        ));
    }
    let Some(rest) = raw.strip_prefix('/') else {
        return Err(ResourceError(format!(
            "resource {raw:?} must start with '/'"
        )));
    };
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    if raw.len() > 3 * MAX_RESOURCE_BYTES {
        return Err(ResourceError(format!(
            "resource is {} bytes long; the limit is {MAX_RESOURCE_BYTES} in canonical form",
            raw.len()
        )));
    }
    rest.split('/')
        .map(|segment| {
            let decoded = percent_decode(segment).ok_or_else(|| {
                ResourceError(format!(
                    "resource {raw:?} has a malformed %-escape in segment {segment:?}"
                ))
            })?;
            match decoded.as_slice() {
                b"" => Err(ResourceError(format!(
                    "resource {raw:?} has an empty segment ('//' or a trailing '/')"
                ))),
                b"." | b".." => Err(ResourceError(format!(
                    "resource {raw:?} has a '.' or '..' segment"
                ))),
                bytes => Ok(percent_encode(bytes)),
            }
        })
        .collect()
}

/// `%XX` decoded into bytes; `None` for a `%` without two hex digits after it.
pub(crate) fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hi = (hex[0] as char).to_digit(16)?;
            let lo = (hex[1] as char).to_digit(16)?;
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

fn is_literal(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~@:!$&'()*+,;=".contains(&b)
}

fn percent_encode(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if is_literal(b) {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
    }
    out
}

/// Whether a channel on `watched` receives an event published on `published`: the same
/// path or one below it, never a sibling that only shares a string prefix. `/` covers
/// everything.
pub fn covers(watched: &str, published: &str) -> bool {
    (watched == WHOLE_NAMESPACE && !is_operational(published))
        || published
            .strip_prefix(watched)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// `path` itself, then each ancestor up to the first segment:
/// `/a/b/c` → `/a/b/c`, `/a/b`, `/a`. These are the watched paths that cover `path`.
pub fn self_and_ancestors(path: &str) -> impl Iterator<Item = &str> {
    let mut next = Some(path);
    std::iter::from_fn(move || {
        let current = next?;
        next = current.rfind('/').filter(|&i| i > 0).map(|i| &current[..i]);
        Some(current)
    })
}

/// The collection of a resource (docs/api.md §7): its parent path, or itself at the top.
pub fn collection(path: &str) -> &str {
    match path.rfind('/') {
        Some(i) if i > 0 => &path[..i],
        _ => path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(raw: &str) -> Result<String, ResourceError> {
        ServicePrefixes::default().canonicalize(raw)
    }

    #[test]
    fn encodes_one_normal_form() {
        assert_eq!(
            canon("/calendars/abc%40group.calendar.google.com/events").unwrap(),
            "/calendars/abc@group.calendar.google.com/events"
        );
        assert_eq!(
            canon("/calendars/abc@group.calendar.google.com/events").unwrap(),
            "/calendars/abc@group.calendar.google.com/events"
        );
        assert_eq!(canon("/b/my%2fdir/o").unwrap(), "/b/my%2Fdir/o");
        assert_eq!(canon("/b/a b/%7e").unwrap(), "/b/a%20b/~");
        assert_eq!(canon("/b/caf%c3%a9").unwrap(), "/b/caf%C3%A9");
        assert_eq!(canon("/b/café").unwrap(), "/b/caf%C3%A9");
    }

    #[test]
    fn strips_service_prefixes() {
        assert_eq!(
            canon("/calendar/v3/calendars/primary/events").unwrap(),
            "/calendars/primary/events"
        );
        assert_eq!(canon("/storage/v1/b/photos/o").unwrap(), "/b/photos/o");
        assert_eq!(
            canon("/admin/reports_v1/activity/users/all/applications/login").unwrap(),
            "/activity/users/all/applications/login"
        );
        assert_eq!(canon("/drive/v3/files/abc").unwrap(), "/files/abc");
        // Only a whole leading segment run is a prefix.
        assert_eq!(canon("/calendar/v33/x").unwrap(), "/calendar/v33/x");
        assert!(canon("/calendar/v3").is_err());
        // The canonical form is a fixed point: a path left starting with a prefix
        // after one is stripped would change meaning when canonicalised again.
        assert!(canon("/calendar/v3/calendar/v3/x").is_err());
        assert!(canon("/storage/v1/drive/v3/files").is_err());
        assert_eq!(canon("/calendar/v3/calendar/v33").unwrap(), "/calendar/v33");
        let custom = ServicePrefixes::with_extra(&["/gmail/v1".into()]).unwrap();
        assert_eq!(
            custom.canonicalize("/gmail/v1/users/me").unwrap(),
            "/users/me"
        );
    }

    #[test]
    fn rejects_bad_paths() {
        for bad in [
            "",
            "relative",
            "/",
            "//a",
            "/a//b",
            "/a/",
            "/a/./b",
            "/a/../b",
            "/a/%2E%2E/b",
            "/a/%zz",
            "/a/%4",
            "/v1",
            "/v1/events",
            "/healthz",
            "/metrics/x",
            "/console",
            "/console/x",
            "/storage/v1/console/x",
        ] {
            assert!(canon(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(canon(&format!("/{}", "a".repeat(1023))).is_ok());
        assert!(canon(&format!("/{}", "a".repeat(1024))).is_err());
        // Reserved only as a whole first segment.
        assert!(canon("/v1x").is_ok());
        assert!(canon("/consoles").is_ok());
        assert!(canon("/b/console").is_ok());
    }

    #[test]
    fn the_whole_namespace_is_watched_never_published_on() {
        let prefixes = ServicePrefixes::default();
        for root in ["/", "/calendar/v3", "/storage/v1"] {
            assert_eq!(prefixes.canonicalize_watched(root).as_deref(), Ok("/"));
            let refused = canon(root).unwrap_err().0;
            assert!(refused.contains("whole namespace"), "{refused}");
        }
        assert_eq!(
            prefixes.canonicalize_watched("/b/%7ex").as_deref(),
            Ok("/b/~x")
        );
        for bad in ["", "//", "/v1", "/console/x", "relative"] {
            assert!(prefixes.canonicalize_watched(bad).is_err(), "{bad:?}");
        }
        assert!(covers("/", "/a") && covers("/", "/a/b/c"));
        // The gateway's own events are not the whole namespace's.
        assert!(!covers("/", "/watchwire/events/channels/c") && !covers("/", "/watchwire"));
        assert!(covers("/watchwire", "/watchwire/events/channels/c"));
        assert!(covers("/", "/watchwirex") && !is_operational("/watchwirex"));
        assert_eq!(segment("a/b+c"), "a%2Fb+c");
    }

    #[test]
    fn covers_whole_segments_only() {
        assert!(covers("/b/photos", "/b/photos"));
        assert!(covers("/b/photos", "/b/photos/o/cat.jpg"));
        assert!(!covers("/b/photo", "/b/photos"));
        assert!(!covers("/b/photos/o", "/b/photos"));
    }

    #[test]
    fn ancestors_and_collections() {
        assert_eq!(
            self_and_ancestors("/a/b/c").collect::<Vec<_>>(),
            ["/a/b/c", "/a/b", "/a"]
        );
        assert_eq!(self_and_ancestors("/a").collect::<Vec<_>>(), ["/a"]);
        assert_eq!(collection("/b/photos/o/cat.jpg"), "/b/photos/o");
        assert_eq!(collection("/top"), "/top");
    }
}
