//! What one writing transaction does for each kind of request, written once for both
//! backends over [`Transaction`]: publishing (with the Idempotency-Key window),
//! creating a channel (replacing an expired one, the watcher rules, the per-key quota),
//! removing channels (leaving a record of how each ended), pruning in bounded steps,
//! and the probe. The rules themselves are decided in `rules.rs`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::rules::{
    self, idempotent_answer, Ended, RememberedPublish, StoredWatcher, IDEMPOTENCY_WINDOW_MS,
};
use super::sql::{
    channel_from_row, opt_int_from_row, params, single, Row, Statements, CHANNEL_COLUMNS,
};
use super::writer::{Growth, Log, Partition, Transaction};
use super::{Idempotency, PruneReport, PublishReceipt, Removal, StoreError};
use crate::model::{ChannelKind, ChannelSpec, NewEvent, Seq, SharedEvent, StoredChannel};
use crate::operational::{channel_event, ChannelChange};

/// Most rows one prune step deletes, so that a prune never holds the writer for long.
pub const PRUNE_CHUNK: i64 = 10_000;

/// How long a reading of the lowest channel progress serves prune steps.
const MIN_PROGRESS_TTL: Duration = Duration::from_secs(5);

type Answer<T> = Result<Result<T, StoreError>, StoreError>;

/// Appends events, answering from an earlier publish for an Idempotency-Key used
/// within its window (docs/api.md §6). The inner error concerns this request only;
/// the outer one aborts the transaction.
pub async fn append<T: Transaction>(
    tx: &mut T,
    events: Vec<NewEvent>,
    idempotency: Option<Idempotency>,
    now: i64,
) -> Answer<(PublishReceipt, Vec<SharedEvent>)> {
    if let Some(idem) = &idempotency {
        // The key is claimed before anything is read: where writers run in parallel
        // (PostgreSQL), a second transaction inserting the same key waits here for the
        // first to commit, then finds its answer. A read first would let both publish.
        let claimed = tx
            .execute(
                "INSERT INTO idempotency (owner, key, body_hash, last_seq, count, created_ms) VALUES ($1, $2, $3, 0, 0, $4)
                 ON CONFLICT (owner, key) DO NOTHING",
                params![&idem.owner, &idem.key, &idem.body_hash, now],
            )
            .await?;
        fn remembered(row: &dyn Row) -> Result<RememberedPublish, StoreError> {
            Ok(RememberedPublish {
                body_hash: row.text(0)?,
                last_seq: row.int(1)? as Seq,
                count: row.int(2)? as usize,
                created_ms: row.int(3)?,
            })
        }
        let earlier = match claimed {
            1 => None,
            _ => tx
                .query(
                "SELECT body_hash, last_seq, count, created_ms FROM idempotency WHERE owner = $1 AND key = $2",
                params![&idem.owner, &idem.key],
                    remembered,
                )
                .await?
                .into_iter()
                .next(),
        };
        if let Some(answer) = idempotent_answer(earlier, idem, now) {
            return Ok(answer.map(|receipt| (receipt, Vec::new())));
        }
    }
    let stored = tx.append(events, now).await?;
    let receipt = PublishReceipt {
        last_seq: stored.last().map_or(0, |e| e.seq),
        count: stored.len(),
        replayed: false,
    };
    if let Some(idem) = idempotency {
        tx.execute(
            "UPDATE idempotency SET body_hash = $3, last_seq = $4, count = $5, created_ms = $6 WHERE owner = $1 AND key = $2",
            params![idem.owner, idem.key, idem.body_hash, receipt.last_seq, receipt.count as u64, now],
        )
        .await?;
    }
    metrics::counter!("watchwire_events_published_total").increment(stored.len() as u64);
    Ok(Ok((receipt, stored)))
}

/// Stores a channel, replacing an expired one that holds the same (owner, id). The
/// writer serialises every creation (one writer per database, and across processes
/// the transaction's lock), so the checks see every channel committed before. The
/// answer: the channel, and the key of the one it replaced.
pub async fn create_channel<T: Transaction>(
    tx: &mut T,
    spec: ChannelSpec,
    max_per_owner: u64,
    now: i64,
) -> Answer<(StoredChannel, Option<i64>)> {
    fn pk_and_expiration(row: &dyn Row) -> Result<(i64, Option<i64>), StoreError> {
        Ok((row.int(0)?, row.opt_int(1)?))
    }
    let existing = tx
        .query(
            "SELECT pk, expiration_ms FROM channels WHERE owner = $1 AND id = $2",
            params![&spec.owner, &spec.id],
            pk_and_expiration,
        )
        .await?
        .into_iter()
        .next();
    if spec.kind == ChannelKind::Watcher {
        fn id_and_pattern(row: &dyn Row) -> Result<(String, String), StoreError> {
            Ok((row.text(0)?, row.text(1)?))
        }
        let watchers = tx
            .query(
                "SELECT id, resource FROM channels WHERE owner = $1 AND address = $2 AND kind = 'watcher'",
                params![&spec.owner, &spec.address],
                id_and_pattern,
            )
            .await?;
        if let Some(conflict) = rules::watcher_conflict(&spec, watchers) {
            return Ok(Err(conflict));
        }
    }
    let mut replaced = None;
    if let Some((pk, expiration)) = existing {
        let ended = match rules::take_over_id(&spec.id, expiration, now) {
            Ok(ended) => ended,
            Err(refused) => return Ok(Err(refused)),
        };
        delete_channel(tx, pk, &ended).await?;
        replaced = Some(pk);
    }
    if !take_quota(tx, &spec.owner, max_per_owner).await? {
        return Ok(Err(StoreError::TooManyChannels(max_per_owner)));
    }
    let head = tx.head().await?;
    let node = tx.node().map(str::to_string);
    let within = spec.within.as_ref().map(|w| w.to_lines());
    let pk = single(
        tx.query(
            "INSERT INTO channels (kind, owner, id, resource, resource_id, resource_uri, address, token, expiration_ms, params,
                                   payload, signing_secret, created_ms, start_seq, progress_seq, synced, owner_node, within, filter, auth)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14, FALSE, $15, $16, $17, $18) RETURNING pk",
            params![
                spec.kind.as_str(),
                &spec.owner,
                &spec.id,
                &spec.resource,
                &spec.resource_id,
                &spec.resource_uri,
                &spec.address,
                spec.token.as_deref(),
                spec.expiration_ms,
                spec.params_json(),
                spec.payload,
                spec.signing_secret.as_deref(),
                spec.created_ms,
                head,
                node,
                within,
                spec.filter.as_ref().map(|f| f.canonical().to_string()),
                spec.auth.as_ref().map(|a| a.stored()),
            ],
            opt_int_from_row,
        )
        .await?,
    )?
    .unwrap_or_default();
    let channel = StoredChannel {
        pk,
        spec: Arc::new(spec),
        start_seq: head,
        progress_seq: head,
        sent_seq: None,
        synced: false,
        disabled: false,
        failing_since_ms: None,
    };
    Ok(Ok((channel, replaced)))
}

/// Takes one of the owner's `max` channel places, counted in `owner_counts`; `false`
/// when all are taken.
async fn take_quota<T: Transaction>(tx: &mut T, owner: &str, max: u64) -> Result<bool, StoreError> {
    if max == 0 {
        return Ok(false);
    }
    // One statement per creation: the owner's first channel makes its row, a later one
    // counts up only below the quota (an upsert whose WHERE fails changes no row).
    let taken = tx
        .execute(
            "INSERT INTO owner_counts (owner, channels) VALUES ($1, 1)
             ON CONFLICT (owner) DO UPDATE SET channels = owner_counts.channels + 1 WHERE owner_counts.channels < $2",
            // Integers are signed in both databases: a larger quota is as good as none.
            params![owner, max],
        )
        .await?;
    Ok(taken == 1)
}

/// Deletes a channel and its delivery log, leaving a record of how it ended (an
/// expired channel ended at its expiration, which the API showed before the sweep
/// came). `false` when there was no such channel. Migrations run it too, so it reads
/// only the columns every schema version since removed channels has.
pub async fn delete_channel<S: Statements>(
    tx: &mut S,
    pk: i64,
    ended: &Ended,
) -> Result<bool, StoreError> {
    tx.execute(
        "INSERT INTO removed_channels (owner, id, kind, resource, resource_id, resource_uri, address, expiration_ms, params, created_ms,
                                       state, reason, removed_ms)
         SELECT owner, id, kind, resource, resource_id, resource_uri, address, expiration_ms, params, created_ms, $2, $3,
                CASE WHEN $2 = 'expired' AND expiration_ms < $4 THEN expiration_ms ELSE $4 END
         FROM channels WHERE pk = $1
         ON CONFLICT (owner, id) DO UPDATE SET kind = excluded.kind, resource = excluded.resource, resource_id = excluded.resource_id,
            resource_uri = excluded.resource_uri, address = excluded.address, expiration_ms = excluded.expiration_ms,
            params = excluded.params, created_ms = excluded.created_ms, state = excluded.state, reason = excluded.reason,
            removed_ms = excluded.removed_ms",
        params![pk, ended.state, &ended.reason, ended.at_ms],
    )
    .await?;
    let deleted = tx
        .query(
            "DELETE FROM channels WHERE pk = $1 RETURNING owner",
            params![pk],
            |row| row.text(0),
        )
        .await?;
    tx.execute("DELETE FROM outcomes WHERE channel_pk = $1", params![pk])
        .await?;
    let Some(owner) = deleted.into_iter().next() else {
        return Ok(false);
    };
    tx.execute(
        "UPDATE owner_counts SET channels = channels - 1 WHERE owner = $1",
        params![owner],
    )
    .await?;
    Ok(true)
}

/// Removes channels. The answer: the channels removed, and those of them another node
/// delivered (which `Transaction::removed_elsewhere` told).
pub async fn remove_channels<T: Transaction>(
    tx: &mut T,
    removal: Removal,
    now: i64,
    told: &mut Vec<NewEvent>,
) -> Answer<(Vec<i64>, Vec<i64>)> {
    fn pk_and_resource_id(row: &dyn Row) -> Result<(i64, String), StoreError> {
        Ok((row.int(0)?, row.text(1)?))
    }
    let owned = "SELECT pk, resource_id FROM channels WHERE owner = $1 AND id = $2 AND kind = $3";
    let ended = Ended::by(&removal, now);
    let expired_at = match &removal {
        Removal::ExpiredAt { now_ms, .. } => Some(*now_ms),
        _ => None,
    };
    let pks: Vec<i64> = match removal {
        Removal::Stop {
            owner,
            id,
            resource_id,
        } => {
            let found = tx
                .query(owned, params![owner, id, "channel"], pk_and_resource_id)
                .await?;
            match found.into_iter().next() {
                Some((pk, stored)) if stored == resource_id => vec![pk],
                _ => return Ok(Err(StoreError::NotFound)),
            }
        }
        Removal::Watcher { owner, id } => {
            let found = tx
                .query(owned, params![owner, id, "watcher"], pk_and_resource_id)
                .await?;
            match found.into_iter().next() {
                Some((pk, _)) => vec![pk],
                None => return Ok(Err(StoreError::NotFound)),
            }
        }
        Removal::Gone { pk, .. } => vec![pk],
        Removal::ExpiredAt { now_ms, notice_ms } => {
            tx.execute(
                "DELETE FROM idempotency WHERE created_ms <= $1",
                params![now - IDEMPOTENCY_WINDOW_MS],
            )
            .await?;
            tell_expiring(tx, now_ms, notice_ms, told).await?;
            tx.query(
                "SELECT pk FROM channels WHERE expiration_ms IS NOT NULL AND expiration_ms <= $1 ORDER BY pk",
                params![now_ms],
                |row| row.int(0),
            )
            .await?
        }
    };
    let (mut removed, mut elsewhere) = (Vec::with_capacity(pks.len()), Vec::new());
    for pk in pks {
        if let Some(now_ms) = expired_at {
            // Still expired, and locked until this transaction ends: a renewal
            // (docs/api.md §8.6) committed since the channels were chosen takes this one
            // out (a writer waiting for a renewal in progress reads the row again after
            // it), and one that comes later finds it gone. In pk order, as the deletes.
            let still = tx
                .execute(
                    "UPDATE channels SET expiration_ms = expiration_ms WHERE pk = $1 AND expiration_ms <= $2",
                    params![pk, now_ms],
                )
                .await?;
            if still == 0 {
                continue;
            }
        }
        let node = tx
            .query(
                "SELECT owner_node FROM channels WHERE pk = $1",
                params![pk],
                |row| row.opt_text(0),
            )
            .await?
            .into_iter()
            .next()
            .flatten();
        let spec = tx
            .query(
                &format!("SELECT {CHANNEL_COLUMNS} FROM channels WHERE pk = $1"),
                params![pk],
                channel_from_row,
            )
            .await?
            .into_iter()
            .next();
        if !delete_channel(tx, pk, &ended).await? {
            continue;
        }
        removed.push(pk);
        // The operational event of the removal (docs/api.md §18), appended once this
        // transaction has committed.
        if let Some(channel) = spec {
            let change = match ended.state {
                "expired" => ChannelChange::Expired,
                "gone" => ChannelChange::Gone,
                _ => ChannelChange::Stopped,
            };
            let reason = serde_json::json!(ended.reason);
            told.push(channel_event(change, &channel.spec, None, reason, now));
        }
        if let Some(node) = node.filter(|n| Some(n.as_str()) != tx.node()) {
            tx.removed_elsewhere(pk, &node, now).await?;
            elsewhere.push(pk);
        }
    }
    Ok(Ok((removed, elsewhere)))
}

/// `channel.expiring` (docs/api.md §18) for each live channel expiring within
/// `notice_ms` of `now_ms` that has not been told of for its present expiration (a
/// renewal makes a new one), marked as told in this transaction.
async fn tell_expiring<T: Transaction>(
    tx: &mut T,
    now_ms: i64,
    notice_ms: i64,
    told: &mut Vec<NewEvent>,
) -> Result<(), StoreError> {
    if notice_ms <= 0 {
        return Ok(());
    }
    let expiring = tx
        .query(
            &format!(
                "SELECT {CHANNEL_COLUMNS} FROM channels WHERE expiration_ms IS NOT NULL
                 AND expiration_ms > $1 AND expiration_ms <= $2
                 AND (expiring_told_ms IS NULL OR expiring_told_ms <> expiration_ms) ORDER BY pk"
            ),
            params![now_ms, now_ms.saturating_add(notice_ms)],
            channel_from_row,
        )
        .await?;
    for channel in expiring {
        let Some(expiration) = channel.spec.expiration_ms else {
            continue;
        };
        tx.execute(
            "UPDATE channels SET expiring_told_ms = $2 WHERE pk = $1",
            params![channel.pk, expiration],
        )
        .await?;
        let reason = serde_json::json!({
            "expiration": crate::model::rfc3339_ms(expiration),
            "renew": format!("POST /v1/channels/{}/renew", crate::protocol::resource::segment(&channel.spec.id)),
        });
        told.push(channel_event(
            ChannelChange::Expiring,
            &channel.spec,
            None,
            reason,
            now_ms,
        ));
    }
    Ok(())
}

/// Renews channel `pk` (docs/api.md §8.6): moves its expiration `to` a new one, if it
/// is a live watch channel (a watcher never expires; a channel whose expiration has
/// passed has expired, whether or not the sweep has removed it yet); with `None`, only
/// reads it. The answer: its expiration as stored now, and the node delivering it.
pub async fn renew_channel<T: Transaction>(
    tx: &mut T,
    pk: i64,
    to: Option<i64>,
    now: i64,
) -> Answer<(i64, Option<String>)> {
    fn expiration_and_node(row: &dyn Row) -> Result<(i64, Option<String>), StoreError> {
        Ok((row.int(0)?, row.opt_text(1)?))
    }
    let kind = ChannelKind::WatchChannel.as_str();
    let found = match to {
        Some(expiration_ms) => {
            tx.query(
                "UPDATE channels SET expiration_ms = $2
                 WHERE pk = $1 AND kind = $3 AND expiration_ms > $4
                 RETURNING expiration_ms, owner_node",
                params![pk, expiration_ms, kind, now],
                expiration_and_node,
            )
            .await?
        }
        None => {
            tx.query(
                "SELECT expiration_ms, owner_node FROM channels
                 WHERE pk = $1 AND kind = $2 AND expiration_ms IS NOT NULL",
                params![pk, kind],
                expiration_and_node,
            )
            .await?
        }
    };
    Ok(found.into_iter().next().ok_or(StoreError::NotFound))
}

/// A bound below which no stored channel owes an event: the lowest progress, or the
/// log's head when there is no channel. The lowest progress is read at most every
/// [`MIN_PROGRESS_TTL`]; it stays a safe bound meanwhile, since progress only grows and
/// a channel created since starts at the head of its creation, above it.
pub async fn min_progress<T: Transaction>(
    tx: &mut T,
    cached: &mut Option<(Instant, Seq)>,
) -> Result<Seq, StoreError> {
    if let Some((at, bound)) = *cached {
        if at.elapsed() < MIN_PROGRESS_TTL {
            return Ok(bound);
        }
    }
    let lowest = single(
        tx.query(
            "SELECT MIN(progress_seq) FROM channels",
            Vec::new(),
            opt_int_from_row,
        )
        .await?,
    )?;
    let head = tx.head().await?;
    match lowest {
        // Without channels the head is the bound, read afresh each step: cheap, and it
        // must not hold back pruning for the time a cached reading would.
        None => Ok(head),
        Some(lowest) => {
            let bound = (lowest as Seq).min(head);
            *cached = Some((Instant::now(), bound));
            Ok(bound)
        }
    }
}

/// One bounded prune step (see `Store::prune`). What is due is decided here, for both
/// backends; a backend only says how it stores the logs (`Transaction::partitions`):
/// row by row (SQLite) or in ranges of positions dropped whole (PostgreSQL).
///
/// - **Events** go oldest first, through a position at or below `safe` (no stored
///   channel owes an event at or below it) whose event is older than
///   `events_before_ms`. Positions are commit order: what is below that event was
///   committed before it and goes with it. Row by row, that is the newest such event of
///   the next chunk; by partition, the oldest partition once its newest event is (the
///   one that reaches past the head too, once every channel is at the head).
///   `pruned_through` becomes the last position removed, so it stays exact.
/// - **Delivery-log entries** go once older than `outcomes_before_ms`, unless pending:
///   a notification awaiting a retry keeps its entry, and with it its attempts and its
///   retry budget. By partition: the oldest, once every channel is past it and it
///   holds no entry that is young or pending; entries in no partition go row by row.
/// - The polling index and removed-channel records go row by row, in chunks.
pub async fn prune<T: Transaction>(
    tx: &mut T,
    pruned_through: Seq,
    safe: Seq,
    events_before_ms: i64,
    outcomes_before_ms: i64,
    now: i64,
) -> Result<PruneReport, StoreError> {
    let mut report = PruneReport {
        pruned_through,
        ..PruneReport::default()
    };
    let partitions = tx.partitions().await?;
    tx.fold_polling_index().await?;
    let head = tx.head().await?;
    match &partitions {
        None => prune_event_rows(tx, &mut report, safe, events_before_ms).await?,
        Some(partitions) => {
            let (oldest, before_ms) = (partitions.events.first(), events_before_ms);
            prune_partition(tx, &mut report, oldest, safe, head, before_ms).await?
        }
    }
    if report.pruned_through > pruned_through {
        set_meta(tx, "pruned_through", &report.pruned_through.to_string()).await?;
    }
    // Outside the partitions of the delivery log (all of it, row by row): positions
    // below `first` or from `end` on.
    let (first, end) = match &partitions {
        None => (0, 0),
        Some(partitions) => {
            let oldest = partitions.outcomes.first();
            let before_ms = outcomes_before_ms;
            prune_partition(tx, &mut report, oldest, safe, head, before_ms).await?;
            match (oldest, partitions.outcomes.last()) {
                (Some(oldest), Some(newest)) => (oldest.first, newest.last + 1),
                _ => (0, 0),
            }
        }
    };
    let chunk = [
        (
            "DELETE FROM prefixes WHERE path IN (SELECT path FROM prefixes WHERE last_seq <= $1 LIMIT $2)",
            params![report.pruned_through, PRUNE_CHUNK],
        ),
        (
            "DELETE FROM outcomes WHERE at_ms < $1 AND status <> 'pending' AND (seq < $3 OR seq >= $4) AND (channel_pk, seq) IN
                 (SELECT channel_pk, seq FROM outcomes WHERE at_ms < $1 AND status <> 'pending' AND (seq < $3 OR seq >= $4)
                  ORDER BY at_ms LIMIT $2)",
            params![outcomes_before_ms, PRUNE_CHUNK, first, end],
        ),
        (
            "DELETE FROM removed_channels WHERE (owner, id) IN
                 (SELECT owner, id FROM removed_channels WHERE removed_ms < $1 LIMIT $2)",
            params![outcomes_before_ms, PRUNE_CHUNK],
        ),
    ];
    let mut removed = [0; 3];
    for (count, (sql, params)) in removed.iter_mut().zip(chunk) {
        *count = tx.execute(sql, params).await?;
    }
    report.collections = removed[0];
    report.outcomes += removed[1];
    report.removed_channels = removed[2];
    report.more |= removed.contains(&(PRUNE_CHUNK as u64));
    fn position_and_time(row: &dyn Row) -> Result<(Seq, i64), StoreError> {
        Ok((row.int(0)? as Seq, row.int(1)?))
    }
    let oldest = tx
        .query(
            "SELECT seq, time_ms FROM events WHERE seq > $1 ORDER BY seq LIMIT 1",
            params![report.pruned_through],
            position_and_time,
        )
        .await?
        .into_iter()
        .next();
    report.oldest_event_ms = oldest.map(|(_, time)| time);
    report.oldest_outcome_ms = single(
        tx.query(
            "SELECT MIN(at_ms) FROM outcomes",
            Vec::new(),
            opt_int_from_row,
        )
        .await?,
    )?;
    if partitions.is_some() {
        let growth = Growth {
            head,
            oldest,
            now,
            events_retention_ms: now.saturating_sub(events_before_ms),
            outcomes_retention_ms: now.saturating_sub(outcomes_before_ms),
        };
        tx.partition_ahead(&growth).await?;
    }
    Ok(report)
}

/// Events row by row: through the newest event of the next chunk that is old enough
/// and at or below `safe`.
async fn prune_event_rows<T: Transaction>(
    tx: &mut T,
    report: &mut PruneReport,
    safe: Seq,
    before_ms: i64,
) -> Result<(), StoreError> {
    let old_enough = single(
        tx.query(
            "SELECT MAX(seq) FROM (SELECT seq, time_ms FROM events WHERE seq > $1 ORDER BY seq LIMIT $2) AS chunk WHERE time_ms < $3",
            params![report.pruned_through, PRUNE_CHUNK, before_ms],
            opt_int_from_row,
        )
        .await?,
    )?;
    let upto = old_enough.unwrap_or(0).min(safe as i64);
    if upto > report.pruned_through as i64 {
        report.events = tx
            .execute(
                "DELETE FROM events WHERE seq > $1 AND seq <= $2",
                params![report.pruned_through, upto],
            )
            .await?;
        report.pruned_through = upto as Seq;
    }
    // A full chunk may have been cut short by the chunk, not by age.
    report.more |= report.events >= (PRUNE_CHUNK as u64).saturating_sub(1);
    Ok(())
}

/// By partition: the oldest partition of a log, once all it holds is due. Every
/// channel is past it, and nothing in it is kept: for the log, its newest event is
/// older than `before_ms`; for the delivery log, no entry is that young and none is
/// pending. A partition that reaches past `safe` goes too when every channel is at
/// the log's head (nothing is after it to keep), its positions after the head getting
/// a partition of their own: else a small log would never be pruned. One a step;
/// `more` says to look at the next.
async fn prune_partition<T: Transaction>(
    tx: &mut T,
    report: &mut PruneReport,
    oldest: Option<&Partition>,
    safe: Seq,
    head: Seq,
    before_ms: i64,
) -> Result<(), StoreError> {
    let Some(oldest) = oldest else {
        return Ok(());
    };
    let log = oldest.log;
    let through = match oldest.last <= safe {
        true => oldest.last,
        false if safe == head && oldest.first <= head => head,
        false => return Ok(()),
    };
    let keeps = match log {
        Log::Events => {
            "SELECT COALESCE((SELECT time_ms FROM events WHERE seq >= $1 AND seq <= $2 ORDER BY seq DESC LIMIT 1) >= $3, FALSE)"
        }
        Log::Outcomes => {
            "SELECT COALESCE((SELECT MAX(at_ms) FROM outcomes WHERE seq >= $1 AND seq <= $2) >= $3, FALSE)
                 OR EXISTS (SELECT 1 FROM outcomes WHERE status = 'pending' AND seq >= $1 AND seq <= $2)"
        }
    };
    let params = params![oldest.first, oldest.last, before_ms];
    let kept = single(tx.query(keeps, params, |row| row.bool(0)).await?)?;
    if kept {
        return Ok(());
    }
    if through < oldest.last {
        // Split at the head: only worth it for what it removes. A partition with
        // nothing up to the head would be dropped and made again each step while
        // publishes move the head, every time locking the log against readers and
        // writers for a drop and a create.
        let holds = match log {
            Log::Events => "SELECT EXISTS (SELECT 1 FROM events WHERE seq >= $1 AND seq <= $2)",
            Log::Outcomes => "SELECT EXISTS (SELECT 1 FROM outcomes WHERE seq >= $1 AND seq <= $2)",
        };
        let params = params![oldest.first, through];
        if !single(tx.query(holds, params, |row| row.bool(0)).await?)? {
            return Ok(());
        }
    }
    if !tx.drop_partition(oldest, through).await? {
        return Ok(());
    }
    match log {
        Log::Events => {
            // Positions are events but for gaps; those at or below `pruned_through`
            // were gone already.
            let below = oldest.first.saturating_sub(1).max(report.pruned_through);
            report.events = through.saturating_sub(below);
            report.pruned_through = report.pruned_through.max(through);
        }
        Log::Outcomes => report.outcomes += oldest.rows,
    }
    report.more = true;
    Ok(())
}

/// A small write, to learn whether the store can write again.
pub async fn probe<T: Transaction>(tx: &mut T, now: i64) -> Result<(), StoreError> {
    set_meta(tx, "last_probe_ms", &now.to_string()).await
}

/// Sets a value of the `meta` table (kept as text bytes).
pub async fn set_meta<S: Statements>(tx: &mut S, key: &str, value: &str) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        vec![key.into(), super::sql::Value::Bytes(value.as_bytes().to_vec())],
    )
    .await
    .map(drop)
}

/// A number of the `meta` table; 0 when unset.
pub async fn meta_u64<S: Statements>(tx: &mut S, key: &str) -> Result<u64, StoreError> {
    let value = tx
        .query(
            "SELECT value FROM meta WHERE key = $1",
            params![key],
            |row| row.opt_bytes(0),
        )
        .await?
        .into_iter()
        .next()
        .flatten();
    Ok(value
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(0))
}

/// The per-database secret for resource ids: created by whichever process opens the
/// database first, the same for every one after.
pub async fn instance_secret<S: Statements>(tx: &mut S) -> Result<Vec<u8>, StoreError> {
    let fresh: Vec<u8> = (0..32).map(|_| rand::random::<u8>()).collect();
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('instance_secret', $1) ON CONFLICT (key) DO NOTHING",
        vec![super::sql::Value::Bytes(fresh)],
    )
    .await?;
    let secret = tx
        .query(
            "SELECT value FROM meta WHERE key = 'instance_secret'",
            Vec::new(),
            |row| row.opt_bytes(0),
        )
        .await?;
    single(secret)?.ok_or_else(|| StoreError::Backend("the instance secret is missing".into()))
}

/// Watchers stored before endpoints were compared in their normal form, brought up to
/// the rules (`rules::upgrade_watchers`): run by both backends' migrations before the
/// step that makes the database refuse a second watcher on one pattern and endpoint.
pub async fn upgrade_watchers<S: Statements>(tx: &mut S, now: i64) -> Result<(), StoreError> {
    fn watcher(row: &dyn Row) -> Result<StoredWatcher, StoreError> {
        Ok(StoredWatcher {
            pk: row.int(0)?,
            owner: row.text(1)?,
            id: row.text(2)?,
            pattern: row.text(3)?,
            address: row.text(4)?,
        })
    }
    let watchers = tx
        .query(
            "SELECT pk, owner, id, resource, address FROM channels WHERE kind = 'watcher'",
            Vec::new(),
            watcher,
        )
        .await?;
    let upgrade = rules::upgrade_watchers(watchers, now);
    for (pk, ended) in &upgrade.removed {
        tracing::warn!(pk, reason = %ended.reason, "removed a watcher on upgrade");
        delete_channel(tx, *pk, ended).await?;
    }
    for (pk, address) in &upgrade.normalised {
        tx.execute(
            "UPDATE channels SET address = $2 WHERE pk = $1",
            params![*pk, address],
        )
        .await?;
    }
    Ok(())
}

/// Each job on a migrated in-memory SQLite database, one transaction each, as the
/// writer runs them (the conformance suite covers them again through both stores).
#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance::{channel, event};
    use crate::store::sqlite::in_memory::{at_once, database, SqliteTx};

    /// Runs `work` in one committed transaction on `conn`.
    fn in_tx<R>(
        conn: &mut rusqlite::Connection,
        work: impl for<'t> FnOnce(&'t mut SqliteTx<'_>) -> futures_util::future::LocalBoxFuture<'t, R>,
    ) -> R {
        let mut tx = SqliteTx::immediate(conn).unwrap();
        let answer = at_once(work(&mut tx));
        at_once(tx.commit()).unwrap();
        answer
    }

    fn key(body_hash: &str) -> Option<Idempotency> {
        Some(Idempotency {
            owner: "o".into(),
            key: "k".into(),
            body_hash: body_hash.into(),
        })
    }

    fn publish(
        conn: &mut rusqlite::Connection,
        resources: &[&str],
        idempotency: Option<Idempotency>,
        now: i64,
    ) -> Result<PublishReceipt, StoreError> {
        let events: Vec<NewEvent> = resources.iter().map(|r| event(r)).collect();
        in_tx(conn, |tx| Box::pin(append(tx, events, idempotency, now)))
            .unwrap()
            .map(|(receipt, _)| receipt)
    }

    #[test]
    fn appends_take_the_next_positions_and_a_key_answers_from_its_first_publish() {
        let mut conn = database();
        let first = publish(&mut conn, &["/a", "/b"], None, 1_000).unwrap();
        assert_eq!((first.last_seq, first.count, first.replayed), (2, 2, false));
        let keyed = publish(&mut conn, &["/c"], key("h1"), 2_000).unwrap();
        assert_eq!((keyed.last_seq, keyed.replayed), (3, false));
        // The same key and body within the window: the first answer, nothing appended.
        let again = publish(&mut conn, &["/c"], key("h1"), 3_000).unwrap();
        assert_eq!((again.last_seq, again.count, again.replayed), (3, 1, true));
        assert_eq!(in_tx(&mut conn, |tx| Box::pin(tx.head())).unwrap(), 3);
        // The same key with another body is refused.
        assert!(publish(&mut conn, &["/d"], key("h2"), 3_000).is_err());
        // After the window the key is free again.
        let later = publish(
            &mut conn,
            &["/d"],
            key("h2"),
            2_000 + IDEMPOTENCY_WINDOW_MS + 1,
        );
        assert_eq!(later.unwrap().last_seq, 4);
    }

    #[test]
    fn channels_start_at_the_head_and_an_owner_is_held_to_its_quota() {
        let mut conn = database();
        publish(&mut conn, &["/a"], None, 1).unwrap();
        let create = |conn: &mut rusqlite::Connection, id: &str| {
            let spec = channel("o", id, "/a");
            in_tx(conn, |tx| Box::pin(create_channel(tx, spec, 2, 10))).unwrap()
        };
        let (created, replaced) = create(&mut conn, "one").unwrap();
        assert_eq!((created.start_seq, replaced), (1, None));
        create(&mut conn, "two").unwrap();
        let refused = create(&mut conn, "three").unwrap_err();
        assert!(refused.to_string().contains('2'), "{refused}");
        // The same id while the first is live is a conflict, not a second channel.
        assert!(create(&mut conn, "one").is_err());
    }

    #[test]
    fn a_removal_leaves_a_record_of_how_the_channel_ended() {
        let mut conn = database();
        let spec = channel("o", "c", "/a");
        in_tx(&mut conn, |tx| Box::pin(create_channel(tx, spec, 10, 1)))
            .unwrap()
            .unwrap();
        let stop = |resource_id: &str| Removal::Stop {
            owner: "o".into(),
            id: "c".into(),
            resource_id: resource_id.into(),
        };
        let wrong = stop("other");
        let refused = in_tx(&mut conn, |tx| {
            Box::pin(async move { remove_channels(tx, wrong, 2, &mut Vec::new()).await })
        })
        .unwrap();
        assert!(
            matches!(refused, Err(StoreError::NotFound)),
            "a wrong resourceId removes nothing: {refused:?}"
        );
        let right = stop("rid");
        let (answer, told) = in_tx(&mut conn, |tx| {
            Box::pin(async move {
                let mut told = Vec::new();
                let answer = remove_channels(tx, right, 3, &mut told).await?;
                Ok::<_, StoreError>((answer, told))
            })
        })
        .unwrap();
        let (removed, elsewhere) = answer.unwrap();
        assert_eq!((removed.len(), elsewhere.len()), (1, 0));
        assert_eq!(told.len(), 1, "one channel.stopped");
        assert_eq!(told[0].resource, "/watchwire/events/channels/c");
        let ended: Vec<i64> = conn
            .prepare("SELECT removed_ms FROM removed_channels WHERE owner = 'o' AND id = 'c'")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(ended, vec![3]);
    }

    #[test]
    fn pruning_keeps_what_a_channel_still_owes_and_what_is_young() {
        let mut conn = database();
        for t in [10, 20, 30, 40] {
            publish(&mut conn, &["/a"], None, t).unwrap();
        }
        // Older than 35 ms: positions 1..=3; a channel is past 2 only.
        let report = in_tx(&mut conn, |tx| Box::pin(prune(tx, 0, 2, 35, 0, 50))).unwrap();
        assert_eq!((report.events, report.pruned_through), (2, 2));
        assert!(!report.more);
        assert_eq!(report.oldest_event_ms, Some(30));
        // Nothing owed any more: only age holds the last one back.
        let report = in_tx(&mut conn, |tx| Box::pin(prune(tx, 2, 4, 35, 0, 50))).unwrap();
        assert_eq!((report.events, report.pruned_through), (1, 3));
        assert_eq!(report.oldest_event_ms, Some(40));
    }

    #[test]
    fn the_lowest_progress_is_the_bound_and_the_head_without_channels() {
        let mut conn = database();
        for t in [1, 2, 3] {
            publish(&mut conn, &["/a"], None, t).unwrap();
        }
        let mut cached = None;
        let bound = |conn: &mut rusqlite::Connection, cached: &mut Option<(Instant, Seq)>| {
            let mut tx = SqliteTx::immediate(conn).unwrap();
            at_once(min_progress(&mut tx, cached)).unwrap()
        };
        assert_eq!(bound(&mut conn, &mut cached), 3);
        assert!(cached.is_none(), "without channels the head is read afresh");
        let spec = channel("o", "c", "/a");
        in_tx(&mut conn, |tx| Box::pin(create_channel(tx, spec, 10, 4)))
            .unwrap()
            .unwrap();
        conn.execute("UPDATE channels SET progress_seq = 1", [])
            .unwrap();
        assert_eq!(bound(&mut conn, &mut cached), 1);
        assert!(
            cached.is_some(),
            "a reading with channels is kept for a while"
        );
    }
}
