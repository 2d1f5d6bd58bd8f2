//! Property tests: whatever headers arrive, the receiver answers with a notification or
//! a typed error, never a panic, and what it answers is consistent with its input.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use watchwire::protocol::headers as h;
use watchwire::receiver::{
    verify_signature, Arrival, Channel, Notification, NotificationError, ResourceState,
    SignatureError, SigningSecret, Tracker, DEFAULT_SIGNATURE_TOLERANCE,
};

const NAMES: &[&str] = h::NOTIFICATION_HEADERS;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const NOW_SECS: i64 = 1_700_000_000;

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(NOW_SECS, 0).unwrap()
}

/// `name` with the letters whose flag is set switched to upper case.
fn recase(name: &str, flips: &[bool]) -> String {
    name.chars()
        .zip(flips.iter().chain(std::iter::repeat(&false)))
        .map(|(c, &up)| if up { c.to_ascii_uppercase() } else { c })
        .collect()
}

fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (prop::sample::select(NAMES), prop::collection::vec(any::<bool>(), 32)).prop_map(|(n, f)| recase(n, &f)),
        1 => "[A-Za-z][A-Za-z0-9-]{0,24}",
    ]
}

/// Values that are often almost right, sometimes anything at all.
fn header_value() -> impl Strategy<Value = Vec<u8>> {
    let plausible = prop::sample::select(vec![
        "ch-1",
        "tok",
        "1",
        "2",
        "0",
        "7",
        "18446744073709551615",
        "18446744073709551616",
        "-1",
        "sync",
        "exists",
        "not_exists",
        "CREATE_USER",
        "created",
        "Tue, 01 Jan 2030 00:00:00 GMT",
        "Sun, 01 Jan 2030 00:00:00 GMT",
        "content,properties",
        "a,,b",
        "{}",
        "{\"k\":1}",
        "[]",
        "/calendars/primary/events",
        "ch-1-2",
        "1700000000",
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        "",
        " ",
    ])
    .prop_map(|s| s.as_bytes().to_vec());
    prop_oneof![
        6 => plausible,
        2 => "\\PC{0,40}".prop_map(String::into_bytes),
        1 => prop::collection::vec(any::<u8>(), 0..40),
    ]
}

/// A valid event notification on `ch-1`, with every optional header.
fn valid_headers() -> Vec<(String, Vec<u8>)> {
    [
        (h::CHANNEL_ID, "ch-1"),
        (h::CHANNEL_TOKEN, "tok"),
        (h::CHANNEL_EXPIRATION, "Tue, 01 Jan 2030 00:00:00 GMT"),
        (h::RESOURCE_ID, "rid"),
        (h::RESOURCE_URI, "http://gw/calendars/primary/events"),
        (h::RESOURCE_STATE, "exists"),
        (h::MESSAGE_NUMBER, "7"),
        (h::CHANGED, "content"),
        (h::EVENT_RESOURCE, "/calendars/primary/events"),
        (h::CURSOR, "0000000000000006"),
        (h::PREVIOUS_NUMBER, "2"),
        (h::METADATA, "{}"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
    .collect()
}

#[derive(Debug, Clone)]
enum Edit {
    Remove(prop::sample::Index),
    SetValue(prop::sample::Index, Vec<u8>),
    Recase(prop::sample::Index, Vec<bool>),
    Add(String, Vec<u8>),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        any::<prop::sample::Index>().prop_map(Edit::Remove),
        (any::<prop::sample::Index>(), header_value()).prop_map(|(i, v)| Edit::SetValue(i, v)),
        (
            any::<prop::sample::Index>(),
            prop::collection::vec(any::<bool>(), 32)
        )
            .prop_map(|(i, f)| Edit::Recase(i, f)),
        (header_name(), header_value()).prop_map(|(k, v)| Edit::Add(k, v)),
    ]
}

/// A valid set with a few edits: mostly near misses, often still valid.
fn edited_valid_headers() -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
    prop::collection::vec(edit(), 0..4).prop_map(|edits| {
        let mut headers = valid_headers();
        for edit in edits {
            match edit {
                Edit::Remove(i) if !headers.is_empty() => {
                    headers.remove(i.index(headers.len()));
                }
                Edit::SetValue(i, value) if !headers.is_empty() => {
                    let at = i.index(headers.len());
                    headers[at].1 = value;
                }
                Edit::Recase(i, flips) if !headers.is_empty() => {
                    let at = i.index(headers.len());
                    headers[at].0 = recase(&headers[at].0, &flips);
                }
                Edit::Add(name, value) => headers.push((name, value)),
                _ => {}
            }
        }
        headers
    })
}

fn header_list() -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
    prop_oneof![
        edited_valid_headers(),
        prop::collection::vec((header_name(), header_value()), 0..24),
    ]
}

/// The values given for `name`, any letter case.
fn values_of<'a>(headers: &'a [(String, Vec<u8>)], name: &str) -> Vec<&'a [u8]> {
    headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_slice())
        .collect()
}

fn single_text<'a>(headers: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a str> {
    match values_of(headers, name).as_slice() {
        [one] => std::str::from_utf8(one)
            .ok()
            .map(|s| s.trim_matches([' ', '\t'])),
        _ => None,
    }
}

/// What any successful parse must agree with, and what any error must be true of.
fn check_parse_against_input(
    headers: &[(String, Vec<u8>)],
    result: &Result<Notification, NotificationError>,
) -> Result<(), TestCaseError> {
    match result {
        Ok(n) => {
            prop_assert_eq!(
                single_text(headers, h::CHANNEL_ID),
                Some(n.channel_id.as_str())
            );
            prop_assert_eq!(
                single_text(headers, h::MESSAGE_NUMBER).and_then(|s| s.parse().ok()),
                Some(n.message_number)
            );
            prop_assert!(n.message_number >= 1);
            prop_assert_eq!(
                single_text(headers, h::RESOURCE_STATE),
                Some(n.state.as_str())
            );
            prop_assert_eq!(
                single_text(headers, h::RESOURCE_ID),
                Some(n.resource_id.as_str())
            );
            prop_assert!(n.previous_number.is_none_or(|p| p < n.message_number));
        }
        Err(NotificationError::MissingHeader(name)) => {
            prop_assert!(
                values_of(headers, name).is_empty(),
                "{} reported missing but present",
                name
            );
        }
        Err(e) => {
            prop_assert!(!e.reason().is_empty() && !e.to_string().is_empty());
            if let Some(name) = e.header() {
                prop_assert!(
                    !values_of(headers, name).is_empty(),
                    "{:?} is about an absent header",
                    e
                );
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_header_list_parses_or_gives_a_typed_error(headers in header_list()) {
        let result = Notification::from_headers(headers.clone());
        check_parse_against_input(&headers, &result)?;
    }

    #[test]
    fn any_header_map_parses_or_gives_a_typed_error(headers in header_list()) {
        // Only what an HTTP stack could deliver.
        let mut map = http::HeaderMap::new();
        let mut kept = Vec::new();
        for (name, value) in headers {
            if let (Ok(n), Ok(v)) = (http::HeaderName::try_from(name.as_str()), http::HeaderValue::from_bytes(&value)) {
                map.append(n, v);
                kept.push((name, value));
            }
        }
        let result = Notification::from_headers(&map);
        check_parse_against_input(&kept, &result)?;
        prop_assert_eq!(result, Notification::from_headers(kept));
    }

    #[test]
    fn a_channel_accepts_only_what_matches_it(headers in header_list(), body in prop::collection::vec(any::<u8>(), 0..16)) {
        let channel = Channel::new("ch-1").with_token("tok").with_resource_id("rid");
        let result = channel.receive_at(headers.clone(), &body, now());
        check_parse_against_input(&headers, &result)?;
        if let Ok(n) = result {
            prop_assert_eq!(n.channel_id.as_str(), "ch-1");
            prop_assert_eq!(n.token.as_deref(), Some("tok"));
            prop_assert_eq!(n.resource_id.as_str(), "rid");
            prop_assert!(n.channel_expiration.is_none_or(|e| e >= now()));
        }
        // With a secret, nothing unsigned gets through.
        let signing = channel.with_signing_secret(SECRET).unwrap();
        if values_of(&headers, h::WEBHOOK_SIGNATURE).is_empty() {
            prop_assert!(signing.receive_at(headers, &body, now()).is_err());
        }
    }

    #[test]
    fn rendered_notifications_parse_back(
        id in "[A-Za-z0-9_+/=-]{1,64}",
        number in 2u64..,
        previous_offset in 1u64..1000,
        state in prop::sample::select(vec!["exists", "not_exists", "add", "remove", "update", "trash", "untrash", "change", "CREATE_USER", "X"]),
        token in prop::option::of("[ -~]{0,40}"),
        changed in prop::collection::vec("[A-Za-z0-9_-]{1,64}", 0..4),
        expiration_secs in prop::option::of(0i64..4_102_444_800),
        flips in prop::collection::vec(any::<bool>(), 32),
    ) {
        let previous = number.saturating_sub(previous_offset).max(1);
        let mut headers = vec![
            (h::CHANNEL_ID, id.clone()),
            (h::MESSAGE_NUMBER, number.to_string()),
            (h::RESOURCE_STATE, state.to_string()),
            (h::RESOURCE_ID, "rid".to_string()),
            (h::RESOURCE_URI, "http://gw/r".to_string()),
            (h::PREVIOUS_NUMBER, previous.to_string()),
        ];
        if let Some(token) = &token {
            headers.push((h::CHANNEL_TOKEN, token.clone()));
        }
        if !changed.is_empty() {
            headers.push((h::CHANGED, changed.join(",")));
        }
        if let Some(secs) = expiration_secs {
            headers.push((h::CHANNEL_EXPIRATION, watchwire::protocol::httpdate::format_ms(secs * 1000).unwrap()));
        }
        let recased: Vec<(String, String)> = headers.iter().map(|(k, v)| (recase(k, &flips), v.clone())).collect();
        let n = Notification::from_headers(recased).unwrap();
        prop_assert_eq!(n.channel_id, id);
        prop_assert_eq!(n.message_number, number);
        prop_assert_eq!(n.state, ResourceState::parse(state).unwrap());
        prop_assert_eq!(n.previous_number, Some(previous));
        // HTTP trims blanks around values, so a token is compared trimmed.
        prop_assert_eq!(n.token.as_deref(), token.as_deref().map(|t| t.trim_matches(' ')));
        prop_assert_eq!(n.changed, changed);
        prop_assert_eq!(n.channel_expiration.map(|e| e.timestamp()), expiration_secs);
    }

    #[test]
    fn signatures_verify_and_any_changed_byte_breaks_them(
        msg_id in "[A-Za-z0-9_-]{1,40}",
        skew in -300i64..=300,
        body in prop::collection::vec(any::<u8>(), 0..64),
        flip in any::<prop::sample::Index>(),
    ) {
        let secret = SigningSecret::parse(SECRET).unwrap();
        let ts = NOW_SECS + skew;
        let headers = |body: &[u8]| vec![
            ("webhook-id", msg_id.clone()),
            ("webhook-timestamp", ts.to_string()),
            ("webhook-signature", secret.sign(&msg_id, ts, body)),
        ];
        prop_assert_eq!(verify_signature(&secret, headers(&body), &body, now(), DEFAULT_SIGNATURE_TOLERANCE), Ok(()));
        if !body.is_empty() {
            let mut changed = body.clone();
            changed[flip.index(body.len())] ^= 0x01;
            prop_assert_eq!(
                verify_signature(&secret, headers(&body), &changed, now(), DEFAULT_SIGNATURE_TOLERANCE),
                Err(SignatureError::Mismatch)
            );
        }
    }

    #[test]
    fn the_tracker_agrees_with_an_unbounded_model(
        events in prop::collection::vec((0usize..3, 1u64..40), 0..200),
        window in 1usize..50,
    ) {
        let channels = ["a", "b", "c"];
        let mut tracker = Tracker::with_limits(window, 3);
        let mut seen: Vec<BTreeSet<u64>> = vec![BTreeSet::new(); 3];
        for (channel, number) in events {
            let arrival = tracker.observe_number(channels[channel], number, None).arrival;
            let history = &mut seen[channel];
            let expected_new = history.last().is_none_or(|&highest| number > highest);
            prop_assert_eq!(arrival == Arrival::New, expected_new);
            if arrival == Arrival::Duplicate {
                prop_assert!(history.contains(&number), "duplicate of a number never seen");
            }
            if history.len() < window && history.contains(&number) {
                prop_assert_eq!(arrival, Arrival::Duplicate, "within the window every repeat is caught");
            }
            history.insert(number);
        }
    }

    /// A handler that fails retracts what it observed (never a duplicate): the tracker
    /// then agrees with a model that only holds the numbers handled, as long as nothing
    /// fell out of the window, and never calls a number a duplicate that was not handled.
    #[test]
    fn retracting_failed_notifications_keeps_only_the_handled_numbers(
        events in prop::collection::vec((0usize..3, 1u64..40, any::<bool>()), 0..200),
        window in 1usize..50,
    ) {
        let channels = ["a", "b", "c"];
        let mut tracker = Tracker::with_limits(window, 3);
        let mut handled: Vec<BTreeSet<u64>> = vec![BTreeSet::new(); 3];
        // Numbers recorded on each channel, retracted or not: beyond the window, the
        // tracker forgets the lowest ones.
        let mut recorded = [0usize; 3];
        for (channel, number, fails) in events {
            let arrival = tracker.observe_number(channels[channel], number, None).arrival;
            let history = &mut handled[channel];
            if arrival == Arrival::Duplicate {
                prop_assert!(history.contains(&number), "duplicate of a number never handled");
                continue;
            }
            recorded[channel] += 1;
            if recorded[channel] <= window {
                let expected_new = history.last().is_none_or(|&highest| number > highest);
                prop_assert_eq!(arrival == Arrival::New, expected_new);
                prop_assert!(!history.contains(&number), "a handled number not caught as a repeat");
            }
            if fails {
                tracker.retract(channels[channel], number);
            } else {
                history.insert(number);
            }
        }
    }
}
