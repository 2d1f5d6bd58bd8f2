//! Which store the gateways of this run keep their data in: the embedded store, or with
//! `WATCHWIRE_TEST_STORE=postgres` PostgreSQL, a schema each in the test database
//! (`WATCHWIRE_TEST_DATABASE_URL`). A plain `cargo test` runs the suite on both: on the
//! embedded store, then `on_postgres.rs` repeats it in a child process with
//! `WATCHWIRE_TEST_STORE=postgres`. On PostgreSQL a gateway's data directory still
//! names its data: it maps to a schema of its own, so a gateway restarted on the same
//! directory finds the same data, as it would on disk.

use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::OnceLock;

use test_support::Schema;

/// Picks the store: `postgres`, or `embedded` (the default).
pub const STORE_VARIABLE: &str = "WATCHWIRE_TEST_STORE";
/// Set by `on_postgres.rs` for the repeat of the suite it starts: names that run, whose
/// schemas it drops once the repeat is done.
pub const RUN_VARIABLE: &str = "WATCHWIRE_TEST_RUN";
/// The full name of the test that repeats the suite on PostgreSQL.
pub const REPEAT_TEST: &str = "on_postgres::every_test_again_on_postgres";
/// What a run on the embedded store alone says about the other store.
const HOW_TO_RUN_ON_POSTGRES: &str =
    "these tests ran on the embedded store only; to run them on PostgreSQL: \
     `WATCHWIRE_TEST_STORE=postgres WATCHWIRE_TEST_DATABASE_URL=postgres://… cargo test NAME` \
     (README, \"Testing\")";

/// Whether this run keeps gateway data in PostgreSQL.
pub fn is_postgres() -> bool {
    static POSTGRES: OnceLock<bool> = OnceLock::new();
    *POSTGRES.get_or_init(|| match std::env::var(STORE_VARIABLE).as_deref() {
        Err(_) | Ok("" | "embedded") => false,
        Ok("postgres") => true,
        Ok(other) => panic!("{STORE_VARIABLE}={other}: the stores are `embedded` and `postgres`"),
    })
}

/// Whether this process is the repeat of the whole suite on PostgreSQL that
/// `on_postgres.rs` starts. A test that does not run on the suite's store (it brings
/// its own database, or starts gateways of its own) ran in the first pass already, and
/// returns at once here.
pub fn is_postgres_repeat() -> bool {
    std::env::var_os(RUN_VARIABLE).is_some()
}

/// For a test of the embedded store itself (its data directory, its disk), on a
/// PostgreSQL run: says that `what` does not apply there. The caller returns.
pub fn embedded_only(what: &str) {
    test_support::note(&format!(
        "{what} is about the embedded store and did not run on PostgreSQL"
    ));
}

/// The `--database-url` of a gateway on `data_dir` in a PostgreSQL run (its schema is
/// created if it does not exist yet); `None` on the embedded store.
pub fn database_url(data_dir: &Path) -> Option<String> {
    if !is_postgres() {
        if !selects(&std::env::args().skip(1).collect::<Vec<_>>(), REPEAT_TEST) {
            test_support::note(HOW_TO_RUN_ON_POSTGRES);
        }
        return None;
    }
    let admin = admin();
    let schema = format!("ww_it_{}_{:016x}", run(), hash(data_dir));
    test_support::execute(admin, &format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
        .unwrap_or_else(|e| panic!("cannot create schema {schema}: {e}"));
    Some(test_support::schema_url(admin, &schema))
}

/// The node id of a gateway on `data_dir`: a gateway restarted on the same directory
/// is the same node, as a restarted process would be given the same `--node-id`.
pub fn node_id(data_dir: &Path) -> String {
    format!("node-{:016x}", hash(data_dir))
}

/// Runs SQL on the store of a gateway on `data_dir` (which must not be running on the
/// embedded store: it holds the data directory), as an older version or an operator
/// would; the database's error as text.
pub fn execute(data_dir: &Path, sql: &str) -> Result<(), String> {
    match database_url(data_dir) {
        Some(url) => test_support::execute(&url, sql).map_err(|e| match e.as_db_error() {
            Some(db) => db.message().to_string(),
            None => e.to_string(),
        }),
        None => rusqlite::Connection::open(data_dir.join("watchwire.db"))
            .and_then(|db| db.execute_batch(sql))
            .map_err(|e| e.to_string()),
    }
}

fn hash(data_dir: &Path) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    data_dir.hash(&mut hasher);
    hasher.finish()
}

/// The test database of a PostgreSQL run. The first call drops the schemas of earlier
/// runs that are over: a run started directly with `WATCHWIRE_TEST_STORE=postgres` has
/// no parent to drop its schemas when it ends, and a test binary has no hook at exit.
fn admin() -> &'static str {
    static ADMIN: OnceLock<String> = OnceLock::new();
    ADMIN.get_or_init(|| {
        let Ok(admin) = std::env::var(test_support::DATABASE_VARIABLE) else {
            panic!(
                "{STORE_VARIABLE}=postgres needs {}: a PostgreSQL database the tests may create schemas in (README, \"Testing\")",
                test_support::DATABASE_VARIABLE
            );
        };
        drop_schemas_of_finished_runs(&admin);
        admin
    })
}

/// This run's name in its schemas' names: the process that drops them at its end (the
/// parent of a repeat), or this process.
fn run() -> u32 {
    std::env::var(RUN_VARIABLE)
        .ok()
        .and_then(|run| run.parse().ok())
        .unwrap_or_else(std::process::id)
}

/// Drops every schema of run `run`.
pub fn drop_schemas(admin: &str, run: u32) {
    let dropped = test_support::execute(
        admin,
        &format!(
            "DO $$ DECLARE s TEXT; BEGIN
               FOR s IN SELECT nspname FROM pg_namespace WHERE nspname LIKE 'ww\\_it\\_{run}\\_%' LOOP
                 EXECUTE 'DROP SCHEMA ' || quote_ident(s) || ' CASCADE';
                 -- One transaction per schema: all of a run's at once take more locks
                 -- than the server's lock table holds.
                 COMMIT;
               END LOOP; END $$"
        ),
    );
    dropped.unwrap_or_else(|e| panic!("cannot drop the schemas of run {run}: {e}"));
}

/// Drops the schemas of runs whose process has ended (a run is named by a process id
/// of this machine, see [`run`]).
fn drop_schemas_of_finished_runs(admin: &str) {
    let schemas = test_support::query(
        admin,
        r"SELECT nspname FROM pg_namespace WHERE nspname LIKE 'ww\_it\_%'",
    )
    .unwrap_or_else(|e| panic!("cannot list the schemas of earlier runs: {e}"));
    let runs: std::collections::BTreeSet<u32> = schemas
        .iter()
        .filter_map(|row| {
            row[0]
                .strip_prefix("ww_it_")?
                .split('_')
                .next()?
                .parse()
                .ok()
        })
        .collect();
    for run in runs {
        let pid = nix::unistd::Pid::from_raw(run as i32);
        // ESRCH: no such process. EPERM means one exists that we may not signal.
        if nix::sys::signal::kill(pid, None) == Err(nix::errno::Errno::ESRCH) {
            drop_schemas(admin, run);
        }
    }
}

/// A schema of the test database that several gateways share (a cluster), dropped when
/// the schema is dropped; `None`, after saying so, without a test database (and a
/// failure under CI).
pub fn shared_schema(tag: &str) -> Option<Schema> {
    let admin = test_support::database("the tests of several gateways on one database")?;
    let name = format!("ww_cluster_{}_{tag}", std::process::id());
    Some(Schema::create(&admin, &name))
}

/// Whether libtest, given `args`, runs `test` (a full name such as [`REPEAT_TEST`]), as
/// libtest decides it: no filter, or a filter that is part of the name (all of it with
/// `--exact`), and no `--skip` that matches; `--ignored` runs ignored tests only.
fn selects(args: &[String], test: &str) -> bool {
    let (mut filters, mut skips): (Vec<&str>, Vec<&str>) = (Vec::new(), Vec::new());
    let (mut exact, mut ignored_only) = (false, false);
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--exact" => exact = true,
            "--ignored" => ignored_only = true,
            "--skip" => skips.extend(args.next().map(String::as_str)),
            // The options that take a value, which is not a filter.
            "--test-threads" | "--logfile" | "--format" | "--color" | "--shuffle-seed" | "-Z" => {
                args.next();
            }
            _ if arg.starts_with("--skip=") => skips.push(&arg["--skip=".len()..]),
            _ if arg.starts_with('-') => {}
            filter => filters.push(filter),
        }
    }
    let matches = |pattern: &str| {
        if exact {
            test == pattern
        } else {
            test.contains(pattern)
        }
    };
    !ignored_only
        && (filters.is_empty() || filters.iter().any(|f| matches(f)))
        && !skips.iter().any(|s| matches(s))
}

#[test]
fn only_a_run_that_selects_the_repeat_runs_on_postgresql_too() {
    let selects = |args: &[&str]| {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        selects(&args, REPEAT_TEST)
    };
    assert!(selects(&[]));
    assert!(selects(&["--test-threads", "2", "--nocapture"]));
    assert!(selects(&["on_postgres"]));
    assert!(selects(&["delivery::", "on_postgres::"]));
    assert!(selects(&["--exact", REPEAT_TEST]));
    assert!(!selects(&["delivery::"]));
    assert!(!selects(&["--exact", "on_postgres"]));
    assert!(!selects(&["--skip", "on_postgres"]));
    assert!(!selects(&["--skip=on_postgres"]));
    assert!(!selects(&["--ignored"]));
    assert!(!selects(&["--test-threads", "on_postgres", "delivery::"]));
}
