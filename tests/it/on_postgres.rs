//! The whole suite again on the PostgreSQL store (docs/api.md §13: both stores keep one
//! contract). This test runs this same binary as a child with `WATCHWIRE_TEST_STORE=
//! postgres`, where every gateway keeps its data in a schema of the test database
//! (`common::store`), and fails with the child's report if any test fails there.
//! Without `WATCHWIRE_TEST_DATABASE_URL` it says it did not run (and fails under CI).

use std::io::Write;
use std::process::Command;

use crate::common::store::{self, DATABASE_VARIABLE, RUN_VARIABLE, STORE_VARIABLE};

#[test]
fn every_test_again_on_postgres() {
    if store::is_postgres() {
        return; // This is the child's copy of the test.
    }
    let Ok(admin) = std::env::var(DATABASE_VARIABLE) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but {DATABASE_VARIABLE} is not: the PostgreSQL run must happen"
        );
        // Past the harness's capture, so a passing run shows it too.
        let _ = writeln!(
            std::io::stderr(),
            "the suite did not run on PostgreSQL: set {DATABASE_VARIABLE} (see README)"
        );
        return;
    };
    let run = std::process::id().to_string();
    let output = Command::new(std::env::current_exe().unwrap())
        .env(STORE_VARIABLE, "postgres")
        .env(RUN_VARIABLE, &run)
        // The browser tests start gateways of their own, on the embedded store.
        .args([
            "--skip",
            "on_postgres::",
            "--skip",
            "browser::",
            "--test-threads",
            "2",
        ])
        .output()
        .expect("the test binary runs again");
    store::drop_schemas(&admin, &run);
    let report = String::from_utf8_lossy(&output.stdout);
    let summary = report
        .lines()
        .find(|l| l.starts_with("test result"))
        .unwrap_or("no summary");
    let _ = writeln!(std::io::stderr(), "on PostgreSQL: {summary}");
    assert!(
        output.status.success(),
        "the suite failed on PostgreSQL:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
