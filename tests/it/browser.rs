//! The browser tests (`tests/browser/`, docs/api.md §15): the console and the browser's
//! own `EventSource`, in Debian's chromium driven by playwright-core under Node's test
//! runner, against this build's `watchwire` binary. They need `node`, `chromium` and
//! `npm ci` in `tests/browser`; `.ci/run` installs all three. Without them the test
//! says what is missing and passes, except in CI (`CI` set), where it fails. Its
//! gateways are its own, on the embedded store, so the suite's repeat on PostgreSQL
//! skips it.

use std::path::Path;
use std::process::Command;

#[test]
fn the_console_and_eventsource_work_in_a_real_browser() {
    if crate::common::store::is_postgres_repeat() {
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let chromium = std::env::var("WATCHWIRE_CHROMIUM").unwrap_or("/usr/bin/chromium".into());
    let missing: Vec<&str> = [
        (
            !dir.join("node_modules/playwright-core").exists(),
            "npm ci in tests/browser",
        ),
        (
            !Path::new(&chromium).exists(),
            "chromium (apt-get install chromium)",
        ),
        (
            Command::new("node").arg("--version").output().is_err(),
            "node",
        ),
    ]
    .into_iter()
    .filter_map(|(absent, what)| absent.then_some(what))
    .collect();
    if !missing.is_empty() {
        test_support::skip("the browser tests", &missing.join(", "));
        return;
    }
    let status = Command::new("node")
        .args(["--test", "--test-concurrency=1"])
        .current_dir(&dir)
        .env("WATCHWIRE_BIN", env!("CARGO_BIN_EXE_watchwire"))
        .env("WATCHWIRE_CHROMIUM", &chromium)
        .status()
        .expect("node runs");
    assert!(
        status.success(),
        "the browser tests failed (their output is above)"
    );
}
