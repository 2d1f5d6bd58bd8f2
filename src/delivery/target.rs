//! Which addresses the gateway may deliver to (docs/api.md §10 Targets).
//!
//! By default only `https://` URLs whose addresses are public. Names are checked in the
//! outbound client's resolver, at connect time, so a name that resolves to a private
//! address is never connected to; literal IPs are checked before any attempt.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::brokers::address::BrokerId;
use crate::cidr::Cidr;
use crate::model::{Failure, FailureReason};

/// The delivery target policy.
#[derive(Debug, Clone, Default)]
pub struct TargetPolicy {
    /// `--dev`: http:// and any address.
    pub allow_all: bool,
    /// `--allow-targets`: networks reachable although private, over http:// too.
    pub allow: Vec<Cidr>,
    /// `--broker`: the brokers channels may deliver to (docs/api.md §20), without
    /// their credentials.
    pub brokers: Vec<BrokerId>,
}

impl TargetPolicy {
    fn allowed_network(&self, ip: IpAddr) -> bool {
        self.allow.iter().any(|net| net.contains(ip))
    }

    /// Checks what can be told of an address without the network: its scheme, its
    /// credentials and a literal IP. `Err` is a message for a person naming the rule.
    pub fn check_url(&self, url: &reqwest::Url) -> Result<(), String> {
        let literal = match url.host() {
            None => return Err("address must name a host".into()),
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            Some(url::Host::Domain(_)) => None,
        };
        let http_allowed =
            self.allow_all || literal.map_or(!self.allow.is_empty(), |ip| self.allowed_network(ip));
        match url.scheme() {
            "https" => {}
            // http:// only towards allowed networks: a literal IP in them, or a name
            // that must resolve into them (checked at watch time and before each attempt).
            "http" if http_allowed => {}
            "http" => return Err("address must be an https:// URL (http:// is allowed only with --dev or towards --allow-targets networks)".into()),
            other if self.allow_all || !self.allow.is_empty() => {
                return Err(format!("address must be an http:// or https:// URL, not {other}://"))
            }
            other => return Err(format!("address must be an https:// URL, not {other}://")),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("address must not carry credentials (user:password@)".into());
        }
        match literal {
            Some(ip) => self.check_ip(ip),
            None => Ok(()),
        }
    }

    /// Whether the resolver may connect to this address.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), String> {
        if self.allow_all || is_public(ip) || self.allowed_network(ip) {
            Ok(())
        } else {
            Err(format!("address {ip} is not a public address; deliveries go only to public addresses or --allow-targets networks"))
        }
    }

    /// Whether an address this host name resolved to may be connected to, for `scheme`:
    /// plain http:// only into `--allow-targets` networks.
    fn check_resolved(&self, scheme: &str, ip: IpAddr) -> Result<(), String> {
        if scheme == "http" && !self.allow_all {
            return match self.allowed_network(ip) {
                true => Ok(()),
                false => Err(format!("address {ip} is outside the --allow-targets networks, which are the only ones http:// may reach")),
            };
        }
        self.check_ip(ip)
    }

    /// The check a new channel's address must pass (docs/api.md §10): what the policy
    /// can never deliver is refused now rather than failing later. A host name is
    /// resolved: refused when every address it resolves to is refused; accepted when it
    /// does not resolve (yet), since delivery retries a name that does not resolve.
    pub async fn check_new_address(&self, url: &reqwest::Url) -> Result<(), String> {
        self.check_url(url)?;
        if self.allow_all {
            return Ok(());
        }
        let Some(url::Host::Domain(name)) = url.host() else {
            return Ok(());
        };
        let port = url.port_or_known_default().unwrap_or(443);
        let lookup = tokio::net::lookup_host((name, port));
        let Ok(Ok(addrs)) = tokio::time::timeout(WATCH_LOOKUP_TIMEOUT, lookup).await else {
            return Ok(());
        };
        let addrs: Vec<IpAddr> = addrs.map(|a| a.ip()).collect();
        match addrs
            .iter()
            .map(|ip| self.check_resolved(url.scheme(), *ip))
            .find_map(Result::err)
        {
            Some(reason)
                if addrs
                    .iter()
                    .all(|ip| self.check_resolved(url.scheme(), *ip).is_err()) =>
            {
                Err(format!(
                    "{name} resolves only to refused addresses: {reason}"
                ))
            }
            _ => Ok(()),
        }
    }

    /// The checks that must hold right before an attempt: literal IPs never reach the
    /// resolver, and plain http:// to a name must resolve only into allowed networks.
    /// A refused literal address is permanent; a name that does not resolve, or not
    /// into allowed networks, may resolve differently later and is retried.
    pub async fn check_before_connect(&self, url: &reqwest::Url) -> Result<(), Refusal> {
        self.check_url(url).map_err(|detail| Refusal {
            permanent: true,
            failure: Failure {
                reason: FailureReason::TargetRefused,
                detail,
                status: None,
            },
        })?;
        if self.allow_all || url.scheme() != "http" {
            return Ok(());
        }
        if let Some(url::Host::Domain(name)) = url.host() {
            let port = url.port_or_known_default().unwrap_or(80);
            let retry = |reason, detail| Refusal {
                permanent: false,
                failure: Failure {
                    reason,
                    detail,
                    status: None,
                },
            };
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name, port))
                .await
                .map_err(|e| {
                    retry(
                        FailureReason::DnsFailure,
                        format!("cannot resolve {name}: {e}"),
                    )
                })?
                .collect();
            if let Some(reason) = addrs
                .iter()
                .find_map(|a| self.check_resolved("http", a.ip()).err())
            {
                return Err(retry(
                    FailureReason::TargetRefused,
                    format!("{name}: {reason}"),
                ));
            }
            if addrs.is_empty() {
                return Err(retry(
                    FailureReason::DnsFailure,
                    format!("{name} resolves to no address"),
                ));
            }
        }
        Ok(())
    }
}

/// How long a watch waits for its address's name to resolve.
const WATCH_LOOKUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Why the policy refused an attempt before it connected.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// Nothing can change the answer (a literal address): the notification fails.
    pub permanent: bool,
    pub failure: Failure,
}

/// The resolver's refusal of a name whose every address the policy refuses; the
/// outbound client finds it in the error chain to classify the attempt.
#[derive(Debug)]
pub struct PolicyRefused(pub String);

impl std::fmt::Display for PolicyRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PolicyRefused {}

/// The resolver's failure to resolve a name, classified as `dnsFailure`.
#[derive(Debug)]
pub struct NameNotResolved(pub String);

impl std::fmt::Display for NameNotResolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NameNotResolved {}

/// Whether an address is publicly routable (not loopback, private, link-local,
/// shared, documentation, multicast, reserved, or an IPv4-mapped form of those).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local
        || (first & 0xffc0) == 0xfe80 // link-local
        || first == 0x2001 && ip.segments()[1] == 0x0db8 // documentation
        || first == 0x0064 && ip.segments()[1] == 0xff9b // NAT64 (embeds IPv4)
        || (first & 0xffc0) == 0xfec0 // site-local (deprecated, still routed inside some networks)
        || ip.segments()[..4] == [0x0100, 0, 0, 0] // discard-only
        || first == 0x2001 && ip.segments()[1] == 0 // Teredo (embeds IPv4)
        || first == 0x2002 // 6to4 (embeds IPv4)
        || ip.segments()[..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible
}

impl TargetPolicy {
    /// The addresses `host` resolves to that the policy lets `scheme` reach (port 0),
    /// in the resolver's order: at least one, or `NameNotResolved` / `PolicyRefused`.
    pub async fn resolve(
        &self,
        scheme: &str,
        host: &str,
    ) -> Result<Vec<SocketAddr>, Box<dyn std::error::Error + Send + Sync>> {
        let found: Vec<SocketAddr> = tokio::net::lookup_host((host, 0))
            .await
            .map_err(|e| NameNotResolved(format!("cannot resolve {host}: {e}")))?
            .collect();
        if found.is_empty() {
            return Err(NameNotResolved(format!("{host} resolves to no address")).into());
        }
        let allowed: Vec<SocketAddr> = found
            .iter()
            .copied()
            .filter(|a| self.check_resolved(scheme, a.ip()).is_ok())
            .collect();
        if !allowed.is_empty() {
            return Ok(allowed);
        }
        let why = match scheme {
            "http" if !self.allow_all => self
                .check_resolved(scheme, found[0].ip())
                .err()
                .unwrap_or_default(),
            _ => format!(
                "it resolves only to non-public addresses ({}); deliveries go only to public addresses or --allow-targets networks",
                found[0].ip()
            ),
        };
        Err(PolicyRefused(format!("{host}: {why}")).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_addresses() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "fec0::1",
            "100::1",
            "2002:7f00:1::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "224.0.0.1",
            "240.0.0.1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in [
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn checks_urls() {
        let strict = TargetPolicy::default();
        let url = |s: &str| reqwest::Url::parse(s).unwrap();
        assert!(strict
            .check_url(&url("https://user:pw@example.com/"))
            .is_err());
        assert!(strict.check_url(&url("https://example.com/hook")).is_ok());
        assert!(strict.check_url(&url("http://example.com/hook")).is_err());
        assert!(strict.check_url(&url("https://127.0.0.1/hook")).is_err());
        assert!(strict
            .check_url(&url("https://[::ffff:169.254.169.254]/"))
            .is_err());
        assert!(strict
            .check_url(&url("ftp://example.com/"))
            .unwrap_err()
            .contains("https://"));
        let dev = TargetPolicy {
            allow_all: true,
            allow: vec![],
            brokers: vec![],
        };
        assert!(dev.check_url(&url("http://127.0.0.1:9/hook")).is_ok());
        assert!(
            dev.check_url(&url("ftp://127.0.0.1/"))
                .unwrap_err()
                .contains("http:// or https://"),
            "where http:// is allowed, the message says so"
        );
        let listed = TargetPolicy {
            allow_all: false,
            allow: vec!["10.0.0.0/8".parse().unwrap()],
            brokers: vec![],
        };
        assert!(listed.check_url(&url("http://10.1.2.3/hook")).is_ok());
        assert!(listed.check_url(&url("https://10.1.2.3/hook")).is_ok());
        assert!(listed.check_url(&url("http://192.168.1.1/hook")).is_err());
        assert!(listed.check_url(&url("https://192.168.1.1/hook")).is_err());
        assert!(
            listed.check_url(&url("http://8.8.8.8/hook")).is_err(),
            "http:// only towards listed networks"
        );
    }
}

#[cfg(test)]
mod watch_time {
    use super::*;

    fn url(s: &str) -> reqwest::Url {
        reqwest::Url::parse(s).unwrap()
    }

    #[tokio::test]
    async fn names_that_resolve_only_to_refused_addresses_are_refused_at_watch_time() {
        let listed = TargetPolicy {
            allow_all: false,
            allow: vec!["10.0.0.0/8".parse().unwrap()],
            brokers: vec![],
        };
        let refused = listed
            .check_new_address(&url("http://localhost:9/hook"))
            .await
            .unwrap_err();
        assert!(
            refused.contains("localhost") && refused.contains("--allow-targets"),
            "{refused}"
        );
        let strict = TargetPolicy::default();
        assert!(strict
            .check_new_address(&url("https://localhost/"))
            .await
            .is_err());
        // A name that does not resolve may resolve later: accepted, and retried.
        assert!(listed
            .check_new_address(&url("http://no-such-host.invalid/"))
            .await
            .is_ok());
        let loopback = TargetPolicy {
            allow_all: false,
            allow: vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
            brokers: vec![],
        };
        assert!(loopback
            .check_new_address(&url("http://localhost:9/"))
            .await
            .is_ok());
    }

    #[tokio::test]
    async fn a_name_that_does_not_resolve_is_retried_not_failed() {
        let listed = TargetPolicy {
            allow_all: false,
            allow: vec!["127.0.0.1/32".parse().unwrap()],
            brokers: vec![],
        };
        let refusal = listed
            .check_before_connect(&url("http://no-such-host.invalid/"))
            .await
            .unwrap_err();
        assert!(!refusal.permanent);
        assert_eq!(refusal.failure.reason, FailureReason::DnsFailure);
        let refusal = listed
            .check_before_connect(&url("https://10.0.0.1/"))
            .await
            .unwrap_err();
        assert!(refusal.permanent, "a literal address cannot change");
    }
}

#[cfg(test)]
mod resolver {
    use super::*;

    #[tokio::test]
    async fn the_connecting_resolver_drops_refused_addresses_and_says_why() {
        let strict = TargetPolicy::default();
        let error = match strict.resolve("https", "localhost").await {
            Ok(_) => panic!("localhost resolves only to loopback addresses"),
            Err(e) => e,
        };
        assert!(error.downcast_ref::<PolicyRefused>().is_some(), "{error}");
        let error = match strict.resolve("https", "watchwire-test.invalid").await {
            Ok(_) => panic!(".invalid never resolves"),
            Err(e) => e,
        };
        assert!(error.downcast_ref::<NameNotResolved>().is_some(), "{error}");
        let dev = TargetPolicy {
            allow_all: true,
            allow: vec![],
            brokers: vec![],
        };
        assert!(dev.resolve("https", "localhost").await.is_ok());
    }
}
