//! docs/api.md §17 mutual TLS and the egress proxy: each API key's channels present its
//! client certificate (or `--client-cert`) to an HTTPS receiver that demands one, signed
//! by a CA made for the test; with `--egress-proxy`, deliveries and token requests go
//! through a local forward proxy that is asked only for addresses the gateway checked,
//! the host name kept for TLS and `Host`; a target the proxy hangs on fails on its own.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;
use test_support::{Issued, TestCa};

use crate::common::forward_proxy::ForwardProxy;
use crate::common::https::{fingerprint, CLIENT_CERTIFICATE};
use crate::common::*;

const WHAT: &str = "mutual TLS and egress proxy tests";

/// A CA, a receiver certificate made out to `localhost` alone (so a handshake that
/// checked it against `127.0.0.1` would fail), and client certificates.
struct Certificates {
    ca: TestCa,
    receiver: Issued,
}

impl Certificates {
    fn new() -> Option<Certificates> {
        let ca = TestCa::new(WHAT, "watchwire receivers' CA")?;
        let receiver = ca.server("receiver", &["localhost"]);
        Some(Certificates { ca, receiver })
    }
}

/// A `--config` file of two keys: `photos` with a client certificate of its own, and
/// `plain` without.
fn config(dir: &std::path::Path, photos: &Issued) -> PathBuf {
    let path = dir.join("mtls-keys.toml");
    std::fs::write(
        &path,
        format!(
            "[[keys]]\nname = \"photos\"\nkey = \"photos-key\"\nclient_cert = {:?}\nclient_key = {:?}\n\n\
             [[keys]]\nname = \"plain\"\nkey = \"plain-key\"\n",
            photos.cert, photos.key
        ),
    )
    .unwrap();
    path
}

#[tokio::test]
async fn each_key_presents_its_own_client_certificate_or_the_default() {
    let Some(certs) = Certificates::new() else {
        return;
    };
    let photos = certs.ca.client("photos", "photos");
    let fallback = certs.ca.client("fallback", "gateway");
    let rx = Receiver::start_https(&certs.receiver, Some(&certs.ca.cert())).await;
    let config_dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start_with(|a| {
        a.dev = false;
        a.config = Some(config(config_dir.path(), &photos));
        a.allow_targets = vec!["127.0.0.1/32".into()];
        a.ca_file = Some(certs.ca.cert());
        a.client_cert = Some(fallback.cert.clone());
        a.client_key = Some(fallback.key.clone());
    })
    .await;
    for (key, id) in [("photos-key", "by-photos"), ("plain-key", "by-plain")] {
        gw.key(key).watch("/mtls", id, &rx.https_url()).await;
    }
    let mut presented = std::collections::HashMap::new();
    for got in rx.take(2).await {
        // Straight to a receiver whose TLS offers h2, deliveries speak HTTP/2.
        assert_eq!(got.version, axum::http::Version::HTTP_2);
        let channel = got.header("x-goog-channel-id").unwrap().to_string();
        presented.insert(channel, got.header(CLIENT_CERTIFICATE).unwrap().to_string());
    }
    assert_eq!(presented["by-photos"], fingerprint(&photos.cert));
    assert_eq!(presented["by-plain"], fingerprint(&fallback.cert));
}

/// Without a certificate to present, the receiver refuses the handshake: the attempt
/// is a `tlsError`, retried.
#[tokio::test]
async fn a_receiver_demanding_a_certificate_refuses_a_gateway_without_one() {
    let Some(certs) = Certificates::new() else {
        return;
    };
    let rx = Receiver::start_https(&certs.receiver, Some(&certs.ca.cert())).await;
    let gw = Gateway::start_with(|a| a.ca_file = Some(certs.ca.cert())).await;
    gw.watch("/mtls", "anonymous", &rx.https_url()).await;
    assert_eq!(gw.await_last_error("anonymous").await, "tlsError");
}

/// Unreadable files, a key that is not the certificate's, and half a pair stop the
/// gateway at startup with a message naming the file.
#[tokio::test]
async fn bad_client_certificate_files_stop_startup_naming_the_file() {
    let Some(certs) = Certificates::new() else {
        return;
    };
    let one = certs.ca.client("one", "one");
    let two = certs.ca.client("two", "two");
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.crt");
    let refused = |cert: &PathBuf, key: Option<&PathBuf>| {
        let mut args = test_args(dir.path());
        args.client_cert = Some(cert.clone());
        args.client_key = key.cloned();
        async move {
            match watchwire::server::start(args).await {
                Ok(_) => panic!("the gateway started"),
                Err(e) => format!("{e:#}"),
            }
        }
    };
    let err = refused(&one.cert, Some(&two.key)).await;
    assert!(
        err.contains(&format!("--client-key file {}", two.key.display()))
            && err.contains(&one.cert.display().to_string())
            && err.contains("is not the key of"),
        "{err}"
    );
    let err = refused(&missing, Some(&one.key)).await;
    assert!(
        err.contains(&format!(
            "--client-cert file {} cannot be read",
            missing.display()
        )),
        "{err}"
    );
    let err = refused(&one.key, Some(&one.key)).await;
    assert!(err.contains("holds no certificate"), "{err}");
    let err = refused(&one.cert, None).await;
    assert!(err.contains("go together"), "{err}");

    let config = dir.path().join("keys.toml");
    std::fs::write(
        &config,
        format!(
            "[[keys]]\nname = \"photos\"\nkey = \"k\"\nclient_cert = {:?}\nclient_key = {:?}\n",
            one.cert, two.key
        ),
    )
    .unwrap();
    let mut args = test_args(dir.path());
    args.config = Some(config);
    let err = format!("{:#}", watchwire::server::start(args).await.err().unwrap());
    assert!(
        err.contains("key \"photos\"")
            && err.contains(&format!("client_key file {}", two.key.display())),
        "{err}"
    );
}

/// Every delivery and token request goes through the proxy, which is asked for the
/// address the gateway resolved and checked, never for a name: `CONNECT 127.0.0.1:P`
/// for https:// (the receiver's certificate, made out to `localhost`, still checks:
/// the name is kept for TLS), the absolute form to the address for http://, `Host`
/// keeping the name. Client certificates go through the tunnel too.
#[tokio::test]
async fn deliveries_and_token_requests_go_through_the_proxy_by_checked_address() {
    let Some(certs) = Certificates::new() else {
        return;
    };
    let client = certs.ca.client("gateway", "gateway");
    let secure = Receiver::start_https(&certs.receiver, Some(&certs.ca.cert())).await;
    let plain = Receiver::start().await;
    let tokens = Receiver::start().await;
    tokens.respond(|_| {
        let body = json!({"access_token": "proxied-token", "expires_in": 3600});
        (200, vec![(BODY, body.to_string())])
    });
    let proxy = ForwardProxy::start().await;
    let gw = Gateway::start_with(|a| {
        a.dev = false;
        a.api_keys = vec![keys::ROOT.into()];
        a.allow_targets = vec!["127.0.0.1/32".into()];
        a.ca_file = Some(certs.ca.cert());
        a.client_cert = Some(client.cert.clone());
        a.client_key = Some(client.key.clone());
        a.egress_proxy = Some(proxy.url());
    })
    .await;
    let gw = gw.key(keys::ROOT);
    let (secure_port, plain_port, token_port) =
        (secure.addr.port(), plain.addr.port(), tokens.addr.port());
    gw.watch("/proxied", "secure", &secure.https_url()).await;
    let auth = json!({"type": "oauth2", "tokenUrl": format!("http://localhost:{token_port}/token"),
                      "clientId": "c", "clientSecret": "cs-proxied"});
    let watch = json!({"id": "plain", "type": "web_hook",
                       "address": format!("http://localhost:{plain_port}/hook"), "auth": auth});
    gw.watch_with("/proxied", watch).await;

    let got = secure.next().await;
    // Through the proxy, HTTP/1.1 even to a receiver that offers HTTP/2.
    assert_eq!(got.version, axum::http::Version::HTTP_11);
    assert_eq!(
        got.header("host"),
        Some(&*format!("localhost:{secure_port}"))
    );
    assert_eq!(
        got.header(CLIENT_CERTIFICATE),
        Some(&*fingerprint(&client.cert))
    );
    assert!(got.header("user-agent").unwrap().starts_with("watchwire/"));
    let got = plain.next().await;
    assert_eq!(
        got.header("host"),
        Some(&*format!("localhost:{plain_port}"))
    );
    assert_eq!(got.header("authorization"), Some("Bearer proxied-token"));
    assert_eq!(got.state(), "sync");

    let asked = proxy.asked();
    for expected in [
        format!("CONNECT 127.0.0.1:{secure_port}"),
        format!("POST http://127.0.0.1:{plain_port}/hook host=localhost:{plain_port}"),
        format!("POST http://127.0.0.1:{token_port}/token host=localhost:{token_port}"),
    ] {
        assert!(asked.contains(&expected), "{expected} not in {asked:?}");
    }
    for ask in &asked {
        let target = ask.split(' ').nth(1).unwrap();
        assert!(
            !target.contains("localhost"),
            "the proxy was asked for a name: {ask}"
        );
    }
}

/// A target the proxy never answers for is a failing host of its own: the healthy
/// channel beside it, through the same proxy, is delivered while the others wait, and
/// they fail with `timeout` at the connect timeout (then the host backs off) (5 s, far longer than the healthy
/// channel's delivery takes).
#[tokio::test]
async fn a_target_the_proxy_hangs_on_never_stalls_other_channels() {
    let healthy = Receiver::start().await;
    let hanging = Receiver::start().await;
    let proxy = ForwardProxy::start().await;
    let hanging_port = hanging.addr.port();
    proxy.hang_on(&format!("127.0.0.1:{hanging_port}"));
    let gw = Gateway::start_with(|a| {
        a.egress_proxy = Some(proxy.url());
        a.connect_timeout = Duration::from_secs(5);
    })
    .await;
    for i in 0..20 {
        gw.watch(
            "/hung",
            &format!("hung-{i}"),
            &format!("https://127.0.0.1:{hanging_port}/hook"),
        )
        .await;
    }
    gw.watch("/hung", "healthy", &healthy.url()).await;
    assert_eq!(healthy.next().await.state(), "sync");
    gw.publish(json!({"resource": "/hung", "state": "exists"}))
        .await;
    assert_eq!(healthy.next().await.state(), "exists");
    // The last hanging channel's first attempt, begun before the healthy one's, has
    // not ended yet.
    let channel = gw.get("/v1/channels/hung-19").await.expect(200).json;
    assert!(channel["delivery"]["lastError"].is_null(), "{channel}");
    assert_eq!(gw.await_last_error("hung-0").await, "timeout");
}

/// A proxy that cannot be reached is named in the failure.
#[tokio::test]
async fn an_unreachable_proxy_is_named_in_the_failure() {
    let rx = Receiver::start().await;
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = closed.local_addr().unwrap();
    drop(closed);
    let gw = Gateway::start_with(|a| a.egress_proxy = Some(format!("http://{dead}"))).await;
    gw.watch("/unproxied", "stranded", &rx.url()).await;
    assert_eq!(gw.await_last_error("stranded").await, "connectionFailed");
    let log = gw
        .get("/v1/channels/stranded/notifications")
        .await
        .expect(200)
        .json;
    assert!(
        log.to_string()
            .contains(&format!("could not connect to the egress proxy {dead}")),
        "{log}"
    );
}
