//! The API keys of a keyed gateway (`Gateway::keyed`, `GatewayProcess::keyed`): two
//! plain `--api-key` keys and a `--config` file of named keys with scopes, prefixes and
//! a signing secret in rotation (docs/api.md §10).

use std::path::{Path, PathBuf};

/// `--api-key`: allowed everything.
pub const ROOT: &str = "root-key";
/// A second `--api-key`, for what one owner may do to another's channels.
pub const OTHER_ROOT: &str = "other-root";
/// `ops`: configured by its SHA-256 alone (`key_sha256`), allowed everything.
pub const OPS: &str = "ops-key";
/// `photos-backend`: publishes under /b/photos.
pub const PHOTOS_PUBLISHER: &str = "publish-key";
/// `photos-app`: subscribes under /b/photos, its channels signed with `SIGNING_SECRET`
/// and, until 2999, `PREVIOUS_SIGNING_SECRET`.
pub const PHOTOS_SUBSCRIBER: &str = "subscribe-key";
/// `app`: subscribes under /victim.
pub const APP: &str = "app-key";
/// `backend`: publishes under /victim.
pub const BACKEND: &str = "backend-key";
/// `intruder`: publishes and subscribes under /intruder only.
pub const INTRUDER: &str = "intruder-key";

pub const SIGNING_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
pub const PREVIOUS_SIGNING_SECRET: &str = "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

/// The `--config` file.
const CONFIG: &str = r#"
[[keys]]
name = "photos-backend"
key = "publish-key"
scopes = ["publish"]
prefixes = ["/b/photos"]

[[keys]]
name = "photos-app"
key = "subscribe-key"
scopes = ["subscribe"]
prefixes = ["/b/photos"]
signing_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
previous_signing_secret = "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
previous_signing_secret_until = "2999-01-01T00:00:00Z"

[[keys]]
name = "app"
key = "app-key"
scopes = ["subscribe"]
prefixes = ["/victim"]

[[keys]]
name = "backend"
key = "backend-key"
scopes = ["publish"]
prefixes = ["/victim"]

[[keys]]
name = "intruder"
key = "intruder-key"
scopes = ["publish", "subscribe"]
prefixes = ["/intruder"]

[[keys]]
name = "ops"
key_sha256 = "2c69bc9111c27110a9b9a7974ba3f8ac0c053c16b23a0738115ee829fbc4d57b"
"#;

/// The networks a keyed gateway may deliver to although they are private: the tests'
/// receivers on 127.0.0.1, and no other private or reserved address.
pub const ALLOW_TARGETS: &str = "127.0.0.1/32";

/// Writes the `--config` file into `dir`; returns its path.
pub fn write_config(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("keys.toml");
    std::fs::write(&path, CONFIG).unwrap();
    path
}

/// `ops`'s configured digest, as hex.
pub fn ops_digest() -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(OPS)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
