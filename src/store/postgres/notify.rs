//! PostgreSQL's notifications (`LISTEN/NOTIFY`) for a gateway whose database several
//! nodes share (docs/api.md §13): new events wake the tailer, which feeds this node the
//! events other nodes commit, in position order; messages between nodes are passed on
//! as sent, for the cluster (`cluster::messages`) to read.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{mpsc, Notify};
use tokio_postgres::AsyncMessage;
use tokio_util::sync::CancellationToken;

use super::pool::{pg, Pool};
use super::tls::Config;
use crate::model::Seq;
use crate::store::batch::Feed;
use crate::store::sql::{event_from_row, Reads, EVENT_COLUMNS};
use crate::store::StoreError;

/// What the listener passes on after it reconnected: whatever was told meanwhile is
/// lost, so the node claims again (`ClusterMessage::Rebalance`'s wire form).
pub const REBALANCE: &str = "rebalance";

/// The message the removing transaction sends to the node that delivers channel `pk`
/// (`ClusterMessage::Removed`'s wire form).
pub fn removal_notice(pk: i64, node: &str) -> String {
    format!("removed {pk} {node}")
}

/// The names of one gateway's notification topics (PostgreSQL calls them channels). Notifications are per database,
/// not per schema, so the names carry the gateway's identity: two gateways in one
/// database (in two schemas) never hear each other.
#[derive(Debug, Clone)]
pub struct Topics {
    /// New events.
    pub log: String,
    /// Messages between nodes (`cluster::ClusterMessage`).
    pub cluster: String,
}

impl Topics {
    /// Derived from the gateway's instance secret, which its nodes share.
    pub fn of(secret: &[u8]) -> Topics {
        use sha2::{Digest, Sha256};
        let id: String = Sha256::digest(secret)[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Topics {
            log: format!("watchwire_log_{id}"),
            cluster: format!("watchwire_cluster_{id}"),
        }
    }
}
/// How the connection that sends wake-ups connects: its transactions (a `NOTIFY`
/// takes a transaction id) do not wait for their commit to be flushed. A wake-up
/// lost in a crash costs nothing (the tailers read every 500 ms regardless), and one
/// that waited for the disk would stay in progress for a flush: readers see only what
/// transactions older than every one in progress wrote, so each would hold back the
/// commits of the writer that sent it.
pub fn wake_up_config(config: &Config) -> Config {
    let mut config = config.clone();
    let options = match config.server.get_options() {
        Some(options) => format!("{options} -c synchronous_commit=off"),
        None => "-c synchronous_commit=off".to_string(),
    };
    config.server.options(&options);
    config
}

/// Tells other nodes of new events once they are committed: each commit hands its head
/// over without waiting, and one task sends the newest head on a connection of its
/// own, so that many commits in a row cost one notification.
#[derive(Clone)]
pub struct WakeUps {
    newest: Arc<tokio::sync::watch::Sender<Seq>>,
}

impl WakeUps {
    /// Starts the task that sends them on `pool`, until `stop`.
    pub fn spawn(pool: Arc<Pool>, topics: Topics, head: Seq, stop: CancellationToken) -> WakeUps {
        let (newest, mut changed) = tokio::sync::watch::channel(head);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    next = changed.changed() => if next.is_err() { return },
                }
                let head = changed.borrow_and_update().to_string();
                let sent = pool.read(
                    "SELECT pg_notify($1, $2)".to_string(),
                    crate::store::sql::params![topics.log.clone(), head],
                    |_| Ok(()),
                );
                // A lost wake-up costs the others at most the tailer's backstop.
                if let Err(e) = sent.await {
                    tracing::debug!(error = %e, "could not wake the other nodes");
                }
            }
        });
        WakeUps {
            newest: Arc::new(newest),
        }
    }

    /// Transactions up to `head` are committed.
    pub fn committed(&self, head: Seq) {
        self.newest.send_if_modified(|newest| {
            let newer = head > *newest;
            *newest = (*newest).max(head);
            newer
        });
    }
}

/// Most events the tailer feeds per read.
const TAIL_PAGE: i64 = 4096;
/// The tailer reads the log at least this often, should a notification be lost.
const TAIL_BACKSTOP: Duration = Duration::from_millis(500);

/// Listens for notifications on a connection of its own, reconnecting when it breaks:
/// new events wake the tailer; what nodes tell each other goes to the node, as sent.
pub(super) fn spawn_listener(
    config: Config,
    topics: Topics,
    log: Arc<Notify>,
    messages: mpsc::UnboundedSender<String>,
    stop: CancellationToken,
) {
    tokio::spawn(async move {
        while !stop.is_cancelled() {
            let listened = listen(&config, &topics, &log, &messages, &stop).await;
            if let Err(e) = listened {
                tracing::warn!(error = %e, "lost the database's notifications; reconnecting");
            }
            // Whatever was missed meanwhile, the tailer's backstop reads and the next
            // claim round settles.
            log.notify_one();
            let _ = messages.send(REBALANCE.to_string());
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    });
}

/// How often the listener asks the database something on its connection. Notifications
/// only ever come one way: without a question of its own it would never learn that its
/// link went silent. Every 2 s, so that with [`LISTEN_DEADLINE`] a dead link is found
/// within 5 s, well within a lease; an empty query costs the server nothing.
const LISTEN_PING: Duration = Duration::from_secs(2);
/// Longest connecting, starting to listen or one ping may take before the listener
/// gives its connection up and connects anew: what the pool allows a connection
/// (`pool::CONNECT_TIMEOUT`), since a healthy server answers these at once.
const LISTEN_DEADLINE: Duration = Duration::from_secs(3);

async fn listen(
    config: &Config,
    topics: &Topics,
    log: &Notify,
    messages: &mpsc::UnboundedSender<String>,
    stop: &CancellationToken,
) -> Result<(), StoreError> {
    async fn in_time<T>(
        answer: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(LISTEN_DEADLINE, answer)
            .await
            .unwrap_or_else(|_| {
                Err(StoreError::Backend(format!(
                    "the notification connection did not answer within {LISTEN_DEADLINE:?}"
                )))
            })
    }
    let (client, mut connection) = in_time(super::pool::open(config)).await?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _driver = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(async move {
        let mut stream = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = stream.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    let _ = tx.send((n.channel().to_string(), n.payload().to_string()));
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }));
    let listening = format!("LISTEN {}; LISTEN {}", topics.log, topics.cluster);
    in_time(async { client.batch_execute(&listening).await.map_err(pg) }).await?;
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + LISTEN_PING, LISTEN_PING);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = ping.tick() => in_time(async { client.batch_execute("").await.map_err(pg) }).await?,
            received = rx.recv() => match received {
                Some((topic, _)) if topic == topics.log => log.notify_one(),
                Some((_, payload)) => {
                    let _ = messages.send(payload);
                }
                None => {
                    return Err(StoreError::Backend("the notification connection closed".into()));
                }
            },
        }
    }
}

/// How often the tailer reads while a publish of this node waits for readers to see
/// its events: what makes it wait (an older transaction in progress, on any node or in
/// any other program on the server) need not notify anyone when it ends.
const TAIL_WHILE_WAITED_FOR: Duration = Duration::from_millis(2);

/// Feeds this node the events other nodes commit, and its own that readers could not
/// see at once, in position order: woken by other nodes' notifications and by this
/// node's writer, every [`TAIL_WHILE_WAITED_FOR`] while a publish waits for it, and
/// every [`TAIL_BACKSTOP`] regardless. It reads what readers see (`visible_events`):
/// positions it skips were taken by transactions that did not use them.
pub(super) fn spawn_tailer(
    store: Arc<Pool>,
    feed: Arc<Mutex<Feed>>,
    log: Arc<Notify>,
    stop: CancellationToken,
) {
    tokio::spawn(async move {
        loop {
            let waited_for = feed.lock().unwrap().waiting_since();
            let lag = waited_for.map_or(0.0, |since| since.elapsed().as_secs_f64());
            metrics::gauge!("watchwire_log_visibility_lag_seconds").set(lag);
            let pause = match waited_for {
                Some(_) => TAIL_WHILE_WAITED_FOR,
                None => TAIL_BACKSTOP,
            };
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = log.notified() => {}
                _ = tokio::time::sleep(pause) => {}
            }
            loop {
                let after = feed.lock().unwrap().fed_head();
                let read = store.read(
                    format!(
                        "SELECT {EVENT_COLUMNS} FROM visible_events WHERE seq > $1 ORDER BY seq LIMIT $2"
                    ),
                    crate::store::sql::params![after, TAIL_PAGE],
                    event_from_row,
                );
                let events = match read.await {
                    Ok(events) => events,
                    Err(e) => {
                        tracing::debug!(error = %e, "could not tail the log; retrying");
                        break;
                    }
                };
                let full = events.len() as i64 == TAIL_PAGE;
                feed.lock().unwrap().read(events);
                if !full {
                    break;
                }
            }
        }
    });
}
