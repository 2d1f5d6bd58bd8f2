//! A small pool of PostgreSQL connections: opened on demand, reused while they are
//! healthy, dropped when the server closed them. Every wait is bounded, so a call that
//! needs an unreachable database fails within [`WAIT`] instead of hanging.
//!
//! A link can also go silent: packets vanish without a reset, so no connection is
//! closed and nothing fails by itself. Two things guard against it: the kernel watches
//! every connection ([`keep_alive`]), and a call that misses its deadline
//! ([`Pool::within`]) takes the pool's connections with it, so the next call opens a
//! new one instead of queueing behind a dead one.

use std::ops::Deref;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::config::Host;
use tokio_postgres::{Client, Connection, Socket};

use super::rows::On;
use super::tls::{Config, Stream};
use crate::store::sql::{Map, Params, ReadRows, Reads, Statements};
use crate::store::StoreError;

/// Longest a caller waits for a connection (a free one, or a new one to connect).
pub const WAIT: Duration = Duration::from_secs(5);
/// Longest a read may take before the call answers `503`.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest one attempt to connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest a session of this process may sit inside a transaction without sending
/// anything before the server ends it. A process that stalls (stopped, frozen, starved)
/// inside a transaction would otherwise hold back what every node's readers see (they
/// see only what transactions older than every one in progress wrote) until it woke;
/// healthy transactions send their statements back to back.
/// Shorter than [`WAIT`], so a call queued behind such a stall still gets its answer.
pub const IDLE_IN_TRANSACTION: Duration = Duration::from_secs(3);
/// How long a connection may carry nothing before the kernel probes its link. Short,
/// because the nodes of a cluster must find a dead link within a lease (`--lease-ttl`,
/// 10 s by default); a probe is a few bytes.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(5);
/// Between two probes that got no answer.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(1);
/// Probes without an answer before the kernel gives the connection up: with
/// [`KEEPALIVE_IDLE`], an idle connection on a dead link ends within 10 s.
const KEEPALIVE_RETRIES: u32 = 5;
/// Longest what a connection sent may go unacknowledged before the kernel gives it up:
/// a call waiting on a dead link ends within 10 s too, not after the kernel's own
/// limit of about 15 minutes of retransmissions.
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Pool {
    config: Config,
    idle: Mutex<Idle>,
    permits: Arc<Semaphore>,
}

/// The pool's idle connections. A call that missed its deadline starts a new
/// generation: the connections of earlier ones are not reused.
#[derive(Default)]
struct Idle {
    clients: Vec<Client>,
    generation: u64,
}

/// A connection lent by the pool; it goes back when dropped, unless it was closed or
/// the pool gave up its connections meanwhile.
pub struct Lent<'a> {
    pool: &'a Pool,
    client: Option<Client>,
    generation: u64,
    _permit: OwnedSemaphorePermit,
}

/// Sets how the kernel watches each connection's link: TCP keepalives and a limit on
/// unacknowledged data, so that a connection on a link that went silent ends within
/// seconds, and whatever waits on it fails.
pub fn keep_alive(config: &mut tokio_postgres::Config) {
    config
        .keepalives(true)
        .keepalives_idle(KEEPALIVE_IDLE)
        .keepalives_interval(KEEPALIVE_INTERVAL)
        .keepalives_retries(KEEPALIVE_RETRIES)
        .tcp_user_timeout(TCP_USER_TIMEOUT);
}

impl Pool {
    pub fn new(config: Config, size: usize) -> Pool {
        Pool {
            config,
            idle: Mutex::default(),
            permits: Arc::new(Semaphore::new(size.max(1))),
        }
    }

    /// Runs `work`, which takes its connections from this pool, answering within
    /// `limit`. Work that misses it may be waiting on a link that went silent, where
    /// every connection of the pool is: the pool gives them all up (those lent now are
    /// not taken back), and the next call connects anew.
    pub async fn within<T>(
        &self,
        limit: Duration,
        work: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(limit, work).await {
            Ok(done) => done,
            Err(_) => {
                let mut idle = self.idle.lock().unwrap();
                idle.generation += 1;
                idle.clients.clear();
                Err(unreachable_database())
            }
        }
    }

    /// A connection, waiting at most [`WAIT`].
    pub async fn get(&self) -> Result<Lent<'_>, StoreError> {
        let wait = async {
            let permit = self
                .permits
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| StoreError::Closed)?;
            let (reused, generation) = {
                let mut idle = self.idle.lock().unwrap();
                let reused = std::iter::from_fn(|| idle.clients.pop()).find(|c| !c.is_closed());
                (reused, idle.generation)
            };
            let client = match reused {
                Some(client) => client,
                None => connect(&self.config).await?,
            };
            Ok(Lent {
                pool: self,
                client: Some(client),
                generation,
                _permit: permit,
            })
        };
        tokio::time::timeout(WAIT, wait)
            .await
            .map_err(|_| unreachable_database())?
    }
}

impl Reads for Pool {
    fn read<T: Send + 'static>(&self, sql: String, params: Params, map: Map<T>) -> ReadRows<'_, T> {
        Box::pin(self.within(READ_TIMEOUT, async move {
            let client = self.get().await?;
            On(&*client).query(&sql, params, map).await
        }))
    }
}

impl Deref for Lent<'_> {
    type Target = Client;

    fn deref(&self) -> &Client {
        self.client.as_ref().expect("held until dropped")
    }
}

impl std::ops::DerefMut for Lent<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        self.client.as_mut().expect("held until dropped")
    }
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        if let Some(client) = self.client.take().filter(|c| !c.is_closed()) {
            let mut idle = self.pool.idle.lock().unwrap();
            if idle.generation == self.generation {
                idle.clients.push(client);
            }
        }
    }
}

/// Opens one connection and drives it on its own task.
pub async fn connect(config: &Config) -> Result<Client, StoreError> {
    let (client, connection) = open(config).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "a PostgreSQL connection ended");
        }
    });
    let limit = format!(
        "SET idle_in_transaction_session_timeout = {}",
        IDLE_IN_TRANSACTION.as_millis()
    );
    tokio::time::timeout(CONNECT_TIMEOUT, client.batch_execute(&limit))
        .await
        .map_err(|_| unreachable_database())?
        .map_err(pg)?;
    Ok(client)
}

/// Opens one connection, with the TLS `config` asks for, for a caller that drives it
/// (the listener of notifications reads its messages); every connection of the store
/// is made here.
pub async fn open(config: &Config) -> Result<(Client, Connection<Socket, Stream>), StoreError> {
    let connecting = config.server.connect(config.tls.clone());
    tokio::time::timeout(CONNECT_TIMEOUT, connecting)
        .await
        .map_err(|_| {
            StoreError::Backend(format!(
                "PostgreSQL at {} did not answer within {CONNECT_TIMEOUT:?}",
                servers(&config.server)
            ))
        })?
        .map_err(|e| connect_error(config, &e))
}

/// Where `config` connects, as `host:port` (several, comma-separated, when it names
/// several); never its user or password.
pub fn servers(config: &tokio_postgres::Config) -> String {
    let ports = config.get_ports();
    let port = |i: usize| ports.get(i).or(ports.first()).copied().unwrap_or(5432);
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| match host {
            Host::Tcp(name) if name.contains(':') => format!("[{name}]:{}", port(i)),
            Host::Tcp(name) => format!("{name}:{}", port(i)),
            Host::Unix(dir) => format!("{}/.s.PGSQL.{}", dir.display(), port(i)),
        })
        .chain(
            config
                .get_hostaddrs()
                .iter()
                .enumerate()
                .skip(config.get_hosts().len())
                .map(|(i, addr)| std::net::SocketAddr::new(*addr, port(i)).to_string()),
        )
        .collect();
    hosts.join(", ")
}

/// A connection that failed, saying where and why: the server's own words (a login it
/// refused, a database that does not exist) or the whole chain of causes (connection
/// refused, a name that does not resolve), since the outermost says only "error
/// connecting to server".
fn connect_error(config: &Config, e: &tokio_postgres::Error) -> StoreError {
    let why = match e.as_db_error() {
        Some(db) => db.message().to_string(),
        None => {
            let mut why = e.to_string();
            let mut cause = std::error::Error::source(e);
            while let Some(inner) = cause {
                why = format!("{why}: {inner}");
                cause = inner.source();
            }
            why
        }
    };
    StoreError::Backend(format!(
        "cannot connect to PostgreSQL at {} (sslmode={}): {why}",
        servers(&config.server),
        config.tls.mode()
    ))
}

/// The error of a database that does not answer in time.
pub fn unreachable_database() -> StoreError {
    StoreError::Backend("the database did not answer in time".into())
}

/// A PostgreSQL error as the store reports it.
pub fn pg(e: tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(db) => StoreError::Backend(format!("PostgreSQL: {}", db.message())),
        None => StoreError::Backend(format!("PostgreSQL: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance::Place;

    /// This connection's server process: which connection a call got.
    async fn backend(pool: &Pool) -> Result<i32, StoreError> {
        pool.within(WAIT, async {
            let client = pool.get().await?;
            let row = client.query_one("SELECT pg_backend_pid()", &[]).await;
            Ok(row.map_err(pg)?.get(0))
        })
        .await
    }

    /// A call that misses its deadline takes the pool's connections with it: the next
    /// call gets a new connection at once, instead of queueing behind the answer that
    /// did not come (on a link that went silent, it never comes).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_call_past_its_deadline_leaves_its_connection_behind() {
        let Some(Place::Postgres { url, .. }) = Place::postgres().await else {
            return;
        };
        let pool = Pool::new(url.parse().unwrap(), 1);
        let first = backend(&pool).await.unwrap();
        assert_eq!(
            backend(&pool).await.unwrap(),
            first,
            "a healthy one is reused"
        );
        let late = pool.within(Duration::from_millis(200), async {
            let client = pool.get().await?;
            client.execute("SELECT pg_sleep(5)", &[]).await.map_err(pg)
        });
        assert!(late.await.is_err(), "the deadline ends the call");
        let started = std::time::Instant::now();
        let next = backend(&pool).await.unwrap();
        assert_ne!(
            next, first,
            "the next call went to the connection left behind"
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the next call waited {:?}",
            started.elapsed()
        );
    }

    /// A session of this process that stalls inside a transaction that took positions
    /// is ended by the server, so readers see what other writers committed after it:
    /// a stopped node never holds a cluster's publishes for long.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_session_stalled_holding_positions_is_ended_and_publishes_go_on() {
        let Some(place) = Place::postgres().await else {
            return;
        };
        let Place::Postgres { url, .. } = &place else {
            unreachable!()
        };
        let store = place.open().await;
        let mut stalled = connect(&url.parse().unwrap()).await.unwrap();
        let held = stalled.transaction().await.unwrap();
        held.query_one("SELECT last FROM take_positions(1)", &[])
            .await
            .unwrap();
        // From here the holder sends nothing, as a stopped process would not.
        let started = std::time::Instant::now();
        let event = crate::model::NewEvent {
            resource: "/r/x".into(),
            state: crate::model::ResourceState::Exists,
            data: None,
            changed: Vec::new(),
            metadata: None,
            trace: None,
        };
        let receipt = store.append(vec![event], None).await;
        assert!(
            receipt.is_ok(),
            "a publish behind the stalled session failed: {receipt:?}"
        );
        assert!(
            started.elapsed() >= IDLE_IN_TRANSACTION - Duration::from_millis(500),
            "the publish did not wait for the older transaction: the test proves nothing"
        );
        assert!(
            held.query_one("SELECT 1", &[]).await.is_err(),
            "the stalled session's transaction was not ended"
        );
        store.close().await;
    }
}
