//! The integration tests: one binary, one module per suite, sharing the harness in
//! `tests/common` (a gateway in this process or as a child process, receivers, one HTTP
//! client, the keyed gateway). Tests run in parallel threads of this one process, so
//! none may rely on process-wide state: an exact count of a Prometheus metric (the
//! recorder is process-wide) is taken from a `GatewayProcess`, never from a `Gateway`.
//!
//! Every test runs on either store (README, "Testing"):
//!
//! ```sh
//! cargo test NAME                                # on the embedded store (and says so)
//! WATCHWIRE_TEST_STORE=postgres cargo test NAME  # on PostgreSQL
//! ```
//!
//! PostgreSQL needs `WATCHWIRE_TEST_DATABASE_URL`, a database the tests may create
//! schemas in. A plain `cargo test` with it runs the whole suite on both: `on_postgres`
//! repeats it with `WATCHWIRE_TEST_STORE=postgres`. `common::store` decides where each
//! gateway keeps its data; `test_support` (`tests/support`) holds what every test
//! binary shares: the test database, its schemas, and `skip` (say so; fail under CI).

#[path = "../common/mod.rs"]
mod common;

mod bad_input;
mod brokers;
mod browser;
mod client_fixtures;
mod client_go;
mod client_node;
mod client_python;
mod cluster;
mod cluster_ownership;
mod cluster_partition;
mod crash;
mod database_outage;
mod delivery;
mod delivery_log;
mod egress;
mod endpoint_auth;
mod filters;
mod fuzz_corpus;
mod hostile;
mod isolation;
mod on_postgres;
mod openapi;
mod operational;
mod ops;
mod overview;
mod polling;
mod postgres_tls;
mod publish_validation;
mod receive_e2e;
mod receiver_fixtures;
mod receiver_properties;
mod renew;
mod security;
mod shutdown;
mod smoke_harness;
mod stream;
mod tracing;
mod watch_validation;
mod watchers;
mod wire_vectors;
