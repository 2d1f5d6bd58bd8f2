//! Operations: /healthz, /metrics, configuration from the environment, refusals at start,
//! CORS and idempotent publishes.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use crate::common::process::GatewayProcess;
use crate::common::*;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn healthz_and_metrics_report_the_gateway() {
    let gw = Gateway::start().await;
    let rx = Receiver::start().await;
    gw.watch("/m", "metrics-channel", &rx.url()).await;
    rx.next().await;
    gw.publish(json!({"resource": "/m", "state": "exists"}))
        .await;
    rx.next().await;

    let health = gw.get("/healthz").await.expect(200);
    assert_eq!(health.json["status"], "ok");

    let metrics = gw.get("/metrics").await.expect(200);
    assert!(metrics
        .header("content-type")
        .unwrap()
        .starts_with("text/plain"));
    let text = metrics.text;
    for (name, labels) in [
        ("watchwire_events_published_total", &[][..]),
        (
            "watchwire_notifications_total",
            &["outcome=\"delivered\""][..],
        ),
        ("watchwire_delivery_latency_seconds_bucket", &[][..]),
        ("watchwire_channels_live", &[][..]),
        ("watchwire_pending_notifications", &[][..]),
        ("watchwire_store_commits_total", &[][..]),
    ] {
        assert!(
            metric_sample(&text, name, labels).is_some(),
            "metrics lack {name}{labels:?}:\n{text}"
        );
    }
}

/// The first line a `watchwire serve` child prints on stdout.
fn first_line(child: &mut Child) -> String {
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    line
}

/// The URL a `watchwire serve` child says it listens on.
fn listening_url(child: &mut Child) -> String {
    let line = first_line(child);
    line.trim()
        .strip_prefix("watchwire listening on ")
        .unwrap_or_else(|| panic!("no listening line: {line:?}"))
        .to_string()
}

#[tokio::test]
async fn every_serve_option_reads_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_watchwire"))
        .arg("serve")
        .env("WATCHWIRE_DEV", "true")
        .env("WATCHWIRE_LISTEN", "127.0.0.1:0")
        .env("WATCHWIRE_DATA_DIR", dir.path())
        .env("WATCHWIRE_PUBLIC_URL", "https://push.example.com/")
        .env("WATCHWIRE_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let url = listening_url(&mut child);
    let body = json!({"id": "env", "type": "web_hook", "address": "http://127.0.0.1:9/"});
    let answer = Api::new(url).post("/env/check/watch", &body).await.json;
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(answer["resourceUri"], "https://push.example.com/env/check");
    assert!(
        dir.path().join("watchwire.db").exists(),
        "the data dir came from WATCHWIRE_DATA_DIR"
    );
}

#[test]
fn refuses_to_start_without_keys_or_dev_and_dev_on_a_public_address() {
    let run = |args: &[&str]| {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_watchwire"))
            .arg("serve")
            .args(args)
            .arg("--data-dir")
            .arg(dir.path())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (ok, err) = run(&["--listen", "127.0.0.1:0"]);
    assert!(!ok && err.contains("--api-key"), "{err}");
    let (ok, err) = run(&["--dev", "--listen", "0.0.0.0:0"]);
    assert!(!ok && err.contains("non-loopback"), "{err}");
}

/// Runs `watchwire serve ARGS` that is expected to refuse to start; returns whether it
/// succeeded and its stderr.
fn refused(args: &[&str]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_watchwire"))
        .arg("serve")
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.stdout.is_empty(),
        "a refused start prints no listening line"
    );
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn refuses_a_duration_without_a_unit_and_nonsensical_values_naming_the_option() {
    let (ok, err) = refused(&["--dev", "--retry-budget", "5"]);
    assert!(!ok, "--retry-budget 5 must not start");
    assert!(
        err.contains("--retry-budget") && err.contains(r#""5" needs a unit"#),
        "{err}"
    );
    let (ok, err) = refused(&["--dev", "--max-body-bytes", "0"]);
    assert!(
        !ok && err.contains("--max-body-bytes must be at least 1"),
        "{err}"
    );
    let (ok, err) = refused(&["--dev", "--prune-interval", "0s"]);
    assert!(
        !ok && err.contains("--prune-interval must be longer than 0"),
        "{err}"
    );
    let (ok, err) = refused(&["--dev", "--retry-schedule", "1s,0ms"]);
    assert!(!ok && err.contains("--retry-schedule"), "{err}");
    let (ok, err) = refused(&["--dev", "--cors-origins", "app.example.com"]);
    assert!(!ok && err.contains("--cors-origins"), "{err}");
}

#[test]
fn refuses_zero_retention_and_disable_after_and_a_zero_max_ttl_naming_the_option() {
    for option in [
        "--retention",
        "--log-retention",
        "--disable-after",
        "--max-channel-ttl",
    ] {
        let (ok, err) = refused(&["--dev", option, "0s"]);
        assert!(
            !ok && err.contains(&format!("{option} must be longer than 0")),
            "{option} 0s: {err}"
        );
    }
}

#[test]
fn refuses_a_public_url_and_a_ca_file_that_could_never_work() {
    let (ok, err) = refused(&["--dev", "--public-url", "push.example.com"]);
    assert!(!ok && err.contains("--public-url"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("ca.pem");
    std::fs::write(&pem, "not a certificate\n").unwrap();
    let (ok, err) = refused(&["--dev", "--ca-file", pem.to_str().unwrap()]);
    assert!(
        !ok && err.contains("--ca-file") && err.contains("no PEM certificate"),
        "{err}"
    );
}

#[test]
fn refuses_a_key_given_twice_and_keys_that_could_do_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("keys.toml");
    let refused_config = |text: &str| {
        std::fs::write(&config, text).unwrap();
        refused(&["--config", config.to_str().unwrap()])
    };
    let (ok, err) = refused_config(
        "[[keys]]\nname = \"backend\"\nkey = \"s3cret-value\"\nscopes = [\"publish\"]\n\n[[keys]]\nname = \"ops\"\nkey = \"s3cret-value\"\n",
    );
    assert!(
        !ok && err.contains(r#"entry 1 ("backend")"#) && err.contains(r#"entry 2 ("ops")"#),
        "{err}"
    );
    assert!(
        !err.contains("s3cret-value"),
        "the key is never printed: {err}"
    );
    let (ok, err) = refused_config("[[keys]]\nname = \"idle\"\nkey = \"k\"\nscopes = []\n");
    assert!(!ok && err.contains("scopes is empty"), "{err}");
}

/// What users write is understood: a host name in `--listen`, and `1` for a switch in
/// the environment, as shells and container platforms write it.
#[tokio::test]
async fn listen_takes_a_host_name_and_switches_take_one_and_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_watchwire"))
        .args(["serve", "--listen", "localhost:0", "--log", "warn"])
        .arg("--data-dir")
        .arg(dir.path())
        .env("WATCHWIRE_DEV", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let url = listening_url(&mut child);
    let health = Api::new(url).get("/healthz").await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(health.status, 200);

    let refusal = |listen: &str, dev: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_watchwire"))
            .args(["serve", "--listen", listen, "--data-dir"])
            .arg(dir.path())
            .env("WATCHWIRE_DEV", dev)
            .env_remove("WATCHWIRE_API_KEYS")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "--listen {listen} WATCHWIRE_DEV={dev} started"
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = refusal("127.0.0.1:0", "0");
    assert!(err.contains("no API key"), "WATCHWIRE_DEV=0 is off: {err}");
    let err = refusal("localhost", "1");
    assert!(
        err.contains("--listen") && err.contains("HOST:PORT"),
        "{err}"
    );
    let err = refusal("127.0.0.1:0", "maybe");
    assert!(
        err.contains("--dev") && err.contains("true or false"),
        "{err}"
    );
}

/// A database that cannot be reached is named (host and port) with the reason, and
/// never with the password of its URL.
#[test]
fn a_database_that_refuses_the_connection_is_named_with_the_reason() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let url = format!("postgres://ww:s3cret@127.0.0.1:{port}/ww?password=s3cret");
    let (ok, err) = refused(&["--dev", "--database-url", &url]);
    assert!(!ok, "{err}");
    assert!(
        err.contains(&format!("127.0.0.1:{port}")) && err.contains("Connection refused"),
        "{err}"
    );
    assert!(!err.contains("s3cret"), "{err}");
}

/// Starting again on a schema that is up to date says nothing about it: no server
/// notice ("relation … already exists, skipping") reaches the log.
#[test]
fn a_start_on_a_migrated_postgresql_schema_logs_no_server_notice() {
    if crate::common::store::is_postgres_repeat() {
        return; // It brings its own schema, whatever the store: the first pass ran it.
    }
    let Some(database) = crate::common::store::shared_schema("notices") else {
        return;
    };
    let args = ["--dev", "--database-url", &database.url];
    let (_dir, first) = serve_and_collect_logs(&args, &[]);
    assert!(first.contains("migrated the PostgreSQL schema"), "{first}");
    let (_dir, again) = serve_and_collect_logs(&args, &[]);
    assert!(
        !again.contains("NOTICE")
            && !again.contains("already exists")
            && !again.contains("migrated"),
        "{again}"
    );
    assert!(again.contains("watchwire started"), "{again}");
}

/// What the gateway's `watchwire_log_lines_dropped_total` says.
async fn dropped_lines(api: &Api) -> f64 {
    let text = scrape(api).await;
    metric_sample(&text, "watchwire_log_lines_dropped_total", &[])
        .unwrap_or_else(|| panic!("no watchwire_log_lines_dropped_total:\n{text}"))
}

/// Publishes from several tasks at once; every answer's status.
async fn publish_concurrently(api: &Api, count: usize) -> Vec<u16> {
    let publishes: Vec<_> = (0..count)
        .map(|i| {
            let api = api.clone();
            tokio::spawn(async move {
                let event = json!({"resource": format!("/out/{i}"), "state": "exists"});
                api.post("/v1/events", &event).await.status
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for publish in publishes {
        statuses.push(publish.await.unwrap());
    }
    statuses
}

/// Output that cannot be written (docs/api.md §12.1 Logs) — a closed pipe, as
/// `watchwire serve | head -1` leaves it, or a full disk — stops nothing and costs no
/// request its answer; the lines it could not write are counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_that_cannot_be_written_costs_no_request_its_answer() {
    let closed_pipe = || {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        Stdio::from(writer)
    };
    let full_disk = || {
        let full = std::fs::OpenOptions::new().write(true).open("/dev/full");
        Stdio::from(full.unwrap())
    };
    let outputs = [
        ("a closed pipe", closed_pipe(), closed_pipe()),
        ("a full disk", full_disk(), full_disk()),
    ];
    for (output, stdout, stderr) in outputs {
        let dir = tempfile::tempdir().unwrap();
        let extra = ["--log", "info"];
        let gateway = GatewayProcess::with_output(dir.path(), &extra, stdout, stderr).await;
        // A failing delivery is logged too.
        gateway
            .watch("/out", "refused", "http://127.0.0.1:9/")
            .await;
        let statuses = publish_concurrently(&gateway.api, 40).await;
        assert!(statuses.iter().all(|s| *s == 200), "{output}: {statuses:?}");
        assert!(
            dropped_lines(&gateway.api).await >= 2.0,
            "{output}: the listening line and the startup log were not written"
        );
        gateway.signal(nix::sys::signal::Signal::SIGTERM);
        let status = gateway.exited_within(PATIENCE).await;
        assert!(
            status.success(),
            "{output}: a SIGTERM is a clean stop: {status}"
        );
    }
}

/// A log reader that stopped reading (its pipe full) holds up neither startup, nor a
/// request, nor the exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_nobody_reads_holds_up_nothing() {
    use nix::fcntl::{fcntl, FcntlArg};
    use std::io::Write;
    let (reader, mut writer) = std::io::pipe().unwrap();
    let size = fcntl(&writer, FcntlArg::F_SETPIPE_SZ(4096)).unwrap();
    writer.write_all(&vec![b'.'; size as usize]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let extra = ["--log", "info"];
    let gateway =
        GatewayProcess::with_output(dir.path(), &extra, Stdio::null(), Stdio::from(writer)).await;
    gateway
        .watch("/out", "refused", "http://127.0.0.1:9/")
        .await;
    let statuses = publish_concurrently(&gateway.api, 40).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    gateway.signal(nix::sys::signal::Signal::SIGTERM);
    let status = gateway.exited_within(PATIENCE).await;
    assert!(status.success(), "{status}");
    drop(reader);
}

/// Runs `watchwire serve --dev ARGS` with stderr piped (not a terminal), makes one
/// request, stops it with SIGTERM and returns its data dir and everything it logged.
fn serve_and_collect_logs(args: &[&str], envs: &[(&str, &str)]) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_watchwire"))
        .arg("serve")
        .args(["--listen", "127.0.0.1:0", "--log", "info", "--data-dir"])
        .arg(dir.path())
        .args(args)
        .env_remove("WATCHWIRE_LOG_FORMAT")
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let line = first_line(&mut child);
    assert!(
        line.starts_with("watchwire listening on http://127.0.0.1:"),
        "{line:?}"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "a SIGTERM is a clean stop");
    (dir, String::from_utf8_lossy(&out.stderr).to_string())
}

#[test]
fn logs_have_no_colours_when_piped_and_say_once_what_the_gateway_runs_as() {
    let (dir, log) =
        serve_and_collect_logs(&["--dev", "--public-url", "https://push.example.com"], &[]);
    assert!(
        !log.contains("\x1b["),
        "ANSI escapes in a piped log:\n{log}"
    );
    let started: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("watchwire started"))
        .collect();
    assert_eq!(started.len(), 1, "one startup summary:\n{log}");
    let store = format!(
        "store=sqlite:{}",
        std::fs::canonicalize(dir.path()).unwrap().display()
    );
    for field in [
        "mode=dev",
        "keys=0",
        store.as_str(),
        "listen=127.0.0.1:",
        "public_url=https://push.example.com",
    ] {
        assert!(
            started[0].contains(field),
            "{field} missing: {}",
            started[0]
        );
    }
    assert!(
        !log.contains("listening"),
        "the log does not repeat the stdout line:\n{log}"
    );
}

#[test]
fn json_logs_are_one_object_per_line() {
    let (_dir, log) = serve_and_collect_logs(
        &["--api-key", "k1", "--api-key", "k2"],
        &[("WATCHWIRE_LOG_FORMAT", "json")],
    );
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    let started: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["message"] == "watchwire started")
        .collect();
    assert_eq!(started.len(), 1, "{log}");
    assert_eq!(started[0]["level"], "INFO");
    assert_eq!(started[0]["mode"], "keys");
    assert_eq!(started[0]["keys"], 2);
    assert!(started[0]["store"]
        .as_str()
        .unwrap()
        .starts_with("sqlite:/"));
    assert!(
        lines.iter().any(|l| l["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("shutting down"))),
        "{log}"
    );
}

/// A preflight as a browser sends it before a cross-origin JSON publish.
async fn preflight(api: &Api, path: &str, origin: &str) -> Reply {
    api.header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type,idempotency-key",
        )
        .send(Method::OPTIONS, path, "")
        .await
}

/// Opens a stream (whose handler sets its own allow-origin) and returns its head.
async fn stream_head(api: &Api, origin: &str) -> Reply {
    let stream = api
        .header("origin", origin)
        .stream("/v1/watch?resource=/cors")
        .await;
    let head = &stream.response;
    Reply::new(
        head.status().as_u16(),
        head.headers().clone(),
        String::new(),
    )
}

#[tokio::test]
async fn cors_answers_preflights_from_allowed_origins_only() {
    const APP: &str = "https://app.example.com";
    let gw = Gateway::keyed(|a| {
        a.cors_origins = vec![APP.into(), "http://localhost:3000".into()];
    })
    .await;

    let ok = preflight(&gw, "/v1/events", APP).await;
    assert_eq!(ok.status, 204);
    assert_eq!(ok.header("access-control-allow-origin"), Some(APP));
    assert_eq!(
        ok.header("access-control-allow-methods"),
        Some("GET, POST, DELETE, OPTIONS")
    );
    let allowed_headers = ok.header("access-control-allow-headers").unwrap();
    for name in [
        "authorization",
        "content-type",
        "idempotency-key",
        "last-event-id",
    ] {
        assert!(allowed_headers.contains(name), "{allowed_headers}");
    }
    assert!(ok.header("access-control-max-age").is_some());
    assert_eq!(
        ok.header("access-control-expose-headers"),
        Some("etag, idempotent-replayed, retry-after")
    );
    assert_eq!(ok.header("vary"), Some("origin"));

    // Another origin: the routes answer as without CORS, and nothing allows it.
    let other = preflight(&gw, "/v1/events", "https://evil.example").await;
    assert_eq!(other.status, 405);
    assert!(other.header("access-control-allow-origin").is_none());
    assert_eq!(
        other.json["error"]["errors"][0]["reason"],
        "httpMethodNotAllowed"
    );

    // The actual call from the allowed origin, with its key.
    let from_app = gw.header("origin", APP);
    let publish = from_app
        .key(keys::ROOT)
        .post(
            "/v1/events",
            &json!({"resource": "/cors", "state": "exists"}),
        )
        .await
        .expect(200);
    assert_eq!(publish.header("access-control-allow-origin"), Some(APP));
    assert!(publish
        .header("access-control-expose-headers")
        .unwrap()
        .contains("idempotent-replayed"));
    assert_eq!(publish.header("vary"), Some("origin"));
    // An error too, so that the page can read why.
    let refused = from_app.post("/v1/events", &json!({})).await.expect(401);
    assert_eq!(refused.header("access-control-allow-origin"), Some(APP));

    // The stream sets its own header; the policy wins over it.
    let root = gw.key(keys::ROOT);
    let stream = stream_head(&root, APP).await;
    assert_eq!(stream.header("access-control-allow-origin"), Some(APP));
    let stream = stream_head(&root, "https://evil.example").await;
    assert!(stream.header("access-control-allow-origin").is_none());

    // Outside /v1 (Google's paths, operations) there is no CORS.
    let health = from_app.get("/healthz").await;
    assert!(health.header("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn cors_allows_any_origin_in_dev_and_none_on_a_keyed_gateway_by_default() {
    let dev = Gateway::start().await;
    let any = preflight(&dev, "/v1/events", "http://localhost:5173").await;
    assert_eq!(any.status, 204);
    assert_eq!(any.header("access-control-allow-origin"), Some("*"));
    let stream = stream_head(&dev, "http://localhost:5173").await;
    assert_eq!(stream.header("access-control-allow-origin"), Some("*"));

    let keyed = Gateway::keyed(|_| {}).await;
    let none = preflight(&keyed, "/v1/events", "http://localhost:5173").await;
    assert_eq!(none.status, 405);
    let cors_headers: Vec<_> = none
        .headers
        .keys()
        .filter(|name| name.as_str().starts_with("access-control-"))
        .collect();
    assert!(cors_headers.is_empty(), "{cors_headers:?}");
    assert_eq!(none.json["error"]["code"], 405);
    let stream = stream_head(&keyed.key(keys::ROOT), "http://localhost:5173").await;
    assert!(stream.header("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn a_publish_answered_from_an_earlier_one_says_so() {
    let gw = Gateway::start().await;
    let publish = |key: &'static str| {
        let api = gw.header("idempotency-key", key);
        async move {
            api.post(
                "/v1/events",
                &json!({"resource": "/idem", "state": "exists"}),
            )
            .await
        }
    };
    let first = publish("order-1").await.expect(200);
    assert!(first.header("idempotent-replayed").is_none());
    let again = publish("order-1").await.expect(200);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.json, first.json);
    let other = publish("order-2").await;
    assert!(other.header("idempotent-replayed").is_none());
}

/// The value of the one sample `name{labels…}` whose labels include all of `labels`.
async fn scrape(api: &Api) -> String {
    api.get("/metrics").await.expect(200).text
}

/// A child process: the counts and the process metrics are its own, not those of every
/// gateway the other tests run in this process.
#[tokio::test]
async fn metrics_list_every_series_from_the_start_with_requests_and_the_process() {
    // Keyed: /metrics needs an admin key, and nothing has happened yet.
    let dir = tempfile::tempdir().unwrap();
    let gw = GatewayProcess::keyed(dir.path(), &[]);
    gw.get("/metrics").await.expect(401);
    let admin = gw.key(keys::ROOT);
    let text = scrape(&admin).await;
    for (name, labels) in [
        ("watchwire_events_published_total", &[][..]),
        ("watchwire_store_commits_total", &[]),
        ("watchwire_notifications_total", &["outcome=\"delivered\""]),
        ("watchwire_notifications_total", &["outcome=\"retried\""]),
        ("watchwire_notifications_total", &["outcome=\"failed\""]),
        ("watchwire_delivery_latency_seconds_count", &[]),
        ("watchwire_pending_notifications", &[]),
        ("watchwire_channels_live", &[]),
        ("watchwire_channels_backlogged", &[]),
        ("watchwire_log_lines_dropped_total", &[]),
        (
            "watchwire_http_requests_total",
            &["route=\"/v1/events\"", "status=\"5xx\""],
        ),
        (
            "watchwire_http_requests_total",
            &["route=\"watch\"", "status=\"4xx\""],
        ),
        (
            "watchwire_http_request_duration_seconds_count",
            &["route=\"/v1/channels/{id}\""],
        ),
    ] {
        assert!(
            metric_sample(&text, name, labels).is_some(),
            "{name}{labels:?} is missing:\n{text}"
        );
    }

    // The request counter moves by route template and status class.
    let enable_404 = ["route=\"/v1/channels/{id}/enable\"", "status=\"4xx\""];
    let before = metric_sample(&text, "watchwire_http_requests_total", &enable_404).unwrap();
    for id in ["a", "b", "c"] {
        admin
            .post_raw(&format!("/v1/channels/{id}/enable"), "")
            .await
            .expect(404);
    }
    gw.get("/no/such/thing-1234").await;
    let text = scrape(&admin).await;
    let after = metric_sample(&text, "watchwire_http_requests_total", &enable_404).unwrap();
    assert_eq!(after - before, 3.0, "{text}");
    assert!(
        metric_sample(
            &text,
            "watchwire_http_requests_total",
            &["route=\"other\"", "status=\"4xx\""]
        )
        .unwrap()
            >= 1.0
    );
    assert!(
        !text.contains("thing-1234") && !text.contains("/v1/channels/a"),
        "raw paths never become labels"
    );
    assert!(
        metric_sample(
            &text,
            "watchwire_http_request_duration_seconds_count",
            &["route=\"/v1/channels/{id}/enable\""]
        )
        .unwrap()
            >= 3.0
    );

    // Process metrics, read at the scrape.
    if cfg!(target_os = "linux") {
        let value =
            |name| metric_sample(&text, name, &[]).unwrap_or_else(|| panic!("{name}:\n{text}"));
        assert!(value("process_resident_memory_bytes") > 1e6);
        assert!(value("process_virtual_memory_bytes") >= value("process_resident_memory_bytes"));
        assert!(value("process_cpu_seconds_total") >= 0.0);
        assert!(value("process_open_fds") >= 3.0);
        assert!(value("process_max_fds") >= value("process_open_fds"));
        assert!(value("process_threads") >= 1.0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let started = value("process_start_time_seconds");
        assert!(
            started <= now + 1.0 && started > now - 3600.0,
            "{started} vs {now}"
        );
        assert!(text.contains("# TYPE process_cpu_seconds_total counter"));
    }
}
