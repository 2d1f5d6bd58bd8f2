//! Who is calling and what they may do (docs/api.md §10 API keys).
//!
//! Keys are compared by their SHA-256 digests in constant time, and every key is
//! compared (no early exit), so timing reveals nothing. A channel's owner is the key's
//! name (named keys) or a digest prefix (plain `--api-key` keys), never the key.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::query::invalid_parameter;
use super::AppState;
use crate::config::KeyConfig;
use crate::delivery::render::KeySigning;
use crate::model::Coverage;
use crate::protocol::resource::{covers, is_operational, ServicePrefixes, WHOLE_NAMESPACE};
use crate::protocol::signature::SigningSecret;

/// The owner every request has in `--dev` without keys.
pub const DEV_OWNER: &str = "dev";

/// `?owner=*`: every owner's channels, for the `admin` scope (docs/api.md §8).
pub const ALL_OWNERS: &str = "*";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Publish,
    Subscribe,
    Admin,
}

impl Scope {
    fn parse(s: &str) -> Option<Scope> {
        match s {
            "publish" => Some(Scope::Publish),
            "subscribe" => Some(Scope::Subscribe),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Scope::Publish => "publish",
            Scope::Subscribe => "subscribe",
            Scope::Admin => "admin",
        }
    }
}

/// What one key may do.
#[derive(Debug)]
struct Grant {
    owner: String,
    scopes: Vec<Scope>,
    /// Canonical resource prefixes; empty = everything.
    prefixes: Vec<String>,
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub owner: String,
    grant: Option<Arc<Grant>>,
}

impl Caller {
    /// `403` unless the key has `scope` (admin implies every scope).
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        match &self.grant {
            Some(g) if !g.scopes.contains(&scope) && !g.scopes.contains(&Scope::Admin) => {
                Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    format!(
                        "this API key lacks the {:?} scope this call needs",
                        scope.name()
                    ),
                ))
            }
            _ => Ok(()),
        }
    }

    /// Whether the key has the `admin` scope (in `--dev` without keys, everyone has).
    pub fn is_admin(&self) -> bool {
        self.grant
            .as_ref()
            .is_none_or(|g| g.scopes.contains(&Scope::Admin))
    }

    /// Whose channels and watchers a call acts on: the caller's own, or with
    /// `?owner=NAME` that owner's, which only the `admin` scope may name (docs/api.md
    /// §8): how an operator reaches channels whose key is gone, such as those made under
    /// `--dev` before keys were configured. Any other key is refused whether or not the
    /// owner exists, so the answer tells it nothing.
    pub fn acting_for(&self, owner: Option<&str>) -> Result<String, ApiError> {
        match owner {
            None => Ok(self.owner.clone()),
            Some(owner) if owner == self.owner => Ok(self.owner.clone()),
            Some(_) if !self.is_admin() => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "the owner parameter needs the \"admin\" scope; this API key sees its own channels and watchers only",
            )),
            Some(ALL_OWNERS) => Err(invalid_parameter(
                "owner=* lists every owner's channels; to act on one, give its owner's name",
            )),
            // No key's owner holds one, and PostgreSQL cannot even compare a NUL.
            Some(owner) if owner.chars().any(char::is_control) => Err(invalid_parameter(
                "owner must be an owner's name, without control characters",
            )),
            Some(owner) => Ok(owner.to_string()),
        }
    }

    /// `403` unless the key may use this canonical resource: within its prefixes; the
    /// gateway's operational events (docs/api.md §18) only with the `admin` scope.
    pub fn require_resource(&self, resource: &str) -> Result<(), ApiError> {
        if is_operational(resource) && !self.is_admin() {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "{resource} is where the gateway publishes events about its channels; only keys with the \"admin\" scope may read it"
                ),
            ));
        }
        match &self.grant {
            Some(g)
                if !g.prefixes.is_empty() && !g.prefixes.iter().any(|p| covers(p, resource)) =>
            {
                Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    format!(
                        "this API key may not use {resource}; it is limited to {}",
                        g.prefixes.join(", ")
                    ),
                ))
            }
            _ => Ok(()),
        }
    }

    /// What a channel, watcher or stream on this canonical resource may cover with this
    /// key (docs/api.md §10.1): `None` for the resource itself, within the key's
    /// prefixes (`403` outside them); for the whole namespace `/` under a key limited
    /// to prefixes, those prefixes: every event the key may see, and no other.
    pub fn within(&self, resource: &str) -> Result<Option<Coverage>, ApiError> {
        match &self.grant {
            Some(g) if resource == WHOLE_NAMESPACE && !g.prefixes.is_empty() => {
                Ok(Some(Coverage::union(g.prefixes.iter().map(String::as_str)))
                    .filter(|coverage| coverage.paths() != [WHOLE_NAMESPACE]))
            }
            _ => self.require_resource(resource).map(|()| None),
        }
    }

    /// As [`Caller::within`], as what to read: the resource, or the prefixes.
    pub fn coverage(&self, resource: &str) -> Result<Coverage, ApiError> {
        Ok(self
            .within(resource)?
            .unwrap_or_else(|| Coverage::path(resource)))
    }
}

pub struct Keys {
    digests: Vec<([u8; 32], Arc<Grant>)>,
    /// Signing secrets of keys that have one, by owner.
    pub signing: HashMap<String, KeySigning>,
}

impl Keys {
    /// Plain keys may do everything; named keys as configured.
    pub fn new(
        plain: &[String],
        named: &[KeyConfig],
        prefixes: &ServicePrefixes,
    ) -> anyhow::Result<Keys> {
        let mut digests = Vec::new();
        let mut signing = HashMap::new();
        // Where each key was given: one key with two grants would silently be either.
        let mut given: Vec<([u8; 32], String)> = Vec::new();
        let mut once = |digest: [u8; 32], entry: String| {
            match given
            .iter()
            .find(|(d, _)| *d == digest)
        {
            Some((_, first)) => Err(anyhow::anyhow!(
                "{first} and {entry} hold the same key; a key may be given once, as it has one owner and one set of scopes"
            )),
            None => {
                given.push((digest, entry));
                Ok(())
            }
        }
        };
        for (n, key) in plain.iter().filter(|k| !k.is_empty()).enumerate() {
            let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
            once(digest, format!("--api-key number {}", n + 1))?;
            let owner = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
            digests.push((
                digest,
                Arc::new(Grant {
                    owner,
                    scopes: vec![Scope::Admin],
                    prefixes: vec![],
                }),
            ));
        }
        for (n, k) in named.iter().enumerate() {
            let context = |what: &str| format!("key {:?}: {what}", k.name);
            if k.name.trim().is_empty() || k.name == ALL_OWNERS {
                anyhow::bail!(
                    "[[keys]] entry {}: name {:?} cannot name an owner; give each key a name such as \"photos-backend\"",
                    n + 1,
                    k.name
                );
            }
            let digest: [u8; 32] = match (&k.key, &k.key_sha256) {
                (Some(key), None) if !key.is_empty() => Sha256::digest(key.as_bytes()).into(),
                (None, Some(hex)) => parse_hex32(hex)
                    .ok_or_else(|| anyhow::anyhow!(context("key_sha256 must be 64 hex digits")))?,
                _ => anyhow::bail!(context("give exactly one of key and key_sha256")),
            };
            once(digest, format!("[[keys]] entry {} ({:?})", n + 1, k.name))?;
            if let Some(first) = named[..n]
                .iter()
                .find(|other| other.name == k.name && !other.same_signing(k))
            {
                anyhow::bail!(context(&format!(
                    "another entry of that name ({:?}) signs differently; keys that share a name share their channels, so give them the same signing secrets",
                    first.name
                )));
            }
            let scopes = match &k.scopes {
                None => vec![Scope::Admin],
                Some(names) if names.is_empty() => anyhow::bail!(context(
                    "scopes is empty, so the key could do nothing; list publish, subscribe or admin, or leave scopes out for all three"
                )),
                Some(names) => names
                    .iter()
                    .map(|s| {
                        Scope::parse(s).ok_or_else(|| {
                            anyhow::anyhow!(context(&format!(
                                "unknown scope {s:?}; use publish, subscribe or admin"
                            )))
                        })
                    })
                    .collect::<anyhow::Result<_>>()?,
            };
            let resource_prefixes = match &k.prefixes {
                None => &[][..],
                Some(list) if list.is_empty() => anyhow::bail!(context(
                    "prefixes is empty; leave prefixes out to allow every resource, or list the paths the key may use"
                )),
                Some(list) => &list[..],
            };
            let resource_prefixes = resource_prefixes
                .iter()
                .map(|p| {
                    prefixes
                        .canonicalize_watched(p)
                        .map_err(|e| anyhow::anyhow!(context(&e.named("prefix"))))
                })
                .collect::<anyhow::Result<_>>()?;
            if let Some(current) = &k.signing_secret {
                let current =
                    SigningSecret::parse(current).map_err(|e| anyhow::anyhow!(context(&e)))?;
                let previous = match (&k.previous_signing_secret, k.previous_signing_secret_until) {
                    (Some(old), Some(until)) => Some((
                        SigningSecret::parse(old).map_err(|e| anyhow::anyhow!(context(&e)))?,
                        until,
                    )),
                    (None, None) => None,
                    _ => anyhow::bail!(context(
                        "previous_signing_secret and previous_signing_secret_until go together"
                    )),
                };
                signing.insert(k.name.clone(), KeySigning { current, previous });
            }
            digests.push((
                digest,
                Arc::new(Grant {
                    owner: k.name.clone(),
                    scopes,
                    prefixes: resource_prefixes,
                }),
            ));
        }
        Ok(Keys { digests, signing })
    }

    /// Authenticates a request by `Authorization: Bearer KEY` or `?key=KEY`.
    pub fn authenticate(&self, headers: &HeaderMap, uri: &Uri) -> Result<Caller, ApiError> {
        if self.digests.is_empty() {
            return Ok(Caller {
                owner: DEV_OWNER.to_string(),
                grant: None,
            });
        }
        let presented = presented_key(headers, uri).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "required",
                "an API key is required: send Authorization: Bearer KEY or ?key=KEY",
            )
        })?;
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = None;
        for (known, grant) in &self.digests {
            if bool::from(known.ct_eq(&digest)) {
                found = Some(grant.clone());
            }
        }
        match found {
            Some(grant) => Ok(Caller {
                owner: grant.owner.clone(),
                grant: Some(grant),
            }),
            None => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "authError",
                "the API key is not valid",
            )),
        }
    }
}

/// The authenticated caller as a handler argument. The key middleware
/// (`api::require_key`) authenticates every request before routing and leaves the
/// caller in the request's extensions; this takes it from there.
impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        match parts.extensions.get::<Caller>() {
            Some(caller) => Ok(caller.clone()),
            None => app.keys.authenticate(&parts.headers, &parts.uri),
        }
    }
}

/// Handler arguments that say which scope a call needs (docs/api.md §10.1): each is an
/// authenticated [`Caller`] whose key holds the scope, or the call is refused with
/// `401` / `403` before the handler runs.
macro_rules! scoped_caller {
    ($($(#[$doc:meta])* $name:ident => $scope:expr;)*) => {$(
        $(#[$doc])*
        pub struct $name(pub Caller);

        impl FromRequestParts<AppState> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
                let caller = Caller::from_request_parts(parts, app).await?;
                caller.require($scope)?;
                Ok($name(caller))
            }
        }
    )*};
}

scoped_caller! {
    /// A caller that may publish.
    Publisher => Scope::Publish;
    /// A caller that may create, read and stop channels, watchers and streams.
    Subscriber => Scope::Subscribe;
    /// An operator (the `admin` scope): `/metrics` and, later, the cluster.
    Operator => Scope::Admin;
}

fn parse_hex32(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        out[i] = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}

/// The key a request carries, as `Authorization: Bearer KEY` or `?key=KEY`.
pub fn presented_key(headers: &HeaderMap, uri: &Uri) -> Option<String> {
    bearer(headers).or_else(|| query_key(uri))
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, key) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| key.trim().to_string())
}

fn query_key(uri: &Uri) -> Option<String> {
    url::form_urlencoded::parse(uri.query()?.as_bytes())
        .find(|(name, _)| name == "key")
        .map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FileConfig;

    fn keys(plain: &[&str], file: &str) -> anyhow::Result<Keys> {
        let named = toml::from_str::<FileConfig>(file).unwrap().keys;
        let plain: Vec<String> = plain.iter().map(|k| k.to_string()).collect();
        Keys::new(&plain, &named, &ServicePrefixes::with_extra(&[]).unwrap())
    }

    fn refusal(plain: &[&str], file: &str) -> String {
        match keys(plain, file) {
            Ok(_) => panic!("accepted:\n{file}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn one_key_given_twice_is_refused_naming_both_entries() {
        let err = refusal(
            &[],
            "[[keys]]\nname = \"a\"\nkey = \"k\"\n[[keys]]\nname = \"b\"\nkey = \"k\"\nscopes = [\"publish\"]\n",
        );
        assert!(
            err.contains(r#"entry 1 ("a")"#) && err.contains(r#"entry 2 ("b")"#),
            "{err}"
        );
        assert!(
            !err.contains("\"k\""),
            "the key itself is never shown: {err}"
        );
        // By its digest too.
        let digest = "8254c329a92850f6d539dd376f4816ee2764517da5e0235514af433164480d7a";
        let err = refusal(
            &[],
            &format!("[[keys]]\nname = \"a\"\nkey = \"k\"\n[[keys]]\nname = \"b\"\nkey_sha256 = \"{digest}\"\n"),
        );
        assert!(err.contains("same key"), "{err}");
        let err = refusal(&["k"], "[[keys]]\nname = \"a\"\nkey = \"k\"\n");
        assert!(
            err.contains("--api-key number 1") && err.contains(r#"entry 1 ("a")"#),
            "{err}"
        );
        let err = refusal(&["k", "k"], "");
        assert!(
            err.contains("--api-key number 1") && err.contains("--api-key number 2"),
            "{err}"
        );
    }

    #[test]
    fn keys_that_could_do_nothing_or_name_no_owner_are_refused() {
        let err = refusal(&[], "[[keys]]\nname = \"a\"\nkey = \"k\"\nscopes = []\n");
        assert!(
            err.contains(r#"key "a""#) && err.contains("scopes is empty"),
            "{err}"
        );
        let err = refusal(&[], "[[keys]]\nname = \"a\"\nkey = \"k\"\nprefixes = []\n");
        assert!(
            err.contains(r#"key "a""#) && err.contains("prefixes is empty"),
            "{err}"
        );
        for name in ["", " ", "*"] {
            let err = refusal(&[], &format!("[[keys]]\nname = \"{name}\"\nkey = \"k\"\n"));
            assert!(
                err.contains("entry 1") && err.contains("cannot name an owner"),
                "{err}"
            );
        }
    }

    #[test]
    fn keys_sharing_a_name_must_sign_alike() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let two = |second: &str| {
            format!("[[keys]]\nname = \"a\"\nkey = \"old\"\nsigning_secret = \"{secret}\"\n[[keys]]\nname = \"a\"\nkey = \"new\"\n{second}")
        };
        // A key being replaced: two keys, one owner, one signing secret.
        assert!(keys(&[], &two(&format!("signing_secret = \"{secret}\"\n"))).is_ok());
        let err = refusal(&[], &two(""));
        assert!(err.contains("signs differently"), "{err}");
    }
}
