//! What every test binary of the workspace (the library's unit tests, the integration
//! suite in `tests/it`, the benchmark's smoke test) shares about where its tests may
//! run, written once:
//!
//! - the test database, named by `WATCHWIRE_TEST_DATABASE_URL` ([`database`]);
//! - a schema of it per test or run, and the database URL that selects it
//!   ([`Schema`], [`schema_url`]);
//! - the rule for a test that cannot run on this machine ([`skip`]): it says so, and
//!   under CI (`CI` set), where everything must run, it fails instead;
//! - a PostgreSQL server of a test's own ([`PrivatePostgres`]), and a certificate
//!   authority made for a test ([`TestCa`]).

mod private_postgres;
mod test_ca;

pub use private_postgres::PrivatePostgres;
pub use test_ca::{Issued, TestCa};

use std::collections::HashSet;
use std::io::Write;
use std::sync::Mutex;

/// The environment variable that names the test database.
pub const DATABASE_VARIABLE: &str = "WATCHWIRE_TEST_DATABASE_URL";

/// Says `text` once per process, past the test harness's capture, so that a passing
/// run shows it too.
pub fn note(text: &str) {
    static SAID: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    let mut said = SAID.lock().unwrap_or_else(|e| e.into_inner());
    if said
        .get_or_insert_with(HashSet::new)
        .insert(text.to_string())
    {
        let _ = writeln!(std::io::stderr(), "{text}");
    }
}

/// `what` cannot run on this machine: `missing` says what it lacks. Under CI that is a
/// failure (a panic naming both); elsewhere it says so once and the caller returns.
#[track_caller]
pub fn skip(what: &str, missing: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "CI is set, so {what} must run; missing: {missing}"
    );
    note(&format!("{what} did not run; missing: {missing}"));
}

/// The test database's URL, or `None` after [`skip`]ping `what` without one.
#[track_caller]
pub fn database(what: &str) -> Option<String> {
    let url = std::env::var(DATABASE_VARIABLE).ok();
    if url.is_none() {
        skip(
            what,
            &format!("{DATABASE_VARIABLE}, a PostgreSQL database the tests may create schemas in (README, \"Testing\")"),
        );
    }
    url
}

/// `url` with every session's `search_path` set to `schema`: what a gateway or store
/// given this URL creates and reads is in that schema alone.
pub fn schema_url(url: &str, schema: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}options=-csearch_path%3D{schema}")
}

/// Runs `sql` (one or several statements) on the database at `url`.
pub fn execute(url: &str, sql: &str) -> Result<(), tokio_postgres::Error> {
    let sql = sql.to_string();
    with_client(url, move |client| async move {
        client.batch_execute(&sql).await
    })
}

/// The rows `sql` answers on the database at `url`, each column as text.
pub fn query(url: &str, sql: &str) -> Result<Vec<Vec<String>>, tokio_postgres::Error> {
    let sql = sql.to_string();
    with_client(url, move |client| async move {
        let messages = client.simple_query(&sql).await?;
        Ok(messages
            .iter()
            .filter_map(|message| match message {
                tokio_postgres::SimpleQueryMessage::Row(row) => Some(
                    (0..row.len())
                        .map(|i| row.get(i).unwrap_or_default().to_string())
                        .collect(),
                ),
                _ => None,
            })
            .collect())
    })
}

/// Runs `work` with a connection to `url` on a thread and runtime of its own: callers
/// may be inside an async runtime or not, and a `Drop` has none to wait in.
fn with_client<T, F, Fut>(url: &str, work: F) -> Result<T, tokio_postgres::Error>
where
    T: Send + 'static,
    F: FnOnce(tokio_postgres::Client) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<T, tokio_postgres::Error>>,
{
    let url = url.to_string();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the test database's connection");
        runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
            tokio::spawn(connection);
            work(client).await
        })
    })
    .join()
    .expect("the test database's thread does not panic")
}

/// A fresh schema of the test database, dropped with everything in it when this is
/// dropped.
pub struct Schema {
    admin: String,
    pub name: String,
    /// The database URL that selects the schema ([`schema_url`]).
    pub url: String,
}

impl Schema {
    /// Creates schema `name` in the database at `admin`, dropping what an earlier run
    /// may have left under the same name.
    pub fn create(admin: &str, name: &str) -> Schema {
        execute(
            admin,
            &format!("DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"),
        )
        .unwrap_or_else(|e| panic!("cannot create schema {name} through {DATABASE_VARIABLE}: {e}"));
        Schema {
            admin: admin.to_string(),
            name: name.to_string(),
            url: schema_url(admin, name),
        }
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let _ = execute(
            &self.admin,
            &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schema_url_selects_the_schema_whatever_the_url_already_says() {
        assert_eq!(
            schema_url("postgres://u@h:5432/db", "s_1"),
            "postgres://u@h:5432/db?options=-csearch_path%3Ds_1"
        );
        assert_eq!(
            schema_url("postgres://u@h/db?sslmode=disable", "s"),
            "postgres://u@h/db?sslmode=disable&options=-csearch_path%3Ds"
        );
        let config: tokio_postgres::Config =
            schema_url("postgres://u@h/db", "s_1").parse().unwrap();
        assert_eq!(config.get_options(), Some("-csearch_path=s_1"));
    }
}
