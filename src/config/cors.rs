//! `--cors-origins`: which browser origins may call the `/v1` API.

use super::ServeArgs;

/// Which browser origins may call the `/v1` API (`--cors-origins`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsOrigins {
    /// No CORS headers at all: browsers on other origins cannot call the API.
    None,
    /// `Access-Control-Allow-Origin: *`.
    Any,
    /// These exact origins (scheme, host and port, as browsers send `Origin`).
    List(Vec<String>),
}

impl ServeArgs {
    /// `--cors-origins`, or its default: any origin in `--dev` (a local tool's page
    /// may call it), none otherwise (a deployment names the sites it trusts).
    pub fn cors(&self) -> anyhow::Result<CorsOrigins> {
        let given: Vec<&str> = self
            .cors_origins
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .collect();
        if given.is_empty() {
            return Ok(if self.dev {
                CorsOrigins::Any
            } else {
                CorsOrigins::None
            });
        }
        if given.contains(&"*") {
            if given.len() > 1 {
                anyhow::bail!("--cors-origins: `*` already allows every origin; give it alone");
            }
            return Ok(CorsOrigins::Any);
        }
        let origins = given
            .into_iter()
            .map(|origin| parse_origin(origin).map_err(|e| anyhow::anyhow!("--cors-origins: {e}")))
            .collect::<anyhow::Result<_>>()?;
        Ok(CorsOrigins::List(origins))
    }
}

/// An origin as browsers send it in `Origin`: `scheme://host[:port]`, lower case, no
/// path. Anything else could never match, so it is refused rather than ignored.
fn parse_origin(origin: &str) -> Result<String, String> {
    let url = url::Url::parse(origin)
        .map_err(|_| format!("{origin:?} is not an origin like https://app.example.com"))?;
    let serialized = url.origin().ascii_serialization();
    if !matches!(url.scheme(), "http" | "https") || serialized == "null" {
        return Err(format!("{origin:?} must be an http:// or https:// origin"));
    }
    if origin.trim_end_matches('/') != serialized {
        return Err(format!(
            "{origin:?} is not an origin as browsers send it; write {serialized:?} (scheme, host and port only, lower case)"
        ));
    }
    Ok(serialized)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::dev;

    #[test]
    fn cors_origins() {
        assert_eq!(dev().cors().unwrap(), CorsOrigins::Any);
        let mut keyed = ServeArgs::for_data_dir("/tmp/x");
        keyed.api_keys = vec!["k".into()];
        assert_eq!(keyed.validate().unwrap().cors, CorsOrigins::None);
        keyed.cors_origins = vec![
            "https://app.example.com".into(),
            " http://localhost:3000 ".into(),
        ];
        assert_eq!(
            keyed.cors().unwrap(),
            CorsOrigins::List(vec![
                "https://app.example.com".into(),
                "http://localhost:3000".into()
            ])
        );
        keyed.cors_origins = vec!["*".into()];
        assert_eq!(keyed.cors().unwrap(), CorsOrigins::Any);
        for bad in [
            "app.example.com",
            "https://app.example.com/path",
            "https://App.example.com",
            "https://app.example.com:443",
            "ftp://app.example.com",
        ] {
            keyed.cors_origins = vec![bad.into()];
            let err = keyed.validate().unwrap_err().to_string();
            assert!(err.starts_with("--cors-origins"), "{bad}: {err}");
        }
        keyed.cors_origins = vec!["*".into(), "https://a.example".into()];
        assert!(keyed.cors().is_err());
        // A trailing slash is how people paste origins; it means the same.
        keyed.cors_origins = vec!["https://app.example.com/".into()];
        assert_eq!(
            keyed.cors().unwrap(),
            CorsOrigins::List(vec!["https://app.example.com".into()])
        );
    }
}
