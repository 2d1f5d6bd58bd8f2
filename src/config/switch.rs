//! How on/off options are written, for both commands.

/// The value of every on/off option (`--dev`, `--json`) given in the environment:
/// `true`/`false`, `1`/`0`, `yes`/`no` or `on`/`off`, in any letter case, as shells,
/// systemd units and container platforms write switches.
pub fn parse_switch(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" | "" => Ok(false),
        _ => Err(format!(
            "{value:?} is not on or off: use true or false (or 1/0, yes/no, on/off)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switches_take_true_false_one_zero_from_the_environment() {
        for on in ["true", "1", "TRUE", "yes", "on"] {
            assert_eq!(parse_switch(on), Ok(true), "{on}");
        }
        for off in ["false", "0", "False", "no", "off"] {
            assert_eq!(parse_switch(off), Ok(false), "{off}");
        }
        let err = parse_switch("enabled").unwrap_err();
        assert!(
            err.contains("true or false") && err.contains("1/0"),
            "{err}"
        );
    }
}
