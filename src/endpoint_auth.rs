//! How a channel or watcher authenticates to its endpoint (docs/api.md §17): fixed
//! headers, or HTTP Basic. The secrets (header values, the password) are write-only:
//! stored with the channel, sent with every notification, and never shown — the API
//! shows the [`EndpointAuth::view`], its `type` and what is not secret.

use base64::Engine;
use serde_json::{json, Map, Value};

/// Most fixed headers one channel may send.
pub const MAX_HEADERS: usize = 8;
/// Longest header name, value, user name or password.
const MAX_PART_BYTES: usize = 4096;

/// Names the gateway sets itself, and prefixes of them: refused as fixed headers.
const OWN_NAMES: [&str; 6] = [
    "host",
    "content-length",
    "content-type",
    "user-agent",
    "traceparent",
    "tracestate",
];
const OWN_PREFIXES: [&str; 3] = ["x-goog-", "x-watchwire-", "webhook-"];

#[derive(Clone, PartialEq, Eq)]
pub enum EndpointAuth {
    /// Fixed headers, as given (`type: header`, one or a `headers` list).
    Headers(Vec<(String, String)>),
    Basic {
        username: String,
        password: String,
    },
    /// A bearer token from the client-credentials grant, fetched when needed.
    OAuth2(std::sync::Arc<ClientCredentials>),
}

/// What the OAuth 2.0 client-credentials grant (RFC 6749 §4.4) needs; channels with
/// equal credentials share one token.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ClientCredentials {
    pub token_url: String,
    pub client_id: String,
    pub client_secret: String,
    pub scope: Option<String>,
    pub audience: Option<String>,
}

/// Never prints a secret.
impl std::fmt::Debug for EndpointAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EndpointAuth({})", self.view())
    }
}

impl EndpointAuth {
    /// The `auth` object of a watch or a watcher; the error names the field.
    pub fn parse(value: &Value) -> Result<EndpointAuth, String> {
        let Value::Object(fields) = value else {
            return Err("auth must be an object with a type: header or basic".into());
        };
        let text = |name: &str| -> Result<&str, String> {
            match fields.get(name) {
                Some(Value::String(s)) => Ok(s),
                None | Some(Value::Null) => Err(format!("auth.{name} is required")),
                Some(_) => Err(format!("auth.{name} must be a string")),
            }
        };
        let allowed = |names: &[&str]| -> Result<(), String> {
            match fields.keys().find(|k| !names.contains(&k.as_str())) {
                Some(other) => Err(format!(
                    "auth has an unknown field {other:?}; a {} auth has {}",
                    fields.get("type").and_then(Value::as_str).unwrap_or("?"),
                    names.join(", ")
                )),
                None => Ok(()),
            }
        };
        match text("type")? {
            "header" => {
                let headers = match fields.get("headers") {
                    Some(Value::Array(list)) => {
                        allowed(&["type", "headers"])?;
                        if list.is_empty() || list.len() > MAX_HEADERS {
                            return Err(format!(
                                "auth.headers must hold 1 to {MAX_HEADERS} headers"
                            ));
                        }
                        list.iter()
                            .enumerate()
                            .map(|(i, h)| header(h, &format!("auth.headers[{i}]")))
                            .collect::<Result<Vec<_>, _>>()?
                    }
                    Some(_) => return Err("auth.headers must be a list of {name, value}".into()),
                    None => {
                        allowed(&["type", "name", "value"])?;
                        vec![header(value, "auth")?]
                    }
                };
                let mut names: Vec<String> = headers
                    .iter()
                    .map(|(n, _)| n.to_ascii_lowercase())
                    .collect();
                names.sort();
                if let Some(twice) = names.windows(2).find(|w| w[0] == w[1]) {
                    return Err(format!("auth.headers names {} twice", twice[0]));
                }
                Ok(EndpointAuth::Headers(headers))
            }
            "basic" => {
                allowed(&["type", "username", "password"])?;
                let (username, password) = (text("username")?, text("password")?);
                if username.contains(':') {
                    return Err("auth.username must not contain ':' (HTTP Basic joins it to the password with one)".into());
                }
                for (name, part) in [("username", username), ("password", password)] {
                    check_part(&format!("auth.{name}"), part)?;
                }
                Ok(EndpointAuth::Basic {
                    username: username.into(),
                    password: password.into(),
                })
            }
            "oauth2" => {
                allowed(&[
                    "type",
                    "tokenUrl",
                    "clientId",
                    "clientSecret",
                    "scope",
                    "audience",
                ])?;
                let optional = |name: &str| match fields.get(name) {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::String(s)) => {
                        check_part(&format!("auth.{name}"), s).map(|_| Some(s.clone()))
                    }
                    Some(_) => Err(format!("auth.{name} must be a string")),
                };
                let (client_id, client_secret) = (text("clientId")?, text("clientSecret")?);
                for (name, part) in [("clientId", client_id), ("clientSecret", client_secret)] {
                    check_part(&format!("auth.{name}"), part)?;
                }
                let token_url = text("tokenUrl")?;
                if !(token_url.starts_with("https://") || token_url.starts_with("http://")) {
                    return Err("auth.tokenUrl must be an http:// or https:// URL".into());
                }
                Ok(EndpointAuth::OAuth2(std::sync::Arc::new(
                    ClientCredentials {
                        token_url: token_url.into(),
                        client_id: client_id.into(),
                        client_secret: client_secret.into(),
                        scope: optional("scope")?,
                        audience: optional("audience")?,
                    },
                )))
            }
            other => Err(format!(
                "auth.type {:?} is not supported: use header, basic or oauth2",
                other.chars().take(64).collect::<String>()
            )),
        }
    }

    /// What the API shows: the type and what is not secret.
    pub fn view(&self) -> Value {
        match self {
            EndpointAuth::Headers(headers) if headers.len() == 1 => {
                json!({"type": "header", "name": headers[0].0})
            }
            EndpointAuth::Headers(headers) => json!({
                "type": "header",
                "headers": headers.iter().map(|(name, _)| json!({"name": name})).collect::<Vec<_>>(),
            }),
            EndpointAuth::Basic { username, .. } => json!({"type": "basic", "username": username}),
            EndpointAuth::OAuth2(c) => {
                let mut view =
                    json!({"type": "oauth2", "tokenUrl": c.token_url, "clientId": c.client_id});
                if let Some(scope) = &c.scope {
                    view["scope"] = json!(scope);
                }
                if let Some(audience) = &c.audience {
                    view["audience"] = json!(audience);
                }
                view
            }
        }
    }

    /// The token URL, which the target policy checks like the endpoint.
    pub fn token_url(&self) -> Option<&str> {
        self.client_credentials().map(|c| c.token_url.as_str())
    }

    /// The client credentials, for an OAuth 2.0 auth.
    pub fn client_credentials(&self) -> Option<&std::sync::Arc<ClientCredentials>> {
        match self {
            EndpointAuth::OAuth2(c) => Some(c),
            _ => None,
        }
    }

    /// The stored form, secrets included (read back by [`EndpointAuth::from_stored`]).
    pub fn stored(&self) -> String {
        let value = match self {
            EndpointAuth::Headers(headers) => json!({
                "type": "header",
                "headers": headers.iter().map(|(n, v)| json!({"name": n, "value": v})).collect::<Vec<_>>(),
            }),
            EndpointAuth::Basic { username, password } => {
                json!({"type": "basic", "username": username, "password": password})
            }
            EndpointAuth::OAuth2(c) => json!({
                "type": "oauth2", "tokenUrl": c.token_url, "clientId": c.client_id,
                "clientSecret": c.client_secret, "scope": c.scope, "audience": c.audience,
            }),
        };
        value.to_string()
    }

    pub fn from_stored(text: &str) -> Result<EndpointAuth, String> {
        let value: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        EndpointAuth::parse(&value)
    }

    /// The headers every notification of the channel carries for it.
    pub fn headers(&self) -> Vec<(String, String)> {
        match self {
            // Not fixed: the webhook adds its current token (`delivery/oauth.rs`).
            EndpointAuth::OAuth2(_) => Vec::new(),
            EndpointAuth::Headers(headers) => headers.clone(),
            EndpointAuth::Basic { username, password } => {
                let pair = format!("{username}:{password}");
                let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
                vec![("authorization".into(), format!("Basic {encoded}"))]
            }
        }
    }
}

/// One `{name, value}` header at `place`.
fn header(value: &Value, place: &str) -> Result<(String, String), String> {
    let fields: &Map<String, Value> = value
        .as_object()
        .ok_or_else(|| format!("{place} must be an object {{name, value}}"))?;
    let text = |name: &str| match fields.get(name) {
        Some(Value::String(s)) => Ok(s.as_str()),
        _ => Err(format!("{place}.{name} is required: a string")),
    };
    let (name, value) = (text("name")?, text("value")?);
    let valid_name = !name.is_empty()
        && name.len() <= MAX_PART_BYTES
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !valid_name {
        return Err(format!(
            "{place}.name {:?} is not a header name",
            name.chars().take(64).collect::<String>()
        ));
    }
    let lower = name.to_ascii_lowercase();
    if OWN_NAMES.contains(&lower.as_str()) || OWN_PREFIXES.iter().any(|p| lower.starts_with(p)) {
        return Err(format!(
            "{place}.name {name} is a header the gateway sets itself; it cannot be given"
        ));
    }
    check_part(&format!("{place}.value"), value)?;
    Ok((name.into(), value.into()))
}

/// Visible ASCII and spaces, not blank at either end, bounded: what travels in a header.
fn check_part(place: &str, part: &str) -> Result<(), String> {
    if part.len() > MAX_PART_BYTES {
        return Err(format!("{place} is longer than {MAX_PART_BYTES} bytes"));
    }
    if !part.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
        return Err(format!(
            "{place} must be printable ASCII (it travels in a header)"
        ));
    }
    if part.starts_with(' ') || part.ends_with(' ') {
        return Err(format!("{place} must not begin or end with a space"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_and_basic_parse_show_no_secret_and_read_back() {
        let one = EndpointAuth::parse(
            &json!({"type": "header", "name": "Authorization", "value": "Bearer s3cret"}),
        )
        .unwrap();
        assert_eq!(
            one.view(),
            json!({"type": "header", "name": "Authorization"})
        );
        assert_eq!(
            one.headers(),
            [("Authorization".to_string(), "Bearer s3cret".to_string())]
        );
        let many = EndpointAuth::parse(&json!({"type": "header", "headers": [
            {"name": "X-Api-Key", "value": "k1"}, {"name": "X-Tenant", "value": "t"}]}))
        .unwrap();
        assert_eq!(
            many.view(),
            json!({"type": "header", "headers": [{"name": "X-Api-Key"}, {"name": "X-Tenant"}]})
        );
        let basic = EndpointAuth::parse(
            &json!({"type": "basic", "username": "Aladdin", "password": "open sesame"}),
        )
        .unwrap();
        assert_eq!(
            basic.headers()[0].1,
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
            "RFC 7617's example"
        );
        assert_eq!(
            basic.view(),
            json!({"type": "basic", "username": "Aladdin"})
        );
        let oauth = EndpointAuth::parse(
            &json!({"type": "oauth2", "tokenUrl": "https://id.example/token",
            "clientId": "gw", "clientSecret": "s3cret", "scope": "a b"}),
        )
        .unwrap();
        assert_eq!(
            oauth.view(),
            json!({"type": "oauth2", "tokenUrl": "https://id.example/token", "clientId": "gw", "scope": "a b"})
        );
        assert!(
            oauth.headers().is_empty(),
            "its token is not a fixed header"
        );
        assert_eq!(oauth.token_url(), Some("https://id.example/token"));
        for auth in [one, many, basic, oauth] {
            assert_eq!(EndpointAuth::from_stored(&auth.stored()).unwrap(), auth);
            let shown = format!("{auth:?} {}", auth.view());
            assert!(
                !shown.contains("s3cret") && !shown.contains("k1") && !shown.contains("sesame"),
                "{shown}"
            );
        }
    }

    /// (What the API answers for the gateway's own names: `tests/it/endpoint_auth.rs`.)
    #[test]
    fn what_a_header_cannot_carry_and_malformed_auth_are_refused() {
        let header = |name: &str| json!({"type": "header", "name": name, "value": "x"});
        let cases = [
            (header("Webhook-Signature"), "Webhook-Signature is a header"),
            (header("traceparent"), "traceparent is a header"),
            (header("Bad Name"), "not a header name"),
            (json!({"type": "header", "headers": []}), "1 to 8"),
            (
                json!({"type": "header", "headers": [{"name": "X-A", "value": "1"}, {"name": "x-a", "value": "2"}]}),
                "twice",
            ),
            (
                json!({"type": "basic", "username": "a:b", "password": "p"}),
                "must not contain ':'",
            ),
            (
                json!({"type": "basic", "username": "a"}),
                "auth.password is required",
            ),
            (
                json!({"type": "header", "name": "X-A", "value": "v", "extra": 1}),
                "unknown field",
            ),
            (json!("Bearer x"), "must be an object"),
        ];
        for (auth, says) in cases {
            let error = EndpointAuth::parse(&auth).unwrap_err();
            assert!(error.contains(says), "{auth}: {error}");
        }
    }
}
