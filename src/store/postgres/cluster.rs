//! The PostgreSQL store as the shared store of a cluster (docs/api.md §13): node
//! leases, channel ownership, removals settled across nodes, messages between nodes
//! (`LISTEN/NOTIFY`), and the tailer that feeds this node the events other nodes
//! commit. Times are the database's clock, so nodes need not agree on theirs.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use tokio::sync::{mpsc, Notify};
use tokio_postgres::{AsyncMessage, Config, NoTls};
use tokio_util::sync::CancellationToken;

use super::pool::pg;

use super::Postgres;
use crate::store::batch::Feed;
use crate::store::fair_share::fair_share;
use crate::store::sql::{
    channel_from_row, event_from_row, outcome_from_row, under, Reads, CHANNEL_COLUMNS,
    EVENT_COLUMNS, OUTCOME_COLUMNS,
};
use crate::store::{Adopted, Claim, ClusterMessage, Membership, NodeInfo, StoreError};

/// The database's clock, in ms since the epoch.
const DB_NOW: &str = "(extract(epoch from clock_timestamp()) * 1000)::int8";
/// The names of one gateway's notification channels. Notifications are per database,
/// not per schema, so the names carry the gateway's identity: two gateways in one
/// database (in two schemas) never hear each other.
#[derive(Debug, Clone)]
pub struct Channels {
    /// New events.
    pub log: String,
    /// Messages between nodes.
    pub cluster: String,
}

impl Channels {
    /// Derived from the gateway's instance secret, which its nodes share.
    pub fn of(secret: &[u8]) -> Channels {
        use sha2::{Digest, Sha256};
        let id: String = Sha256::digest(secret)[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Channels {
            log: format!("watchwire_log_{id}"),
            cluster: format!("watchwire_cluster_{id}"),
        }
    }
}
/// Most events the tailer feeds per read.
const TAIL_PAGE: i64 = 4096;
/// The tailer reads the log at least this often, should a notification be lost.
const TAIL_BACKSTOP: Duration = Duration::from_millis(500);

impl ClusterMessage {
    pub(super) fn encode(&self) -> String {
        match self {
            ClusterMessage::Removed { pk, node } => format!("removed {pk} {node}"),
            ClusterMessage::Rebalance => "rebalance".into(),
            ClusterMessage::Enable { pk } => format!("enable {pk}"),
            ClusterMessage::Replay { pk, since } => format!("replay {pk} {since}"),
        }
    }

    fn decode(text: &str) -> Option<ClusterMessage> {
        let mut words = text.split(' ');
        let message = match (words.next()?, words.next(), words.next()) {
            ("removed", Some(pk), Some(node)) => ClusterMessage::Removed {
                pk: pk.parse().ok()?,
                node: node.to_string(),
            },
            ("rebalance", None, None) => ClusterMessage::Rebalance,
            ("enable", Some(pk), None) => ClusterMessage::Enable {
                pk: pk.parse().ok()?,
            },
            ("replay", Some(pk), Some(since)) => ClusterMessage::Replay {
                pk: pk.parse().ok()?,
                since: since.parse().ok()?,
            },
            _ => return None,
        };
        Some(message)
    }
}

/// Listens for notifications on a connection of its own, reconnecting when it breaks:
/// new events wake the tailer; messages go to the node.
pub(super) fn spawn_listener(
    config: Config,
    channels: Channels,
    log: Arc<Notify>,
    messages: mpsc::UnboundedSender<ClusterMessage>,
    stop: CancellationToken,
) {
    tokio::spawn(async move {
        while !stop.is_cancelled() {
            let listened = listen(&config, &channels, &log, &messages, &stop).await;
            if let Err(e) = listened {
                tracing::warn!(error = %e, "lost the database's notifications; reconnecting");
            }
            // Whatever was missed meanwhile, the tailer's backstop reads and the next
            // claim round settles.
            log.notify_one();
            let _ = messages.send(ClusterMessage::Rebalance);
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
    channels: &Channels,
    log: &Notify,
    messages: &mpsc::UnboundedSender<ClusterMessage>,
    stop: &CancellationToken,
) -> Result<(), StoreError> {
    async fn in_time<T>(
        answer: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(LISTEN_DEADLINE, answer).await {
            Ok(answer) => answer.map_err(pg),
            Err(_) => Err(StoreError::Backend(format!(
                "the notification connection did not answer within {LISTEN_DEADLINE:?}"
            ))),
        }
    }
    let (client, mut connection) = in_time(config.connect(NoTls)).await?;
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
    let listening = format!("LISTEN {}; LISTEN {}", channels.log, channels.cluster);
    in_time(client.batch_execute(&listening)).await?;
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + LISTEN_PING, LISTEN_PING);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = ping.tick() => in_time(client.batch_execute("")).await?,
            received = rx.recv() => match received {
                Some((channel, _)) if channel == channels.log => log.notify_one(),
                Some((_, payload)) => {
                    if let Some(message) = ClusterMessage::decode(&payload) {
                        let _ = messages.send(message);
                    }
                }
                None => {
                    return Err(StoreError::Backend("the notification connection closed".into()));
                }
            },
        }
    }
}

/// Feeds this node the events other nodes commit, in position order: woken by their
/// notifications, and every [`TAIL_BACKSTOP`] regardless.
pub(super) fn spawn_tailer(
    store: Arc<super::pool::Pool>,
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

impl Postgres {
    /// Gives up every channel this node id owns, and the removals it was asked to
    /// settle for them: the others (or this node, claiming again) take them from the
    /// database.
    async fn disown_all(&self) -> Result<(), StoreError> {
        self.execute(
            "UPDATE channels SET owner_node = NULL WHERE owner_node = $1",
            &[&self.node_id],
        )
        .await?;
        self.execute(
            "DELETE FROM removals WHERE owner_node = $1",
            &[&self.node_id],
        )
        .await
        .map(drop)
    }
}

#[async_trait]
impl Membership for Postgres {
    fn node_id(&self) -> &str {
        &self.node_id
    }

    async fn join(&self, address: &str, ttl: Duration) -> Result<(), StoreError> {
        let ttl = ttl.as_millis() as i64;
        // A node starting under an id it had before owns nothing yet: what it owned
        // then is claimed again, by it or by others.
        self.disown_all().await?;
        self.execute(
            &format!(
                "INSERT INTO nodes (node_id, address, started_ms, heartbeat_ms, lease_until_ms)
                 VALUES ($1, $2, {DB_NOW}, {DB_NOW}, {DB_NOW} + $3)
                 ON CONFLICT (node_id) DO UPDATE SET address = EXCLUDED.address, heartbeat_ms = EXCLUDED.heartbeat_ms,
                    lease_until_ms = EXCLUDED.lease_until_ms, leaving = FALSE"
            ),
            &[&self.node_id, &address, &ttl],
        )
        .await?;
        self.tell(&ClusterMessage::Rebalance).await
    }

    async fn renew(&self, ttl: Duration) -> Result<bool, StoreError> {
        let ttl_ms = ttl.as_millis() as i64;
        let renew = async {
            let client = self.lease.get().await?;
            client
                .execute(
                    &format!(
                        "UPDATE nodes SET heartbeat_ms = {DB_NOW}, lease_until_ms = {DB_NOW} + $2
                         WHERE node_id = $1 AND lease_until_ms >= {DB_NOW}"
                    ),
                    &[&self.node_id, &ttl_ms],
                )
                .await
                .map_err(pg)
        };
        // One not answered by the time the next is due is given up with its connection:
        // the next goes out on a new one.
        let renewed = self
            .lease
            .within(ttl / crate::store::RENEWALS_PER_LEASE, renew)
            .await?;
        Ok(renewed == 1)
    }

    async fn claim(&self, at_most: usize) -> Result<Claim, StoreError> {
        let node = self.node_id.clone();
        let work = async {
            let mut client = self.readers.get().await?;
            let tx = client.transaction().await.map_err(pg)?;
            // One lock order with every writer: the head row first.
            let head: i64 = tx
                .query_one("SELECT seq FROM log_head FOR UPDATE", &[])
                .await
                .map_err(pg)?
                .get(0);
            let reaped = tx
                .query(
                    &format!("DELETE FROM nodes WHERE lease_until_ms < {DB_NOW} RETURNING node_id"),
                    &[],
                )
                .await
                .map_err(pg)?;
            let dead: Vec<String> = reaped.iter().map(|r| r.get(0)).collect();
            if !dead.is_empty() {
                tx.execute(
                    "UPDATE channels SET owner_node = NULL WHERE owner_node = ANY($1)",
                    &[&dead],
                )
                .await
                .map_err(pg)?;
                tx.execute("DELETE FROM removals WHERE owner_node = ANY($1)", &[&dead])
                    .await
                    .map_err(pg)?;
                tracing::warn!(nodes = ?dead, "nodes stopped renewing their lease; their channels are taken over");
            }
            // What every live node holds, and what nobody does.
            let held_rows = tx
                .query(
                    &format!(
                        "SELECT n.node_id, (SELECT COUNT(*) FROM channels c WHERE c.owner_node = n.node_id)
                         FROM nodes n WHERE NOT n.leaving AND n.lease_until_ms >= {DB_NOW}"
                    ),
                    &[],
                )
                .await
                .map_err(pg)?;
            let unowned: i64 = tx
                .query_one(
                    "SELECT COUNT(*) FROM channels WHERE owner_node IS NULL",
                    &[],
                )
                .await
                .map_err(pg)?
                .get(0);
            let held: Vec<(String, u64)> = held_rows
                .iter()
                .map(|r| (r.get(0), r.get::<_, i64>(1).max(0) as u64))
                .collect();
            let held: Vec<(&str, u64)> = held.iter().map(|(id, n)| (id.as_str(), *n)).collect();
            let share = fair_share(&held, unowned.max(0) as u64, &node);
            let want = share.claim.min(at_most as u64) as i64;
            let adopted_rows = tx
                .query(
                    &format!(
                        "UPDATE channels SET owner_node = $1 WHERE pk IN (
                             SELECT pk FROM channels WHERE owner_node IS NULL ORDER BY pk LIMIT $2 FOR UPDATE SKIP LOCKED)
                         RETURNING {CHANNEL_COLUMNS}"
                    ),
                    &[&node, &want],
                )
                .await
                .map_err(pg)?;
            let channels = adopted_rows
                .iter()
                .map(|row| channel_from_row(row))
                .collect::<Result<Vec<_>, _>>()?;
            let pks: Vec<i64> = channels.iter().map(|c| c.pk).collect();
            let owed_rows = tx
                .query(
                    // Most channels cover their resource; the few kept within a key's
                    // prefixes sum a count per prefix. Two branches, so that the
                    // planner's guess at a list's length (10) is not charged to every
                    // channel, which made the common case's estimate cross PostgreSQL's
                    // JIT threshold and the claim, under the head row, slower.
                    &format!(
                        "SELECT c.pk, (SELECT COUNT(*) FROM events e WHERE e.seq > c.progress_seq AND {})
                             + CASE WHEN c.synced THEN 0 ELSE 1 END
                         FROM channels c WHERE c.pk = ANY($1) AND c.within IS NULL
                         UNION ALL
                         SELECT c.pk, (SELECT SUM((SELECT COUNT(*) FROM events e WHERE e.seq > c.progress_seq AND {}))
                             FROM unnest(string_to_array(c.within, E'\\n')) AS p(path))::BIGINT
                             + CASE WHEN c.synced THEN 0 ELSE 1 END
                         FROM channels c WHERE c.pk = ANY($1) AND c.within IS NOT NULL",
                        under("e.resource", ["c.resource".to_string()]),
                        under("e.resource", ["p.path".to_string()])
                    ),
                    &[&pks],
                )
                .await
                .map_err(pg)?;
            let retry_rows = tx
                .query(
                    &format!("SELECT {OUTCOME_COLUMNS} FROM outcomes o WHERE o.channel_pk = ANY($1) AND o.status = 'pending'"),
                    &[&pks],
                )
                .await
                .map_err(pg)?;
            tx.commit().await.map_err(pg)?;
            let owed: std::collections::HashMap<i64, i64> =
                owed_rows.iter().map(|r| (r.get(0), r.get(1))).collect();
            let mut retries = retry_rows
                .iter()
                .map(|r| outcome_from_row(r).map(|o| (o.channel_pk, o)))
                .collect::<Result<std::collections::HashMap<i64, _>, _>>()?;
            Ok(Claim {
                adopted: channels
                    .into_iter()
                    .map(|channel| Adopted {
                        owed: owed.get(&channel.pk).copied().unwrap_or(0).max(0) as u64,
                        awaiting_retry: retries.remove(&channel.pk),
                        channel,
                    })
                    .collect(),
                excess: share.surplus as usize,
                head: head as u64,
            })
        };
        self.readers.within(super::pool::WAIT, work).await
    }

    async fn release(&self, pks: &[i64]) -> Result<(), StoreError> {
        let pks = pks.to_vec();
        self.execute(
            "UPDATE channels SET owner_node = NULL WHERE pk = ANY($1) AND owner_node = $2",
            &[&pks, &self.node_id],
        )
        .await?;
        self.tell(&ClusterMessage::Rebalance).await
    }

    async fn leaving(&self) -> Result<(), StoreError> {
        self.execute(
            "UPDATE nodes SET leaving = TRUE WHERE node_id = $1",
            &[&self.node_id],
        )
        .await
        .map(drop)
    }

    async fn leave(&self) -> Result<(), StoreError> {
        self.disown_all().await?;
        self.execute("DELETE FROM nodes WHERE node_id = $1", &[&self.node_id])
            .await?;
        self.tell(&ClusterMessage::Rebalance).await
    }

    async fn nodes(&self) -> Result<Vec<NodeInfo>, StoreError> {
        let rows = self
            .query(
                "SELECT n.node_id, n.address, n.started_ms, n.heartbeat_ms, n.lease_until_ms, n.leaving,
                        (SELECT COUNT(*) FROM channels c WHERE c.owner_node = n.node_id)
                 FROM nodes n ORDER BY n.node_id",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| NodeInfo {
                id: r.get(0),
                address: r.get(1),
                started_ms: r.get(2),
                heartbeat_ms: r.get(3),
                lease_until_ms: r.get(4),
                leaving: r.get(5),
                channels: r.get::<_, i64>(6) as u64,
            })
            .collect())
    }

    async fn owner_of(&self, pk: i64) -> Result<Option<String>, StoreError> {
        let rows = self
            .query("SELECT owner_node FROM channels WHERE pk = $1", &[&pk])
            .await?;
        Ok(rows.first().and_then(|r| r.get(0)))
    }

    async fn removal_settled(&self, pk: i64) -> Result<bool, StoreError> {
        let rows = self
            .query(
                &format!(
                    "SELECT NOT EXISTS (SELECT 1 FROM removals r JOIN nodes n ON n.node_id = r.owner_node
                                        WHERE r.pk = $1 AND n.lease_until_ms >= {DB_NOW})"
                ),
                &[&pk],
            )
            .await?;
        Ok(rows[0].get(0))
    }

    async fn settle_removals(&self, pks: &[i64]) -> Result<(), StoreError> {
        let pks = pks.to_vec();
        self.execute("DELETE FROM removals WHERE pk = ANY($1)", &[&pks])
            .await
            .map(drop)
    }

    async fn tell(&self, message: &ClusterMessage) -> Result<(), StoreError> {
        self.execute(
            "SELECT pg_notify($1, $2)",
            &[&self.channels.cluster, &message.encode()],
        )
        .await
        .map(drop)
    }

    fn take_messages(&self) -> Option<mpsc::UnboundedReceiver<ClusterMessage>> {
        self.messages.lock().unwrap().take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        for message in [
            ClusterMessage::Removed {
                pk: 7,
                node: "host-ab12".into(),
            },
            ClusterMessage::Rebalance,
            ClusterMessage::Enable { pk: 9 },
            ClusterMessage::Replay { pk: 9, since: 42 },
        ] {
            assert_eq!(ClusterMessage::decode(&message.encode()), Some(message));
        }
        assert_eq!(ClusterMessage::decode("nonsense 1"), None);
    }
}
