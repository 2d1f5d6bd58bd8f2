//! Picks named headers out of any header source, matching names case-insensitively.
//!
//! A source is anything that iterates `(name, value)` pairs: `&http::HeaderMap`,
//! `Vec<(String, String)>`, `[(&str, &str); N]`, a framework's own header list.

/// Why a present header could not be read as text.
pub(crate) const REPEATED: &str = "appears more than once";
pub(crate) const NOT_TEXT: &str = "is not UTF-8 text";

enum Slot<V> {
    Absent,
    One(V),
    /// Two values for one name: ambiguous, so neither is trusted.
    Repeated,
}

/// The values of the headers named in `names` (lower case), found in one pass.
pub(crate) struct Picked<V> {
    names: &'static [&'static str],
    slots: Vec<Slot<V>>,
}

impl<V: AsRef<[u8]>> Picked<V> {
    pub(crate) fn from_pairs<I, K>(names: &'static [&'static str], headers: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
    {
        let mut slots: Vec<Slot<V>> = names.iter().map(|_| Slot::Absent).collect();
        for (name, value) in headers {
            let name = name.as_ref();
            if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(name)) {
                slots[i] = match slots[i] {
                    Slot::Absent => Slot::One(value),
                    _ => Slot::Repeated,
                };
            }
        }
        Picked { names, slots }
    }

    /// The value of `name` with surrounding blanks removed (as HTTP does), `None` when
    /// absent, `Err(reason)` when repeated or not text. Problems with headers the caller
    /// never asks for are never reported.
    pub(crate) fn text(&self, name: &'static str) -> Result<Option<&str>, &'static str> {
        let i = self
            .names
            .iter()
            .position(|n| *n == name)
            .expect("only names given to from_pairs are asked for");
        match &self.slots[i] {
            Slot::Absent => Ok(None),
            Slot::Repeated => Err(REPEATED),
            Slot::One(value) => std::str::from_utf8(value.as_ref())
                .map(|s| Some(s.trim_matches([' ', '\t'])))
                .map_err(|_| NOT_TEXT),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: &[&str] = &["x-goog-channel-id", "x-goog-message-number"];

    #[test]
    fn matches_names_in_any_letter_case() {
        for name in [
            "x-goog-channel-id",
            "X-Goog-Channel-ID",
            "X-GOOG-CHANNEL-ID",
            "x-GoOg-cHaNnEl-Id",
        ] {
            let picked = Picked::from_pairs(NAMES, [(name, "ch-1")]);
            assert_eq!(picked.text("x-goog-channel-id"), Ok(Some("ch-1")), "{name}");
        }
    }

    #[test]
    fn reports_repeats_and_non_text_only_for_the_header_asked_for() {
        let picked = Picked::from_pairs(
            NAMES,
            vec![
                ("X-Goog-Channel-ID", b"a".to_vec()),
                ("x-goog-channel-id", b"b".to_vec()),
                ("x-goog-message-number", vec![0xff, 0xfe]),
                ("x-unrelated", b"x".to_vec()),
            ],
        );
        assert_eq!(picked.text("x-goog-channel-id"), Err(REPEATED));
        assert_eq!(picked.text("x-goog-message-number"), Err(NOT_TEXT));
    }

    #[test]
    fn trims_blanks_and_reports_absence() {
        let picked = Picked::from_pairs(NAMES, [("x-goog-message-number", " \t7 ")]);
        assert_eq!(picked.text("x-goog-message-number"), Ok(Some("7")));
        assert_eq!(picked.text("x-goog-channel-id"), Ok(None));
    }

    #[test]
    fn reads_an_http_header_map() {
        let mut map = http::HeaderMap::new();
        map.insert("X-Goog-Channel-ID", http::HeaderValue::from_static("ch-1"));
        map.append("x-goog-message-number", http::HeaderValue::from_static("2"));
        map.append("x-goog-message-number", http::HeaderValue::from_static("3"));
        let picked = Picked::from_pairs(NAMES, &map);
        assert_eq!(picked.text("x-goog-channel-id"), Ok(Some("ch-1")));
        assert_eq!(picked.text("x-goog-message-number"), Err(REPEATED));
    }
}
