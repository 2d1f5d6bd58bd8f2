//! Verification of Standard Webhooks signature headers (docs/api.md §10), for watchwire's
//! notifications or any other Standard Webhooks sender.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::error::SignatureError;
use super::headers::Picked;
use crate::protocol::headers as h;
use crate::protocol::signature::SigningSecret;

/// How far `webhook-timestamp` may be from the receiver's clock, either way.
pub const DEFAULT_SIGNATURE_TOLERANCE: Duration = Duration::from_secs(5 * 60);

const SIGNATURE_HEADERS: &[&str] = &[h::WEBHOOK_ID, h::WEBHOOK_TIMESTAMP, h::WEBHOOK_SIGNATURE];

/// Checks that `webhook-signature` holds a `v1,` HMAC-SHA256 of
/// `webhook-id.webhook-timestamp.body` under `secret` (any one of several
/// space-separated entries, as during a key rotation), and that `webhook-timestamp` is
/// within `tolerance` of `now`, which bounds how long a captured request can be
/// replayed. Header names are matched in any letter case.
pub fn verify_signature<I, K, V>(
    secret: &SigningSecret,
    headers: I,
    body: &[u8],
    now: DateTime<Utc>,
    tolerance: Duration,
) -> Result<(), SignatureError>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
    V: AsRef<[u8]>,
{
    verify_picked(
        secret,
        &Picked::from_pairs(SIGNATURE_HEADERS, headers),
        body,
        now,
        tolerance,
    )
    .map(|_| ())
}

/// As [`verify_signature`], on headers already picked; returns the verified `webhook-id`.
pub(crate) fn verify_picked<'p, V: AsRef<[u8]>>(
    secret: &SigningSecret,
    picked: &'p Picked<V>,
    body: &[u8],
    now: DateTime<Utc>,
    tolerance: Duration,
) -> Result<&'p str, SignatureError> {
    let required = |name: &'static str| {
        picked
            .text(name)
            .map_err(|reason| SignatureError::MalformedHeader {
                header: name,
                reason,
            })?
            .ok_or(SignatureError::MissingHeader(name))
    };
    let msg_id = required(h::WEBHOOK_ID)?;
    let timestamp_text = required(h::WEBHOOK_TIMESTAMP)?;
    let signatures = required(h::WEBHOOK_SIGNATURE)?;

    let timestamp = Some(timestamp_text)
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|t| t.parse::<i64>().ok())
        .ok_or(SignatureError::MalformedHeader {
            header: h::WEBHOOK_TIMESTAMP,
            reason: "is not a number of seconds since the Unix epoch",
        })?;
    let now_secs = now.timestamp();
    let tolerance_secs = tolerance.as_secs();
    // In i128 so that no clock or header value can overflow the difference.
    let age = i128::from(now_secs) - i128::from(timestamp);
    if age > i128::from(tolerance_secs) {
        return Err(SignatureError::TimestampTooOld {
            timestamp,
            now: now_secs,
            tolerance_secs,
        });
    }
    if -age > i128::from(tolerance_secs) {
        return Err(SignatureError::TimestampInFuture {
            timestamp,
            now: now_secs,
            tolerance_secs,
        });
    }
    if !secret.verify(msg_id, timestamp, body, signatures) {
        return Err(SignatureError::Mismatch);
    }
    Ok(msg_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    // A 24-byte key; the HMAC itself is checked against the published Standard Webhooks
    // vector in protocol::signature.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const MSG_ID: &str = "ch-1-2";
    const TS: i64 = 1_700_000_000;
    const BODY: &[u8] = br#"{"k":1}"#;

    /// The valid signature of BODY.
    fn sig() -> String {
        secret().sign(MSG_ID, TS, BODY)
    }

    fn secret() -> SigningSecret {
        SigningSecret::parse(SECRET).unwrap()
    }

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(secs, 0).unwrap()
    }

    fn headers(signature: &str) -> Vec<(&'static str, String)> {
        vec![
            ("webhook-id", MSG_ID.into()),
            ("webhook-timestamp", TS.to_string()),
            ("webhook-signature", signature.into()),
        ]
    }

    fn verify(headers: Vec<(&'static str, String)>, now: i64) -> Result<(), SignatureError> {
        verify_signature(
            &secret(),
            headers,
            BODY,
            at(now),
            DEFAULT_SIGNATURE_TOLERANCE,
        )
    }

    #[test]
    fn accepts_the_standard_webhooks_vector() {
        assert_eq!(verify(headers(&sig()), TS), Ok(()));
    }

    #[test]
    fn accepts_any_of_several_signatures_during_a_key_rotation() {
        let other = SigningSecret::parse("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
            .unwrap()
            .sign(MSG_ID, TS, BODY);
        assert_eq!(verify(headers(&format!("{other} {}", sig())), TS), Ok(()));
        assert_eq!(verify(headers(&format!("{} {other}", sig())), TS), Ok(()));
        assert_eq!(verify(headers(&format!("v0,abc {}", sig())), TS), Ok(()));
        assert_eq!(verify(headers(&other), TS), Err(SignatureError::Mismatch));
    }

    #[test]
    fn rejects_a_changed_body_id_or_unknown_scheme() {
        assert_eq!(
            verify_signature(
                &secret(),
                headers(&sig()),
                b"{}",
                at(TS),
                DEFAULT_SIGNATURE_TOLERANCE
            ),
            Err(SignatureError::Mismatch)
        );
        let mut other_id = headers(&sig());
        other_id[0].1 = "msg_other".into();
        assert_eq!(verify(other_id, TS), Err(SignatureError::Mismatch));
        assert_eq!(
            verify(headers(&sig().replace("v1,", "v2,")), TS),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(headers("v1,not base64!"), TS),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn enforces_the_timestamp_tolerance_both_ways() {
        assert_eq!(verify(headers(&sig()), TS + 300), Ok(()));
        assert_eq!(verify(headers(&sig()), TS - 300), Ok(()));
        assert_eq!(
            verify(headers(&sig()), TS + 301),
            Err(SignatureError::TimestampTooOld {
                timestamp: TS,
                now: TS + 301,
                tolerance_secs: 300
            })
        );
        assert_eq!(
            verify(headers(&sig()), TS - 301),
            Err(SignatureError::TimestampInFuture {
                timestamp: TS,
                now: TS - 301,
                tolerance_secs: 300
            })
        );
        let wide = verify_signature(
            &secret(),
            headers(&sig()),
            BODY,
            at(TS + 3600),
            Duration::from_secs(3600),
        );
        assert_eq!(wide, Ok(()));
    }

    #[test]
    fn names_missing_and_malformed_headers() {
        for (i, name) in SIGNATURE_HEADERS.iter().enumerate() {
            let mut h = headers(&sig());
            h.remove(i);
            assert_eq!(verify(h, TS), Err(SignatureError::MissingHeader(name)));
        }
        for bad in [
            "",
            "-1614265330",
            "1614265330.0",
            "soon",
            "99999999999999999999",
        ] {
            let mut h = headers(&sig());
            h[1].1 = bad.into();
            let err = verify(h, TS).unwrap_err();
            assert!(
                matches!(
                    err,
                    SignatureError::MalformedHeader {
                        header: "webhook-timestamp",
                        ..
                    }
                ),
                "{bad:?}: {err:?}"
            );
        }
    }

    #[test]
    fn header_names_are_case_insensitive() {
        let upper: Vec<(String, String)> = headers(&sig())
            .into_iter()
            .map(|(k, v)| (k.to_ascii_uppercase(), v))
            .collect();
        assert_eq!(
            verify_signature(&secret(), upper, BODY, at(TS), DEFAULT_SIGNATURE_TOLERANCE),
            Ok(())
        );
    }

    #[test]
    fn extreme_clocks_do_not_overflow() {
        let h = headers(&sig());
        let far = verify_signature(
            &secret(),
            h.clone(),
            BODY,
            DateTime::<Utc>::MAX_UTC,
            Duration::MAX,
        );
        assert_eq!(far, Ok(()));
        let err = verify_signature(
            &secret(),
            h,
            BODY,
            DateTime::<Utc>::MIN_UTC,
            DEFAULT_SIGNATURE_TOLERANCE,
        )
        .unwrap_err();
        assert!(matches!(err, SignatureError::TimestampInFuture { .. }));
    }
}
