//! The Go receiver package (`clients/go`, docs/api.md §11): its own test suite, run
//! with `go test` against this build's `watchwire` binary. It needs only the Go
//! toolchain (standard library, nothing fetched: `GOPROXY=off`);
//! `clients/go/ci-setup.sh` installs it. Without `go` the test says what is missing and
//! passes, except in CI (`CI` set), where it fails. Its gateway is its own, on the
//! embedded store, so the suite's repeat on PostgreSQL skips it.

use std::path::Path;
use std::process::Command;

#[test]
fn the_go_receiver_package_passes_its_tests_against_this_gateway() {
    if crate::common::store::is_postgres_repeat() {
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/go");
    if Command::new("go").arg("version").output().is_err() {
        test_support::skip(
            "the Go receiver tests",
            "go (apt-get install golang-go, or clients/go/ci-setup.sh)",
        );
        return;
    }
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR")).join("go");
    let mut command = Command::new("go");
    // -count=1: the gateway binary can change under the same path, which go test's
    // result cache would not notice.
    command
        .args(["test", "-count=1", "./..."])
        .current_dir(&dir)
        .env("WATCHWIRE_BIN", env!("CARGO_BIN_EXE_watchwire"))
        .env("GOPROXY", "off")
        .env("GOTOOLCHAIN", "local")
        .env_remove("GOFLAGS");
    // A build cache (and GOPATH) even where HOME is not set.
    if std::env::var_os("GOCACHE").is_none() {
        command.env("GOCACHE", scratch.join("cache"));
    }
    if std::env::var_os("GOPATH").is_none() && std::env::var_os("HOME").is_none() {
        command.env("GOPATH", scratch.join("path"));
    }
    let output = command.output().expect("go runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the Go receiver tests failed:\n{stdout}\n{stderr}"
    );
    println!("{stdout}");
}
