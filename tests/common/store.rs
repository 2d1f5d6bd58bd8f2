//! Which store the gateways of this run keep their data in. The suite runs twice: on
//! the embedded store, and again on PostgreSQL (`on_postgres.rs` re-runs this binary
//! with `WATCHWIRE_TEST_STORE=postgres`). On PostgreSQL a gateway's data directory
//! still names its data: it maps to a schema of its own, so a gateway restarted on the
//! same directory finds the same data, as it would on disk.

use std::hash::{Hash, Hasher};
use std::path::Path;

/// Set by the PostgreSQL run for the child it starts.
pub const STORE_VARIABLE: &str = "WATCHWIRE_TEST_STORE";
/// The database the PostgreSQL tests use (CI sets it; see README).
pub const DATABASE_VARIABLE: &str = "WATCHWIRE_TEST_DATABASE_URL";
/// Names the run that created a schema, so that run can drop them all.
pub const RUN_VARIABLE: &str = "WATCHWIRE_TEST_RUN";

/// Whether this run keeps gateway data in PostgreSQL.
pub fn is_postgres() -> bool {
    std::env::var(STORE_VARIABLE).is_ok_and(|v| v == "postgres")
}

/// The `--database-url` of a gateway on `data_dir` in a PostgreSQL run (its schema is
/// created if it does not exist yet); `None` on the embedded store.
pub fn database_url(data_dir: &Path) -> Option<String> {
    if !is_postgres() {
        return None;
    }
    let admin = std::env::var(DATABASE_VARIABLE).expect("a PostgreSQL run has a database");
    let run = std::env::var(RUN_VARIABLE).unwrap_or_else(|_| "0".into());
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    data_dir.hash(&mut hasher);
    let schema = format!("ww_it_{run}_{:016x}", hasher.finish());
    run_sql(&admin, &format!("CREATE SCHEMA IF NOT EXISTS {schema}"));
    let separator = if admin.contains('?') { '&' } else { '?' };
    Some(format!(
        "{admin}{separator}options=-csearch_path%3D{schema}"
    ))
}

/// The node id of a gateway on `data_dir`: a gateway restarted on the same directory
/// is the same node, as a restarted process would be given the same `--node-id`.
pub fn node_id(data_dir: &Path) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    data_dir.hash(&mut hasher);
    format!("node-{:016x}", hasher.finish())
}

/// Runs SQL on the store of a gateway on `data_dir` (which must not be running on the
/// embedded store: it holds the data directory), as an older version or an operator
/// would; the database's error as text.
pub fn execute(data_dir: &Path, sql: &str) -> Result<(), String> {
    match database_url(data_dir) {
        Some(url) => try_sql(&url, sql),
        None => rusqlite::Connection::open(data_dir.join("watchwire.db"))
            .and_then(|db| db.execute_batch(sql))
            .map_err(|e| e.to_string()),
    }
}

/// Drops every schema a run created.
pub fn drop_schemas(admin: &str, run: &str) {
    run_sql(
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
}

/// Runs SQL on its own thread and runtime: callers may be inside a runtime or not.
fn run_sql(url: &str, sql: &str) {
    try_sql(url, sql).unwrap();
}

/// `run_sql`, the database's error as text.
fn try_sql(url: &str, sql: &str) -> Result<(), String> {
    let (url, sql) = (url.to_string(), sql.to_string());
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap_or_else(|e| panic!("cannot connect to {DATABASE_VARIABLE}: {e}"));
            tokio::spawn(connection);
            client
                .batch_execute(&sql)
                .await
                .map_err(|e| match e.as_db_error() {
                    Some(db) => db.message().to_string(),
                    None => e.to_string(),
                })
        })
    })
    .join()
    .expect("the SQL ran")
}

/// A schema of the test database that several gateways share (a cluster), dropped when
/// this is dropped. `None`, after saying so, without a test database (and a failure
/// under CI).
pub struct SharedDatabase {
    admin: String,
    schema: String,
    pub url: String,
}

impl SharedDatabase {
    pub fn create(tag: &str) -> Option<SharedDatabase> {
        let Ok(admin) = std::env::var(DATABASE_VARIABLE) else {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but {DATABASE_VARIABLE} is not: the cluster tests must run"
            );
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| {
                use std::io::Write;
                let _ = writeln!(
                    std::io::stderr(),
                    "the cluster tests did not run: set {DATABASE_VARIABLE} (see README)"
                );
            });
            return None;
        };
        let schema = format!("ww_cluster_{}_{tag}", std::process::id());
        run_sql(
            &admin,
            &format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"),
        );
        let separator = if admin.contains('?') { '&' } else { '?' };
        let url = format!("{admin}{separator}options=-csearch_path%3D{schema}");
        Some(SharedDatabase { admin, schema, url })
    }
}

impl Drop for SharedDatabase {
    fn drop(&mut self) {
        run_sql(
            &self.admin,
            &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema),
        );
    }
}
