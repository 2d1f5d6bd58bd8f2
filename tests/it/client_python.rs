//! The Python receiver package (`clients/python`, docs/api.md §11): its own pytest suite,
//! which runs every vector of `fixtures/notifications`, the adapters through their
//! frameworks, and an end-to-end test against this build's `watchwire` binary. It runs
//! in `clients/python/.venv` when `clients/python/ci-setup.sh` made one (`.ci/run`
//! calls it), else in `python3`. Without Python or the test tools the test says what
//! is missing and passes, except in CI (`CI` set), where it fails. Its gateways are its
//! own, on the embedded store, so the suite's repeat on PostgreSQL skips it.

use std::path::Path;
use std::process::Command;

#[test]
fn the_python_receiver_package_passes_its_tests() {
    if crate::common::store::is_postgres_repeat() {
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/python");
    let venv = dir.join(".venv/bin/python");
    let python = if venv.exists() {
        venv.into_os_string()
    } else {
        "python3".into()
    };
    let tools = "import pytest, fastapi, starlette.testclient, flask, django, vermin, mypy";
    let ready = Command::new(&python).args(["-c", tools]).output();
    if !ready.is_ok_and(|output| output.status.success()) {
        test_support::skip(
            "the Python receiver package's tests",
            "python3 with pytest and the frameworks (bash clients/python/ci-setup.sh)",
        );
        return;
    }
    let output = Command::new(&python)
        .args(["-m", "pytest", "-q", "tests"])
        .current_dir(&dir)
        .env("WATCHWIRE_BIN", env!("CARGO_BIN_EXE_watchwire"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the Python receiver package's tests failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // pytest ends with `N passed`, and says `skipped` when a test could not run: under
    // CI nothing may be skipped.
    let summary = stdout.lines().last().unwrap_or_default();
    println!("clients/python: {summary}");
    assert!(
        summary.contains(" passed"),
        "unexpected summary: {summary}\n{stdout}"
    );
    if std::env::var_os("CI").is_some() {
        assert!(
            !summary.contains("skipped"),
            "CI is set: {summary}\n{stdout}"
        );
    }
}
