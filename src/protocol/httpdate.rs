//! IMF-fixdate (RFC 9110 §5.6.7), the format of `X-Goog-Channel-Expiration`:
//! `Tue, 19 Nov 2013 01:13:52 GMT`.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};

const FORMAT: &str = "%a, %d %b %Y %H:%M:%S GMT";

/// Formats milliseconds since the Unix epoch (sub-second part dropped).
pub fn format_ms(ms: i64) -> Option<String> {
    let dt = Utc.timestamp_millis_opt(ms).single()?;
    Some(dt.format(FORMAT).to_string())
}

/// Parses an IMF-fixdate into a UTC time.
pub fn parse(s: &str) -> Option<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(s.trim(), FORMAT)
        .ok()
        .map(|naive| Utc.from_utc_datetime(&naive))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_googles_example() {
        // 1384823632000 ms = Tue, 19 Nov 2013 01:13:52 GMT (Google's documented example).
        assert_eq!(
            format_ms(1_384_823_632_000).unwrap(),
            "Tue, 19 Nov 2013 01:13:52 GMT"
        );
        assert_eq!(
            parse("Tue, 19 Nov 2013 01:13:52 GMT")
                .unwrap()
                .timestamp_millis(),
            1_384_823_632_000
        );
    }

    #[test]
    fn rejects_other_formats() {
        assert!(parse("2013-11-19T01:13:52Z").is_none());
        assert!(parse("").is_none());
    }
}
