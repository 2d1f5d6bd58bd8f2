//! How the harness writes numbers: in the report, on the console, in chart labels, and
//! durations as the gateway's flags take them.

/// Bytes in a MiB, as the report counts memory.
pub const MIB: f64 = 1024.0 * 1024.0;

/// 1234 → "1.2k", 2500000 → "2.5M".
pub fn format_count(v: f64) -> String {
    let (value, suffix) = if v >= 1e6 {
        (v / 1e6, "M")
    } else if v >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    if value >= 100.0 || value.fract() == 0.0 {
        format!("{value:.0}{suffix}")
    } else {
        format!("{value:.1}{suffix}")
    }
}

/// A measured figure with the digits that mean something: 1234, 12.3, 1.23.
pub fn format_measured(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A duration as the gateway's flags take it, always with a unit: `2m`, `10s`, `250ms`.
pub fn duration_arg(seconds: f64) -> String {
    let ms = (seconds * 1000.0).round() as u64;
    if ms > 0 && ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// Bytes in MB (2^20), as the report shows them.
pub fn mb(bytes: u64) -> f64 {
    bytes as f64 / MIB
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(format_count(950.0), "950");
        assert_eq!(format_count(1234.0), "1.2k");
        assert_eq!(format_count(100_000.0), "100k");
        assert_eq!(format_count(2_500_000.0), "2.5M");
        assert_eq!(format_measured(1234.4), "1234");
        assert_eq!(format_measured(12.34), "12.3");
        assert_eq!(format_measured(1.234), "1.23");
    }

    #[test]
    fn durations_always_carry_a_unit() {
        assert_eq!(duration_arg(120.0), "2m");
        assert_eq!(duration_arg(10.0), "10s");
        assert_eq!(duration_arg(90.0), "90s");
        assert_eq!(duration_arg(1.0), "1s");
        assert_eq!(duration_arg(0.25), "250ms");
        assert_eq!(duration_arg(0.0), "0s");
    }
}
