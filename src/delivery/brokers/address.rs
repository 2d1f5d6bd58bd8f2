//! Broker addresses (docs/api.md §20): what a channel's address names (the broker, and
//! the subject, exchange or stream key on it) and the operator's `--broker` URLs (the
//! broker, with its credentials and TLS). Pure: checked at watch time and at startup,
//! parsed again by a worker when it wakes.

use std::fmt;

use url::Url;

/// The kinds of broker a channel can deliver to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BrokerKind {
    /// NATS JetStream.
    Nats,
    /// RabbitMQ (AMQP 0-9-1).
    Amqp,
    /// Redis Streams.
    RedisStream,
}

impl BrokerKind {
    /// The channel `type` of this kind.
    pub fn channel_type(self) -> &'static str {
        match self {
            BrokerKind::Nats => "nats",
            BrokerKind::Amqp => "amqp",
            BrokerKind::RedisStream => "redis_stream",
        }
    }

    /// The kind a channel `type` names, in any letter case.
    pub fn from_channel_type(channel_type: &str) -> Option<BrokerKind> {
        [BrokerKind::Nats, BrokerKind::Amqp, BrokerKind::RedisStream]
            .into_iter()
            .find(|kind| channel_type.eq_ignore_ascii_case(kind.channel_type()))
    }

    /// The kind of a URL scheme, and whether the scheme asks for TLS.
    pub fn of_scheme(scheme: &str) -> Option<(BrokerKind, bool)> {
        Some(match scheme.to_ascii_lowercase().as_str() {
            "nats" => (BrokerKind::Nats, false),
            "tls" => (BrokerKind::Nats, true),
            "amqp" => (BrokerKind::Amqp, false),
            "amqps" => (BrokerKind::Amqp, true),
            "redis" => (BrokerKind::RedisStream, false),
            "rediss" => (BrokerKind::RedisStream, true),
            _ => return None,
        })
    }

    /// The port a URL of this kind means when it names none.
    pub fn default_port(self, tls: bool) -> u16 {
        match (self, tls) {
            (BrokerKind::Nats, _) => 4222,
            (BrokerKind::Amqp, false) => 5672,
            (BrokerKind::Amqp, true) => 5671,
            (BrokerKind::RedisStream, _) => 6379,
        }
    }

    /// The plain scheme of this kind, as addresses are written in docs/api.md.
    fn plain_scheme(self) -> &'static str {
        match self {
            BrokerKind::Nats => "nats",
            BrokerKind::Amqp => "amqp",
            BrokerKind::RedisStream => "redis",
        }
    }

    fn name(self) -> &'static str {
        match self {
            BrokerKind::Nats => "NATS",
            BrokerKind::Amqp => "AMQP",
            BrokerKind::RedisStream => "Redis",
        }
    }
}

/// Which broker: its kind, whether it is reached over TLS, where, and the part of it a
/// connection is made to (an AMQP virtual host, a Redis database).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BrokerId {
    pub kind: BrokerKind,
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// AMQP: the virtual host (`/` when none is named); Redis: the database number;
    /// NATS: empty.
    pub scope: String,
}

impl BrokerId {
    /// The host attempts are admitted by (`hosts.rs`): `scheme://host:port`.
    pub fn host_key(&self) -> String {
        let scheme = match (self.kind, self.tls) {
            (BrokerKind::Nats, true) => "tls",
            (BrokerKind::Amqp, true) => "amqps",
            (BrokerKind::RedisStream, true) => "rediss",
            (kind, false) => kind.plain_scheme(),
        };
        format!("{scheme}://{}:{}", self.host, self.port)
    }
}

impl fmt::Display for BrokerId {
    /// How a broker is named in messages: never with credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.host_key())?;
        match self.kind {
            BrokerKind::Amqp => write!(f, "/{}", encode_vhost(&self.scope)),
            BrokerKind::RedisStream => write!(f, "/{}", self.scope),
            BrokerKind::Nats => Ok(()),
        }
    }
}

/// Where on its broker a channel's notifications go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A JetStream subject (it must belong to a stream).
    Nats { subject: String },
    /// An exchange (`""`: the default exchange) and a routing key.
    Amqp {
        exchange: String,
        routing_key: String,
    },
    /// A stream key, trimmed to about `maxlen` entries when given.
    RedisStream { key: String, maxlen: Option<u64> },
}

/// A channel's broker address, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerAddress {
    pub broker: BrokerId,
    pub target: Target,
}

/// Why an address or a `--broker` URL is not usable, as a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressError(pub String);

impl fmt::Display for AddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn error(message: impl Into<String>) -> AddressError {
    AddressError(message.into())
}

/// Whether `address` names a broker (by its scheme) rather than an HTTP endpoint.
pub fn broker_kind(address: &str) -> Option<BrokerKind> {
    let scheme = address.split_once("://")?.0;
    BrokerKind::of_scheme(scheme).map(|(kind, _)| kind)
}

impl BrokerAddress {
    /// A channel's address: `nats://HOST:PORT/SUBJECT`,
    /// `amqp://HOST:PORT/VHOST?exchange=X&routing_key=K`,
    /// `redis://HOST:PORT/DB?key=K[&maxlen=N]` (or the TLS schemes of each). Credentials
    /// are refused: they belong to the operator's `--broker`.
    pub fn parse(address: &str) -> Result<BrokerAddress, AddressError> {
        let (url, broker) = broker_of(address)?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(error(
                "it carries credentials; they belong in the gateway's --broker setting, never in a channel's address",
            ));
        }
        if url.fragment().is_some() {
            return Err(error("it has a #fragment, which means nothing here"));
        }
        let params = query_params(&url)?;
        let target = match broker.kind {
            BrokerKind::Nats => {
                refuse_params(&params, &[])?;
                let subject = url.path().trim_start_matches('/');
                let subject = percent_decode(subject)?;
                check_subject(&subject)?;
                Target::Nats { subject }
            }
            BrokerKind::Amqp => {
                refuse_params(&params, &["exchange", "routing_key"])?;
                let exchange = param(&params, "exchange").unwrap_or_default();
                let routing_key = param(&params, "routing_key").unwrap_or_default();
                if exchange.is_empty() && routing_key.is_empty() {
                    return Err(error(
                        "it names neither an exchange nor a routing key: give ?exchange=X&routing_key=K (the default exchange routes by queue name: ?routing_key=QUEUE)",
                    ));
                }
                for (name, value) in [("exchange", &exchange), ("routing_key", &routing_key)] {
                    if value.len() > 255 {
                        return Err(error(format!("its {name} is longer than 255 bytes")));
                    }
                }
                Target::Amqp {
                    exchange,
                    routing_key,
                }
            }
            BrokerKind::RedisStream => {
                refuse_params(&params, &["key", "maxlen"])?;
                let key = param(&params, "key")
                    .filter(|k| !k.is_empty())
                    .ok_or_else(|| error("it names no stream: give ?key=K"))?;
                let maxlen = param(&params, "maxlen")
                    .map(|n| match n.parse::<u64>() {
                        Ok(n) if n > 0 => Ok(n),
                        _ => Err(error(format!(
                            "its maxlen {n:?} is not a positive whole number"
                        ))),
                    })
                    .transpose()?;
                Target::RedisStream { key, maxlen }
            }
        };
        Ok(BrokerAddress { broker, target })
    }
}

/// One `--broker` URL: the broker, and the URL the gateway connects with (credentials
/// and TLS settings included). Its `Display` never shows the credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    pub broker: BrokerId,
    /// As the operator gave it; secret.
    pub url: String,
}

impl fmt::Debug for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BrokerUrl({})", self.broker)
    }
}

impl BrokerUrl {
    /// A `--broker` URL: a broker and how to reach it, nothing more (no subject,
    /// exchange or key). Errors never quote the URL: it may hold a password.
    pub fn parse(text: &str) -> Result<BrokerUrl, AddressError> {
        let (url, broker) = broker_of(text)?;
        let path = url.path().trim_start_matches('/');
        if broker.kind == BrokerKind::Nats && !path.is_empty() {
            return Err(error(
                "a NATS broker URL names no subject: the subject is each channel's",
            ));
        }
        if broker.kind == BrokerKind::Amqp
            && url
                .query_pairs()
                .any(|(name, _)| name == "exchange" || name == "routing_key")
        {
            return Err(error(
                "an AMQP broker URL names no exchange or routing key: they are each channel's",
            ));
        }
        if broker.kind == BrokerKind::RedisStream
            && url.query_pairs().any(|(name, _)| name == "key")
        {
            return Err(error(
                "a Redis broker URL names no stream key: it is each channel's",
            ));
        }
        Ok(BrokerUrl {
            broker,
            url: text.to_string(),
        })
    }
}

/// Parses the URL and the broker it names (scheme, host, port, vhost or database).
fn broker_of(text: &str) -> Result<(Url, BrokerId), AddressError> {
    let url = Url::parse(text).map_err(|e| error(format!("it is not a URL: {e}")))?;
    let (kind, tls) = BrokerKind::of_scheme(url.scheme()).ok_or_else(|| {
        error(format!(
            "its scheme {:?} names no broker: use nats:// (tls://), amqp:// (amqps://) or redis:// (rediss://)",
            url.scheme()
        ))
    })?;
    let host = match url.host() {
        Some(url::Host::Domain(name)) if !name.is_empty() => name.to_ascii_lowercase(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => format!("[{ip}]"),
        _ => return Err(error("it names no host")),
    };
    let port = url.port().unwrap_or(kind.default_port(tls));
    let path = url.path().trim_start_matches('/');
    let scope = match kind {
        BrokerKind::Nats => String::new(),
        BrokerKind::Amqp => {
            if path.contains('/') {
                return Err(error(format!(
                    "its virtual host {path:?} holds a '/': write it percent-encoded (/ is %2f)"
                )));
            }
            match percent_decode(path)? {
                vhost if vhost.is_empty() => "/".to_string(),
                vhost => vhost,
            }
        }
        BrokerKind::RedisStream => match path {
            "" => "0".to_string(),
            db => match db.parse::<u32>() {
                Ok(n) => n.to_string(),
                Err(_) => {
                    return Err(error(format!(
                        "its database {db:?} is not a number (redis://HOST:PORT/DB)"
                    )))
                }
            },
        },
    };
    let broker = BrokerId {
        kind,
        tls,
        host,
        port,
        scope,
    };
    Ok((url, broker))
}

/// The AMQP virtual host as it is written in a URL path.
pub fn encode_vhost(vhost: &str) -> String {
    let mut out = String::new();
    for byte in vhost.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02x}"));
        }
    }
    out
}

fn percent_decode(text: &str) -> Result<String, AddressError> {
    let bytes = crate::protocol::resource::percent_decode(text)
        .ok_or_else(|| error(format!("{text:?} holds a % that is not %XX")))?;
    String::from_utf8(bytes).map_err(|_| error(format!("{text:?} is not UTF-8 once decoded")))
}

fn query_params(url: &Url) -> Result<Vec<(String, String)>, AddressError> {
    let mut params: Vec<(String, String)> = Vec::new();
    for (name, value) in url.query_pairs() {
        if params.iter().any(|(n, _)| *n == name) {
            return Err(error(format!("it gives ?{name}= twice")));
        }
        params.push((name.into_owned(), value.into_owned()));
    }
    Ok(params)
}

fn param(params: &[(String, String)], name: &str) -> Option<String> {
    params
        .iter()
        .find_map(|(n, v)| (n == name).then(|| v.clone()))
}

fn refuse_params(params: &[(String, String)], known: &[&str]) -> Result<(), AddressError> {
    match params
        .iter()
        .find(|(name, _)| !known.contains(&name.as_str()))
    {
        None => Ok(()),
        Some((name, _)) if known.is_empty() => Err(error(format!(
            "?{name}= means nothing in a NATS address (nats://HOST:PORT/SUBJECT)"
        ))),
        Some((name, _)) => Err(error(format!(
            "?{name}= means nothing here; the parameters are {}",
            known.join(", ")
        ))),
    }
}

/// A subject JetStream can store a message under: dot-separated tokens, no wildcards.
fn check_subject(subject: &str) -> Result<(), AddressError> {
    if subject.is_empty() {
        return Err(error(
            "it names no subject: nats://HOST:PORT/SUBJECT (the subject must belong to a JetStream stream)",
        ));
    }
    if subject.len() > 255 {
        return Err(error("its subject is longer than 255 bytes"));
    }
    if subject
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '*' || c == '>')
    {
        return Err(error(format!(
            "its subject {subject:?} holds a wildcard or a blank: a message goes to one subject"
        )));
    }
    if subject.split('.').any(str::is_empty) {
        return Err(error(format!(
            "its subject {subject:?} has an empty token (two dots, or a dot at an end)"
        )));
    }
    Ok(())
}

/// A channel's address is served by `broker` when it names the same broker: the same
/// kind, host, port and vhost or database, and the same TLS unless the address uses
/// the plain scheme (how docs/api.md writes addresses; the operator's URL decides
/// TLS). An address that asks for TLS never matches a broker reached without it.
pub fn serves(broker: &BrokerId, address: &BrokerId) -> bool {
    broker.kind == address.kind
        && broker.host == address.host
        && broker.port == address.port
        && broker.scope == address.scope
        && (broker.tls == address.tls || !address.tls)
}

/// How a broker kind is named in sentences.
pub fn kind_name(kind: BrokerKind) -> &'static str {
    kind.name()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_forms_parse() {
        let nats = BrokerAddress::parse("nats://127.0.0.1:4222/orders.created").unwrap();
        assert_eq!(nats.broker.host_key(), "nats://127.0.0.1:4222");
        assert_eq!(
            nats.target,
            Target::Nats {
                subject: "orders.created".into()
            }
        );
        let amqp =
            BrokerAddress::parse("amqp://mq.internal/%2f?exchange=events&routing_key=calendar")
                .unwrap();
        assert_eq!(amqp.broker.port, 5672);
        assert_eq!(amqp.broker.scope, "/");
        assert_eq!(amqp.broker.to_string(), "amqp://mq.internal:5672/%2f");
        assert_eq!(
            amqp.target,
            Target::Amqp {
                exchange: "events".into(),
                routing_key: "calendar".into()
            }
        );
        let redis = BrokerAddress::parse("redis://127.0.0.1:6379/2?key=ww&maxlen=1000").unwrap();
        assert_eq!(redis.broker.scope, "2");
        assert_eq!(
            redis.target,
            Target::RedisStream {
                key: "ww".into(),
                maxlen: Some(1000)
            }
        );
        assert_eq!(
            BrokerAddress::parse("redis://h?key=k")
                .unwrap()
                .broker
                .scope,
            "0"
        );
    }

    #[test]
    fn mistakes_are_named() {
        for (address, words) in [
            ("nats://u:p@h:4222/s", "credentials"),
            ("redis://:secret@h/0?key=k", "credentials"),
            ("nats://h:4222/", "names no subject"),
            ("nats://h:4222/a.*", "wildcard"),
            ("nats://h:4222/a..b", "empty token"),
            ("nats://h:4222/a?x=1", "means nothing"),
            ("amqp://h/%2f", "neither an exchange"),
            (
                "amqp://h/%2f?routing_key=k&queue=q",
                "?queue= means nothing",
            ),
            ("redis://h/0", "names no stream"),
            ("redis://h/x?key=k", "not a number"),
            ("redis://h/0?key=k&maxlen=0", "positive"),
            ("redis://h/0?key=k&key=j", "twice"),
            ("kafka://h/t", "names no broker"),
        ] {
            let err = BrokerAddress::parse(address).unwrap_err();
            assert!(err.0.contains(words), "{address}: {err}");
        }
    }

    #[test]
    fn a_broker_url_keeps_its_credentials_out_of_sight() {
        let url = BrokerUrl::parse("amqps://user:hunter2@mq.internal:5671/%2f").unwrap();
        assert_eq!(url.broker.to_string(), "amqps://mq.internal:5671/%2f");
        assert!(!format!("{url:?}").contains("hunter2"));
        let err = BrokerUrl::parse("nats://user:hunter2@h:4222/subject").unwrap_err();
        assert!(!err.0.contains("hunter2"), "{err}");
        assert!(BrokerUrl::parse("redis://h/0?key=k").is_err());
    }

    #[test]
    fn an_address_is_served_by_the_same_broker_and_never_with_less_tls() {
        let broker = |url: &str| BrokerUrl::parse(url).unwrap().broker;
        let address = |a: &str| BrokerAddress::parse(a).unwrap().broker;
        let tls = broker("amqps://u:p@mq:5671/%2f");
        assert!(serves(&tls, &address("amqp://mq:5671/%2f?routing_key=q")));
        assert!(serves(&tls, &address("amqps://mq/%2f?routing_key=q")));
        assert!(
            !serves(&tls, &address("amqp://mq/%2f?routing_key=q")),
            "port 5672"
        );
        let plain = broker("amqp://mq");
        assert!(serves(&plain, &address("amqp://mq/%2f?routing_key=q")));
        assert!(!serves(
            &plain,
            &address("amqps://mq:5672/%2f?routing_key=q")
        ));
        assert!(!serves(&plain, &address("amqp://mq/other?routing_key=q")));
        assert!(!serves(
            &broker("redis://h/1"),
            &address("redis://h/0?key=k")
        ));
        assert!(serves(&broker("tls://h:4222"), &address("nats://h/s")));
    }
}
