//! The `--config` file: named API keys, their scopes, prefixes and signing secrets.

/// The `--config` file.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub keys: Vec<KeyConfig>,
}

/// One named API key (docs/api.md §10).
#[derive(Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// Owner name of what the key creates; shown in logs, never secret.
    pub name: String,
    /// The key itself, or
    pub key: Option<String>,
    /// its SHA-256 as hex, so the file need not hold the key.
    pub key_sha256: Option<String>,
    /// `publish`, `subscribe`, `admin`; all three when omitted.
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// Resource prefixes the key is limited to; everything when omitted.
    #[serde(default)]
    pub prefixes: Option<Vec<String>>,
    /// `whsec_…` that signs notifications of this key's channels without their own.
    pub signing_secret: Option<String>,
    /// The secret being rotated out: notifications carry signatures with both until
    /// `previous_signing_secret_until` (RFC 3339).
    pub previous_signing_secret: Option<String>,
    pub previous_signing_secret_until: Option<chrono::DateTime<chrono::Utc>>,
    /// PEM certificate this key's channels present to receivers asking for one
    /// (mutual TLS), with its PEM private key.
    pub client_cert: Option<std::path::PathBuf>,
    pub client_key: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for KeyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyConfig")
            .field("name", &self.name)
            .field("scopes", &self.scopes)
            .field("prefixes", &self.prefixes)
            .finish_non_exhaustive()
    }
}

impl KeyConfig {
    /// Whether two entries sign their channels' notifications alike.
    pub fn same_signing(&self, other: &KeyConfig) -> bool {
        (
            &self.signing_secret,
            &self.previous_signing_secret,
            self.previous_signing_secret_until,
        ) == (
            &other.signing_secret,
            &other.previous_signing_secret,
            other.previous_signing_secret_until,
        )
    }
}

impl FileConfig {
    pub fn load(path: &std::path::Path) -> anyhow::Result<FileConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading --config {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("--config {}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_file_keys() {
        let file: FileConfig = toml::from_str(
            r#"
            [[keys]]
            name = "photos"
            key = "k1"
            scopes = ["publish"]
            prefixes = ["/b/photos"]
            "#,
        )
        .unwrap();
        assert_eq!(file.keys[0].name, "photos");
        assert!(
            !format!("{:?}", file.keys[0]).contains("k1"),
            "Debug must not show the key"
        );
        assert!(toml::from_str::<FileConfig>("[[keys]]\nname = 1").is_err());
    }
}
