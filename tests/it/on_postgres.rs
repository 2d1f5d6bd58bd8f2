//! The whole suite again on the PostgreSQL store (docs/api.md §13: both stores keep one
//! contract), so that a plain `cargo test` covers both. This test runs this same binary
//! as a child with `WATCHWIRE_TEST_STORE=postgres`, which is also how to run any one
//! test on PostgreSQL by hand (README, "Testing"), and fails with the child's report if
//! any test fails there. Without `WATCHWIRE_TEST_DATABASE_URL` it says it did not run
//! (and fails under CI).

use std::process::Command;

use crate::common::store::{self, RUN_VARIABLE, STORE_VARIABLE};

#[test]
fn every_test_again_on_postgres() {
    if store::is_postgres() {
        return; // This process already runs on PostgreSQL: it is the repeat, or a run by hand.
    }
    let Some(admin) = test_support::database("the suite's repeat on PostgreSQL") else {
        return;
    };
    let run = std::process::id();
    let output = Command::new(std::env::current_exe().unwrap())
        .env(STORE_VARIABLE, "postgres")
        .env(RUN_VARIABLE, run.to_string())
        // One test at a time: this pass runs beside the embedded store's, on two cores
        // with PostgreSQL, and the store's 5 s budget for an answer is for a database
        // under load, not for a machine running four test threads and the database.
        .args(["--test-threads", "1"])
        .output()
        .expect("the test binary runs again");
    store::drop_schemas(&admin, run);
    let report = String::from_utf8_lossy(&output.stdout);
    let summary = report
        .lines()
        .find(|l| l.starts_with("test result"))
        .unwrap_or("no summary");
    test_support::note(&format!("on PostgreSQL: {summary}"));
    // The failures first: a CI log shows the start and the end of a long report, and
    // the middle (where libtest puts each failure's output) is what gets cut.
    assert!(
        output.status.success(),
        "the suite failed on PostgreSQL:\n{}\n\n{report}\n{}",
        failures(&report),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The names of the failed tests and each one's captured output, from a libtest report.
fn failures(report: &str) -> String {
    let failed: Vec<&str> = report
        .lines()
        .filter_map(|l| l.strip_prefix("test ")?.strip_suffix(" ... FAILED"))
        .collect();
    let details = report
        .split_once("\nfailures:\n")
        .map(|(_, rest)| rest.split("\nfailures:\n").next().unwrap_or(rest))
        .unwrap_or("");
    format!("failed on PostgreSQL: {}\n{details}", failed.join(", "))
}
