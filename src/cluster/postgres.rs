//! Membership on PostgreSQL (docs/api.md §13): node leases, channel ownership,
//! removals settled across nodes, and messages between nodes, each one short
//! transaction on the store's database. Times are the database's clock, so nodes need
//! not agree on theirs.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::fair_share::fair_share;
use super::{Claim, ClusterMessage, Membership, NodeInfo, RENEWALS_PER_LEASE};
use crate::delivery::Adopted;
use crate::store::postgres::pool::{pg, WAIT};
use crate::store::postgres::{PgStore, Postgres};
use crate::store::sql::{
    channel_from_row, outcome_from_row, under, CHANNEL_COLUMNS, OUTCOME_COLUMNS,
};
use crate::store::StoreError;

/// The database's clock, in ms since the epoch.
const DB_NOW: &str = "(extract(epoch from clock_timestamp()) * 1000)::int8";

/// This process as a node of the cluster its PostgreSQL store's processes form.
pub struct PgMembership {
    store: Arc<PgStore>,
    /// What the other nodes told this one, as sent, until the node runtime takes it.
    told: Mutex<Option<mpsc::UnboundedReceiver<String>>>,
}

impl PgMembership {
    pub fn new(store: Arc<PgStore>) -> PgMembership {
        let told = store.backend().take_told();
        PgMembership {
            store,
            told: Mutex::new(told),
        }
    }

    fn pg(&self) -> &Postgres {
        self.store.backend()
    }

    /// Runs a statement whose one parameter, `$1`, is this node's id.
    async fn for_this_node(&self, sql: &str) -> Result<(), StoreError> {
        self.pg()
            .execute(sql, &[&self.pg().node_id])
            .await
            .map(drop)
    }

    /// Gives up every channel this node id owns, and the removals it was asked to
    /// settle for them: the others (or this node, claiming again) take them from the
    /// database.
    async fn disown_all(&self) -> Result<(), StoreError> {
        self.for_this_node("UPDATE channels SET owner_node = NULL WHERE owner_node = $1")
            .await?;
        self.for_this_node("DELETE FROM removals WHERE owner_node = $1")
            .await
    }
}

#[async_trait]
impl Membership for PgMembership {
    fn node_id(&self) -> &str {
        &self.pg().node_id
    }

    async fn join(&self, address: &str, ttl: Duration) -> Result<(), StoreError> {
        let ttl = ttl.as_millis() as i64;
        // A node starting under an id it had before owns nothing yet: what it owned
        // then is claimed again, by it or by others.
        self.disown_all().await?;
        self.pg().execute(
            &format!(
                "INSERT INTO nodes (node_id, address, started_ms, heartbeat_ms, lease_until_ms)
                 VALUES ($1, $2, {DB_NOW}, {DB_NOW}, {DB_NOW} + $3)
                 ON CONFLICT (node_id) DO UPDATE SET address = EXCLUDED.address, heartbeat_ms = EXCLUDED.heartbeat_ms,
                    lease_until_ms = EXCLUDED.lease_until_ms, leaving = FALSE"
            ),
            &[&self.pg().node_id, &address, &ttl],
        )
        .await?;
        self.tell(&ClusterMessage::Rebalance).await
    }

    async fn renew(&self, ttl: Duration) -> Result<bool, StoreError> {
        let ttl_ms = ttl.as_millis() as i64;
        let renew = async {
            let client = self.pg().lease.get().await?;
            client
                .execute(
                    &format!(
                        "UPDATE nodes SET heartbeat_ms = {DB_NOW}, lease_until_ms = {DB_NOW} + $2
                         WHERE node_id = $1 AND lease_until_ms >= {DB_NOW}"
                    ),
                    &[&self.pg().node_id, &ttl_ms],
                )
                .await
                .map_err(pg)
        };
        // A renewal answered after the next is due is no use: it gives up then, and
        // the next tries on a new connection.
        let renewed = self
            .pg()
            .lease
            .within(ttl / RENEWALS_PER_LEASE, renew)
            .await?;
        Ok(renewed == 1)
    }

    async fn claim(&self, at_most: usize) -> Result<Claim, StoreError> {
        let node = self.pg().node_id.clone();
        let work = async {
            let mut client = self.pg().readers.get().await?;
            let tx = client.transaction().await.map_err(pg)?;
            // Every position at or below the head is settled (docs/api.md §13): what
            // the adopted channels owe up to it is counted below, and what comes after
            // it reaches this node's feed.
            let head: i64 = tx
                .query_one("SELECT seq FROM log_head", &[])
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
                         -- Only under a live lease of its own: a claim that stalled past
                         -- it (and may have reaped this very node) adopts nothing.
                         AND EXISTS (SELECT 1 FROM nodes WHERE node_id = $1 AND lease_until_ms >= {DB_NOW})
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
                    // JIT threshold and the claim slower.
                    &format!(
                        "SELECT c.pk, (SELECT COUNT(*) FROM events e WHERE e.seq > c.progress_seq AND e.seq <= $2 AND {})
                             + CASE WHEN c.synced THEN 0 ELSE 1 END
                         FROM channels c WHERE c.pk = ANY($1) AND c.within IS NULL
                         UNION ALL
                         SELECT c.pk, (SELECT SUM((SELECT COUNT(*) FROM events e WHERE e.seq > c.progress_seq AND e.seq <= $2 AND {}))
                             FROM unnest(string_to_array(c.within, E'\\n')) AS p(path))::BIGINT
                             + CASE WHEN c.synced THEN 0 ELSE 1 END
                         FROM channels c WHERE c.pk = ANY($1) AND c.within IS NOT NULL",
                        under("e.resource", ["c.resource".to_string()]),
                        under("e.resource", ["p.path".to_string()])
                    ),
                    &[&pks, &head],
                )
                .await
                .map_err(pg)?;
            let removed_rows = tx
                .query("SELECT pk FROM removals WHERE owner_node = $1", &[&node])
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
                removed: removed_rows.iter().map(|r| r.get(0)).collect(),
            })
        };
        self.pg().readers.within(WAIT, work).await
    }

    async fn release(&self, pks: &[i64]) -> Result<(), StoreError> {
        let pks = pks.to_vec();
        self.pg()
            .execute(
                "UPDATE channels SET owner_node = NULL WHERE pk = ANY($1) AND owner_node = $2",
                &[&pks, &self.pg().node_id],
            )
            .await?;
        self.tell(&ClusterMessage::Rebalance).await
    }

    async fn leaving(&self) -> Result<(), StoreError> {
        self.for_this_node("UPDATE nodes SET leaving = TRUE WHERE node_id = $1")
            .await
    }

    async fn leave(&self) -> Result<(), StoreError> {
        self.disown_all().await?;
        self.for_this_node("DELETE FROM nodes WHERE node_id = $1")
            .await?;
        self.tell(&ClusterMessage::Rebalance).await
    }

    async fn nodes(&self) -> Result<Vec<NodeInfo>, StoreError> {
        let rows = self
            .pg()
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
            .pg()
            .query("SELECT owner_node FROM channels WHERE pk = $1", &[&pk])
            .await?;
        Ok(rows.first().and_then(|r| r.get(0)))
    }

    async fn removal_settled(&self, pk: i64) -> Result<bool, StoreError> {
        let rows = self
            .pg()
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
        self.pg()
            .execute("DELETE FROM removals WHERE pk = ANY($1)", &[&pks])
            .await
            .map(drop)
    }

    async fn tell(&self, message: &ClusterMessage) -> Result<(), StoreError> {
        self.pg()
            .execute(
                "SELECT pg_notify($1, $2)",
                &[&self.pg().topics.cluster, &message.encode()],
            )
            .await
            .map(drop)
    }

    fn take_messages(&self) -> Option<mpsc::UnboundedReceiver<ClusterMessage>> {
        let mut told = self.told.lock().unwrap().take()?;
        let (tx, messages) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(text) = told.recv().await {
                // A text no node of this version sends (a newer node's) is left alone.
                if let Some(message) = ClusterMessage::decode(&text) {
                    if tx.send(message).is_err() {
                        return;
                    }
                }
            }
        });
        Some(messages)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Coverage;
    use crate::store::conformance::{channel, event, Place};
    use crate::store::Store;

    /// A node that takes channels over counts what each owes by what it covers: the whole
    /// namespace, the prefixes a channel on `/` is kept within, or its resource.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_claim_counts_what_each_channel_covers() {
        let Some(place) = Place::postgres().await else {
            return;
        };
        let Place::Postgres { url, .. } = &place else {
            unreachable!()
        };
        let first = Arc::new(PgStore::open(url, "first").await.unwrap());
        let first_node = PgMembership::new(first.clone());
        let ttl = std::time::Duration::from_secs(30);
        first_node.join("http://first", ttl).await.unwrap();
        let mut within = channel("o", "within", "/");
        within.within = Some(Box::new(Coverage::union(["/a", "/c"])));
        for spec in [channel("o", "all", "/"), within, channel("o", "b", "/b")] {
            first.create_channel(spec, 10).await.unwrap();
        }
        let events = ["/a/1", "/b/1", "/c", "/d", "/ab"].map(event).to_vec();
        first.append(events, None).await.unwrap();
        first_node.leave().await.unwrap();

        let second = Arc::new(PgStore::open(url, "second").await.unwrap());
        let membership = PgMembership::new(second);
        membership.join("http://second", ttl).await.unwrap();
        let claim = membership.claim(10).await.unwrap();
        let owed: std::collections::BTreeMap<String, u64> = claim
            .adopted
            .iter()
            .map(|a| (a.channel.spec.id.to_string(), a.owed))
            .collect();
        // Each owes its sync too.
        let want = [("all", 6), ("b", 2), ("within", 3)].map(|(id, n)| (id.to_string(), n));
        assert_eq!(owed, want.into_iter().collect());
    }

    /// A claim round hands a node the removals made through other nodes that it has not
    /// settled, so that a lost message never leaves a removed channel delivered.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_claim_returns_removals_waiting_for_this_node() {
        let Some(place) = Place::postgres().await else {
            return;
        };
        let Place::Postgres { url, .. } = &place else {
            unreachable!()
        };
        let ttl = std::time::Duration::from_secs(30);
        let first = Arc::new(PgStore::open(url, "owner").await.unwrap());
        let owner = PgMembership::new(first.clone());
        owner.join("http://owner", ttl).await.unwrap();
        let created = first
            .create_channel(channel("o", "c", "/a"), 10)
            .await
            .unwrap();
        assert!(owner.claim(10).await.unwrap().removed.is_empty());

        let second = PgStore::open(url, "other").await.unwrap();
        let removed = second
            .remove_channels(crate::store::Removal::Stop {
                owner: "o".into(),
                id: "c".into(),
                resource_id: "rid".into(),
            })
            .await
            .unwrap();
        assert_eq!(removed.elsewhere, vec![created.channel.pk]);
        let claim = owner.claim(10).await.unwrap();
        assert_eq!(claim.removed, vec![created.channel.pk]);
        owner.settle_removals(&claim.removed).await.unwrap();
        assert!(owner.claim(10).await.unwrap().removed.is_empty());
        assert!(owner.removal_settled(created.channel.pk).await.unwrap());
    }
}
