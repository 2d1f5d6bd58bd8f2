//! `--listen`: a host and port, resolved once at startup.

use std::net::{SocketAddr, ToSocketAddrs};

/// `--listen`: `HOST:PORT` as given, and the addresses it resolved to at startup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenAddr {
    given: String,
    addrs: Vec<SocketAddr>,
}

impl ListenAddr {
    /// Every address the host resolved to; binding takes the first that works.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Only this machine can connect: every address it names is a loopback one.
    pub fn is_loopback(&self) -> bool {
        self.addrs.iter().all(|a| a.ip().is_loopback())
    }
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.given)
    }
}

impl std::str::FromStr for ListenAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        const FORM: &str = "give HOST:PORT, e.g. 127.0.0.1:8080, [::1]:8080, localhost:8080 or 0.0.0.0:8080 for every interface";
        let given = s.trim().to_string();
        if let Ok(addr) = given.parse::<SocketAddr>() {
            return Ok(ListenAddr {
                given,
                addrs: vec![addr],
            });
        }
        if given.parse::<u16>().is_ok() {
            return Err(format!("{given:?} is a port alone; {FORM}"));
        }
        let Some((host, port)) = given.rsplit_once(':') else {
            return Err(format!("{given:?} has no port; {FORM}"));
        };
        if host.is_empty() {
            return Err(format!("{given:?} has no host; {FORM}"));
        }
        if port.parse::<u16>().is_err() {
            return Err(format!(
                "{given:?}: {port:?} is not a port (0 to 65535); {FORM}"
            ));
        }
        let addrs: Vec<SocketAddr> = given
            .to_socket_addrs()
            .map_err(|e| format!("{given:?}: the host {host:?} does not resolve ({e}); {FORM}"))?
            .collect();
        if addrs.is_empty() {
            return Err(format!(
                "{given:?}: the host {host:?} resolves to no address; {FORM}"
            ));
        }
        Ok(ListenAddr { given, addrs })
    }
}

#[cfg(test)]
mod tests {
    use crate::config::tests::parse;

    #[test]
    fn listen_takes_a_host_name_or_says_what_form_it_wants() {
        let args = parse(&["--dev", "--listen", "localhost:8080"]).unwrap();
        assert_eq!(args.listen.to_string(), "localhost:8080");
        assert!(!args.listen.addrs().is_empty());
        assert!(args
            .listen
            .addrs()
            .iter()
            .all(|a| a.port() == 8080 && a.ip().is_loopback()));
        assert!(args.validate().is_ok(), "localhost is loopback for --dev");
        let ipv6 = parse(&["--listen", "[::1]:0"]).unwrap();
        assert_eq!(ipv6.listen.addrs(), ["[::1]:0".parse().unwrap()]);
        for (bad, says) in [
            ("localhost", "has no port"),
            ("8080", "is a port alone"),
            (":8080", "has no host"),
            ("localhost:http", "is not a port"),
            ("no-such-host.invalid:80", "does not resolve"),
        ] {
            let err = parse(&["--listen", bad]).unwrap_err();
            assert!(
                err.contains("--listen") && err.contains(says) && err.contains("HOST:PORT"),
                "{bad}: {err}"
            );
        }
    }
}
