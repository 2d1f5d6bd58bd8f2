//! The Node.js receiver package (`clients/node`, docs/api.md §11): its own test suite,
//! under Node's test runner, run against this build's `watchwire` binary. That suite
//! runs every vector in `fixtures/notifications`, the unit tests, the `node:http` and
//! Express adapters on real sockets, and an end-to-end test in which this binary
//! delivers to an app built on the package. It needs Node.js 20 or later and `npm ci`
//! in `clients/node` (`clients/node/ci-setup.sh` installs both). Without them the test
//! says what is missing and passes, except in CI (`CI` set), where it fails. Its gateway
//! is its own, on the embedded store, so the suite's repeat on PostgreSQL skips it.

use std::path::Path;
use std::process::Command;

/// The major version of `node` on the PATH, if there is one.
fn node_major() -> Option<u32> {
    let output = Command::new("node").arg("--version").output().ok()?;
    let version = String::from_utf8_lossy(&output.stdout);
    version
        .trim()
        .strip_prefix('v')?
        .split('.')
        .next()?
        .parse()
        .ok()
}

#[test]
fn the_node_receiver_package_passes_its_tests_against_this_gateway() {
    if crate::common::store::is_postgres_repeat() {
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/node");
    let missing: Vec<&str> = [
        (
            node_major().is_none_or(|major| major < 20),
            "Node.js 20 or later (clients/node/ci-setup.sh)",
        ),
        (
            !dir.join("node_modules/express").exists(),
            "npm ci in clients/node (clients/node/ci-setup.sh)",
        ),
    ]
    .into_iter()
    .filter_map(|(absent, what)| absent.then_some(what))
    .collect();
    if !missing.is_empty() {
        test_support::skip("the Node.js receiver tests", &missing.join(", "));
        return;
    }
    // Node 20's runner takes files, not globs: name each test file (helpers under
    // test/support are not tests).
    let mut files: Vec<String> = std::fs::read_dir(dir.join("test"))
        .expect("clients/node/test exists")
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".test.js"))
        .map(|name| format!("test/{name}"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 8,
        "expected the package's test files, found {files:?}"
    );
    let output = Command::new("node")
        .arg("--test")
        .args(&files)
        .current_dir(&dir)
        .env("WATCHWIRE_BIN", env!("CARGO_BIN_EXE_watchwire"))
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let shown = format!("stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        output.status.success(),
        "the Node.js receiver tests failed\n{shown}"
    );
    // Every test ran, the end-to-end one included (it skips only without WATCHWIRE_BIN).
    assert!(stdout.contains("\n# fail 0"), "{shown}");
    assert!(
        stdout.contains("\n# skipped 0"),
        "a test was skipped\n{shown}"
    );
    let passed: usize = stdout
        .lines()
        .find_map(|line| line.strip_prefix("# pass "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(passed >= 100, "only {passed} tests passed\n{shown}");
}
