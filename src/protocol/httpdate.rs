//! IMF-fixdate (RFC 9110 §5.6.7), the format of `X-Goog-Channel-Expiration`:
//! `Tue, 19 Nov 2013 01:13:52 GMT`.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};

const FORMAT: &str = "%a, %d %b %Y %H:%M:%S GMT";
const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Formats milliseconds since the Unix epoch (sub-second part dropped). Written out
/// by hand, calendar included: it runs each time a channel's worker wakes, which one
/// event to 100k channels does 100k times.
pub fn format_ms(ms: i64) -> Option<String> {
    let seconds = ms.div_euclid(1000);
    let (days, second_of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    if !(0..=9999).contains(&year) {
        return None;
    }
    // 1970-01-01 was a Thursday, the fourth day from Monday.
    let weekday = WEEKDAYS[(days + 3).rem_euclid(7) as usize];
    let mut out = String::with_capacity(29);
    out.push_str(weekday);
    out.push_str(", ");
    push_digits(&mut out, day as u32, 2);
    out.push(' ');
    out.push_str(MONTHS[month as usize - 1]);
    out.push(' ');
    push_digits(&mut out, year as u32, 4);
    out.push(' ');
    push_digits(&mut out, (second_of_day / 3600) as u32, 2);
    out.push(':');
    push_digits(&mut out, (second_of_day / 60 % 60) as u32, 2);
    out.push(':');
    push_digits(&mut out, (second_of_day % 60) as u32, 2);
    out.push_str(" GMT");
    Some(out)
}

/// `n` as exactly `width` decimal digits (it has no more).
fn push_digits(out: &mut String, n: u32, width: u32) {
    for place in (0..width).rev() {
        out.push(char::from(b'0' + (n / 10u32.pow(place) % 10) as u8));
    }
}

/// The proleptic Gregorian (year, month 1–12, day 1–31) of a day counted from
/// 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
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

    /// Checks `format_ms` against chrono's strftime from `from` (ms) up to `to`, every
    /// `step`; and that `parse` reads it back.
    fn agrees_with_strftime(from: i64, to: i64, step: i64) {
        let mut ms = from;
        while ms < to {
            let expected = Utc
                .timestamp_millis_opt(ms)
                .unwrap()
                .format(FORMAT)
                .to_string();
            assert_eq!(format_ms(ms).unwrap(), expected);
            assert_eq!(parse(&expected).unwrap().timestamp(), ms.div_euclid(1000));
            ms += step;
        }
    }

    #[test]
    fn agrees_with_strftime_across_the_calendar() {
        // Every weekday, month, leap day and single-digit field over several centuries.
        agrees_with_strftime(0, 8_000_000_000_000, 86_400_000 * 3 + 3_723_000);
    }

    #[test]
    fn agrees_with_strftime_before_1970_and_at_the_years_it_can_write() {
        let year_0 = -62_167_219_200_000; // 0000-01-01T00:00:00Z
        let year_10000 = 253_402_300_800_000; // 10000-01-01T00:00:00Z
                                              // 997 days, 1 h 2 min 3.999 s
        agrees_with_strftime(year_0, year_10000, 86_400_000 * 997 + 3_723_999);
        assert_eq!(format_ms(year_0).unwrap(), "Sat, 01 Jan 0000 00:00:00 GMT");
        assert_eq!(
            format_ms(year_10000 - 1).unwrap(),
            "Fri, 31 Dec 9999 23:59:59 GMT"
        );
        assert_eq!(format_ms(-1).unwrap(), "Wed, 31 Dec 1969 23:59:59 GMT");
        assert!(format_ms(year_0 - 1).is_none());
        assert!(format_ms(year_10000).is_none());
    }

    #[test]
    fn rejects_other_formats() {
        assert!(parse("2013-11-19T01:13:52Z").is_none());
        assert!(parse("").is_none());
    }
}
