//! Durations on the command line: `500ms`, `5s`, `2m`, `24h`, `7d`, always with a unit.

use std::time::Duration;

/// Parses `250ms`, `5s`, `1.5s`, `2m`, `1h`, `7d`. A unit is required: a bare `5`
/// could mean seconds or milliseconds, and guessing wrong is silent (docs/api.md §12).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 500ms, 5s, 2m, 24h or 7d"))?;
    let seconds = match unit {
        "" => return Err(format!("{s:?} needs a unit: 500ms, 5s, 2m, 24h or 7d")),
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        "d" => value * 86400.0,
        _ => return Err(format!("{s:?} has an unknown unit; use ms, s, m, h or d")),
    };
    // Far beyond any sensible setting, and times that far ahead no longer fit the
    // timestamps the API shows (a retry due then, a channel expiring then).
    if seconds > MAX_DAYS * 86400.0 {
        return Err(format!("{s:?} is longer than 100 years ({MAX_DAYS}d)"));
    }
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("{s:?} is out of range"))
}

/// The longest duration an option takes.
const MAX_DAYS: f64 = 36500.0;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
        let bare = parse_duration("5").unwrap_err();
        assert_eq!(bare, r#""5" needs a unit: 500ms, 5s, 2m, 24h or 7d"#);
        assert!(parse_duration("0").unwrap_err().contains("needs a unit"));
        assert!(parse_duration("ms").is_err() && parse_duration("1.2.3s").is_err());
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(
            parse_duration("7d").unwrap(),
            Duration::from_secs(7 * 86400)
        );
        assert!(parse_duration("5 parsecs").is_err());
        assert_eq!(parse_duration("36500d").unwrap().as_secs(), 36500 * 86400);
        let err = parse_duration("99999999999d").unwrap_err();
        assert!(err.contains("longer than 100 years"), "{err}");
        assert!(parse_duration("").is_err());
    }
}
