//! IMF-fixdate (RFC 9110 §5.6.7), the format of `X-Goog-Channel-Expiration`:
//! `Tue, 19 Nov 2013 01:13:52 GMT`.

use chrono::{DateTime, Datelike, NaiveDateTime, TimeZone, Timelike, Utc};

const FORMAT: &str = "%a, %d %b %Y %H:%M:%S GMT";
const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Formats milliseconds since the Unix epoch (sub-second part dropped). Written out
/// by hand rather than through `strftime`: it runs for every notification sent.
pub fn format_ms(ms: i64) -> Option<String> {
    let dt = Utc.timestamp_millis_opt(ms).single()?;
    if !(0..=9999).contains(&dt.year()) {
        return None;
    }
    Some(format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[dt.weekday().num_days_from_monday() as usize],
        dt.day(),
        MONTHS[dt.month0() as usize],
        dt.year(),
        dt.hour(),
        dt.minute(),
        dt.second()
    ))
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
    fn agrees_with_strftime_across_the_calendar() {
        // Every weekday, month, leap day and single-digit field over several centuries.
        let mut ms: i64 = 0;
        while ms < 8_000_000_000_000 {
            let expected = Utc
                .timestamp_millis_opt(ms)
                .unwrap()
                .format(FORMAT)
                .to_string();
            assert_eq!(format_ms(ms).unwrap(), expected);
            assert_eq!(parse(&expected).unwrap().timestamp(), ms / 1000);
            ms += 86_400_000 * 3 + 3_723_000; // 3 days, 1 h 2 min 3 s
        }
    }

    #[test]
    fn rejects_other_formats() {
        assert!(parse("2013-11-19T01:13:52Z").is_none());
        assert!(parse("").is_none());
    }
}
