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

async fn listen(
    config: &Config,
    topics: &Topics,
    log: &Notify,
    messages: &mpsc::UnboundedSender<String>,
    stop: &CancellationToken,
) -> Result<(), StoreError> {
    let (client, mut connection) = super::pool::open(config).await?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
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
    });
    client
        .batch_execute(&format!("LISTEN {}; LISTEN {}", topics.log, topics.cluster))
        .await
        .map_err(pg)?;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            received = rx.recv() => match received {
                Some((topic, _)) if topic == topics.log => log.notify_one(),
                Some((_, payload)) => {
                    let _ = messages.send(payload);
                }
                None => {
                    driver.abort();
                    return Err(StoreError::Backend("the notification connection closed".into()));
                }
            },
        }
    }
    driver.abort();
    Ok(())
}

/// Feeds this node the events other nodes commit, in position order: woken by their
/// notifications, and every [`TAIL_BACKSTOP`] regardless.
pub(super) fn spawn_tailer(
    store: Arc<Pool>,
    feed: Arc<Mutex<Feed>>,
    log: Arc<Notify>,
    stop: CancellationToken,
) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = log.notified() => {}
                _ = tokio::time::sleep(TAIL_BACKSTOP) => {}
            }
            loop {
                let after = feed.lock().unwrap().fed_head();
                let read = store.read(
                    format!(
                        "SELECT {EVENT_COLUMNS} FROM events WHERE seq > $1 ORDER BY seq LIMIT $2"
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
                feed.lock().unwrap().events(events);
                if !full {
                    break;
                }
            }
        }
    });
}
