//! One suite of store tests, run against every backend (docs/api.md §13: the
//! embedded store and PostgreSQL keep the same contract). Each test is written once
//! against `dyn Store` and instantiated per backend by `conformance!` at the bottom.
//!
//! PostgreSQL runs where `WATCHWIRE_TEST_DATABASE_URL` names a database (each test gets
//! a schema of its own, dropped afterwards); without it the PostgreSQL half prints that
//! it did not run, and fails when `CI` is set, so CI cannot skip it silently.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use super::postgres::{PartitionSize, PgStore};
use super::sqlite::SqliteStore;
use super::{Committed, EventPage, Idempotency, Removal, Store, StoreError};
use crate::model::{
    now_ms, ChannelKind, ChannelSpec, Coverage, NewEvent, Outcome, OutcomeStatus, Seq,
};

/// The width of the PostgreSQL log's partitions in these tests: known positions, so
/// that what pruning leaves is the same on both stores.
pub const TEST_PARTITION_POSITIONS: Seq = 1_000;

/// Where a test's store lives; `open` may be called again (a restart), and for
/// PostgreSQL while another instance is open (another node).
pub enum Place {
    Sqlite(tempfile::TempDir),
    Postgres {
        url: String,
        /// Held for its `Drop`, which drops the schema with everything in it.
        _schema: test_support::Schema,
    },
}

impl Place {
    pub fn sqlite() -> Place {
        Place::Sqlite(tempfile::tempdir().unwrap())
    }

    /// A fresh schema in the test database, or `None` (after saying so) without one.
    pub async fn postgres() -> Option<Place> {
        let admin = test_support::database("the PostgreSQL store tests")?;
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "ww_test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let schema = test_support::Schema::create(&admin, &name);
        Some(Place::Postgres {
            url: schema.url.clone(),
            _schema: schema,
        })
    }

    /// [`Place::postgres`], and its database's URL.
    pub async fn postgres_and_url() -> Option<(Place, String)> {
        let place = Place::postgres().await?;
        let Place::Postgres { url, .. } = &place else {
            unreachable!()
        };
        let url = url.clone();
        Some((place, url))
    }

    pub async fn open(&self) -> Arc<dyn Store> {
        match self {
            Place::Sqlite(dir) => Arc::new(SqliteStore::open(dir.path()).unwrap()),
            Place::Postgres { url, .. } => {
                static NODE: AtomicUsize = AtomicUsize::new(0);
                let node = format!("test-node-{}", NODE.fetch_add(1, Ordering::Relaxed));
                let size = PartitionSize::Fixed(TEST_PARTITION_POSITIONS);
                Arc::new(PgStore::open_with(url, &node, size).await.unwrap())
            }
        }
    }

    /// A second store on the same data while the first is open (another node), where
    /// the backend allows one.
    pub async fn another(&self, first: &Arc<dyn Store>) -> Arc<dyn Store> {
        match self {
            Place::Sqlite(_) => first.clone(),
            Place::Postgres { .. } => self.open().await,
        }
    }
}

pub(crate) fn event(resource: &str) -> NewEvent {
    NewEvent {
        resource: resource.into(),
        state: crate::model::ResourceState::Exists,
        data: Some(Bytes::from_static(b"{}")),
        changed: vec![],
        metadata: None,
        trace: None,
    }
}

/// Everything on or below `path`.
fn under(path: &str) -> Coverage {
    Coverage::path(path)
}

pub(crate) fn channel(owner: &str, id: &str, resource: &str) -> ChannelSpec {
    ChannelSpec {
        kind: ChannelKind::WatchChannel,
        owner: owner.into(),
        id: id.into(),
        resource: resource.into(),
        resource_id: "rid".into(),
        resource_uri: format!("http://gw{resource}").into(),
        address: "http://127.0.0.1:9/".into(),
        token: None,
        expiration_ms: None,
        params: None,
        payload: true,
        signing_secret: None,
        created_ms: 0,
        within: None,
        filter: None,
        auth: None,
    }
}

/// The key of a channel just stored.
pub(crate) async fn stored(store: &Arc<dyn Store>, spec: ChannelSpec) -> i64 {
    store.create_channel(spec, 10).await.unwrap().channel.pk
}

/// A delivery-log entry of channel `pk` for position `seq`, last attempted at `at_ms`.
pub(crate) fn entry(pk: i64, seq: Seq, status: OutcomeStatus, at_ms: i64) -> Outcome {
    Outcome {
        channel_pk: pk,
        seq,
        message_number: seq + 1,
        state: crate::model::ResourceState::Exists,
        status,
        attempts: 1,
        last_status: None,
        last_error: None,
        at_ms,
        next_retry_ms: None,
        first_attempt_ms: Some(at_ms),
        recent: vec![],
    }
}

fn watcher(pattern: &str) -> ChannelSpec {
    ChannelSpec {
        kind: ChannelKind::Watcher,
        id: format!("w{}", pattern.replace('/', "-")).into(),
        address: "https://example.com/hook".into(),
        ..channel("o", "", pattern)
    }
}

async fn log_reads_and_survives_a_restart(place: Place) {
    let store = place.open().await;
    let traced = crate::model::TraceContext::new_root();
    let first = NewEvent {
        trace: Some(traced),
        ..event("/a")
    };
    let receipt = store
        .append(vec![first, event("/a/b"), event("/ab")], None)
        .await
        .unwrap();
    assert_eq!((receipt.count, receipt.replayed), (3, false));
    store.close().await;

    let store = place.open().await;
    assert_eq!(store.head().await.unwrap(), receipt.last_seq);
    let page = store.read_matching(&under("/a"), 0, 10).await.unwrap();
    assert_eq!(page.events.len(), 2, "/ab only shares a string prefix");
    assert_eq!(page.head, receipt.last_seq);
    assert_eq!(
        store
            .read_matching(&under("/a/b"), 0, 10)
            .await
            .unwrap()
            .events
            .len(),
        1
    );
    assert_eq!(store.count_matching(&under("/a"), 0).await.unwrap(), 2);
    let log = store.read_log(0, 10).await.unwrap();
    assert_eq!(log.len(), 3);
    assert_eq!(
        log.iter().map(|e| e.trace).collect::<Vec<_>>(),
        [Some(traced), None, None],
        "an event keeps the trace of its publish"
    );
    assert_eq!(
        store.latest_seq_under(&under("/a")).await.unwrap(),
        Some(receipt.last_seq - 1)
    );
    let collections = |coverage: Coverage| {
        let store = store.clone();
        async move {
            let listed = store.list_collections(&coverage, 0, 10).await.unwrap();
            listed.into_iter().map(|c| c.path).collect::<Vec<_>>()
        }
    };
    assert_eq!(
        collections(under("/")).await,
        ["/ab", "/a"],
        "newest first: top-level resources are their own collections, /a/b is in /a"
    );
    // `/` covers everything; several paths cover what each does, once.
    let seqs = |page: EventPage| page.events.iter().map(|e| e.seq).collect::<Vec<_>>();
    let all = seqs(store.read_matching(&under("/"), 0, 10).await.unwrap());
    assert_eq!(all.len(), 3);
    assert_eq!(store.count_matching(&under("/"), 0).await.unwrap(), 3);
    assert_eq!(
        store.latest_seq_under(&under("/")).await.unwrap(),
        Some(receipt.last_seq)
    );
    let two = Coverage::union(["/a/b", "/ab", "/a/b/c"]);
    let page = store.read_matching(&two, 0, 10).await.unwrap();
    assert_eq!(seqs(page), [all[1], all[2]]);
    assert_eq!(store.count_matching(&two, all[1]).await.unwrap(), 1);
    assert_eq!(
        store.latest_seq_under(&two).await.unwrap(),
        Some(receipt.last_seq)
    );
    assert_eq!(collections(two).await, ["/ab"]);
    let next = store.append(vec![event("/a")], None).await.unwrap();
    assert!(next.last_seq > receipt.last_seq, "positions never repeat");
}

async fn concurrent_appends_share_commits(place: Place) {
    let store = place.open().await;
    let before = store.commits();
    let appends = (0..200).map(|i| store.append(vec![event(&format!("/r/{i}"))], None));
    let receipts = futures_util::future::join_all(appends).await;
    let seqs: BTreeSet<Seq> = receipts.into_iter().map(|r| r.unwrap().last_seq).collect();
    assert_eq!(seqs.len(), 200, "every append got its own position");
    let commits = store.commits() - before;
    assert!(
        commits < 40,
        "200 concurrent appends took {commits} commits; group commit should fold them"
    );
}

/// Positions become visible in order (docs/api.md §13): a reader tailing the log while
/// two writers append never sees a position appear below one it has already seen.
async fn concurrent_appends_become_visible_in_order(place: Place) {
    let first = place.open().await;
    let second = place.another(&first).await;
    const WRITERS: usize = 8;
    const APPENDS: usize = 40;
    let mut appenders = Vec::new();
    for w in 0..WRITERS {
        let store = if w % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        appenders.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..APPENDS {
                let receipt = store
                    .append(vec![event(&format!("/v/{w}/{i}"))], None)
                    .await
                    .unwrap();
                seqs.push(receipt.last_seq);
            }
            seqs
        }));
    }
    let reader = place.another(&first).await;
    let total = (WRITERS * APPENDS) as Seq;
    let mut seen: Seq = 0;
    while seen < total {
        for e in reader.read_log(seen, 1000).await.unwrap() {
            assert_eq!(
                e.seq,
                seen + 1,
                "position {} appeared after {seen} was seen",
                e.seq
            );
            seen = e.seq;
        }
        tokio::task::yield_now().await;
    }
    let mut all = BTreeSet::new();
    for appender in appenders {
        all.extend(appender.await.unwrap());
    }
    assert_eq!(
        all.len(),
        WRITERS * APPENDS,
        "every append its own position"
    );
}

async fn channels_are_unique_counted_and_leave_a_record(place: Place) {
    let store = place.open().await;
    let created = store
        .create_channel(channel("o", "c1", "/r"), 2)
        .await
        .unwrap();
    assert_eq!(created.channel.progress_seq, created.channel.start_seq);
    assert!(matches!(
        store.create_channel(channel("o", "c1", "/r"), 2).await,
        Err(StoreError::DuplicateChannel(_))
    ));
    store
        .create_channel(channel("o", "c2", "/r"), 2)
        .await
        .unwrap();
    assert_eq!(
        store
            .create_channel(channel("o", "c3", "/r"), 2)
            .await
            .err(),
        Some(StoreError::TooManyChannels(2))
    );
    store
        .create_channel(channel("other", "c1", "/r"), 2)
        .await
        .unwrap();
    // A quota beyond what the database's integers hold is no quota.
    store
        .create_channel(channel("other", "c2", "/r"), u64::MAX)
        .await
        .unwrap();
    let listed = store
        .list_channels(Some("o"), ChannelKind::WatchChannel, 0, 1)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    let rest = store
        .list_channels(Some("o"), ChannelKind::WatchChannel, listed[0].pk, 10)
        .await
        .unwrap();
    assert_eq!(rest.len(), 1);
    // Every owner's, for an operator, in pk order.
    let everyone = store
        .list_channels(None, ChannelKind::WatchChannel, 0, 10)
        .await
        .unwrap();
    let owners: Vec<&str> = everyone.iter().map(|c| &*c.spec.owner).collect();
    assert_eq!(owners, ["o", "o", "other", "other"]);
    assert!(everyone.windows(2).all(|w| w[0].pk < w[1].pk));
    assert!(store
        .list_channels(None, ChannelKind::Watcher, 0, 10)
        .await
        .unwrap()
        .is_empty());

    let stop = |resource_id: &str| Removal::Stop {
        owner: "o".into(),
        id: "c1".into(),
        resource_id: resource_id.into(),
    };
    assert_eq!(
        store.remove_channels(stop("wrong")).await.err(),
        Some(StoreError::NotFound)
    );
    let removed = store.remove_channels(stop("rid")).await.unwrap();
    assert_eq!(removed.pks, [created.channel.pk]);
    assert!(store.find_channel("o", "c1").await.unwrap().is_none());
    let record = store.find_removed("o", "c1").await.unwrap().unwrap();
    assert_eq!(record.ended, "stopped");
    // The place it held is free again.
    store
        .create_channel(channel("o", "c3", "/r"), 2)
        .await
        .unwrap();
    let all = store.load_channels(i64::MIN, usize::MAX).await.unwrap();
    assert_eq!(all.len(), 4);
    // A page at a time, by key: the same channels, each once.
    let first_page = store.load_channels(i64::MIN, 3).await.unwrap();
    let rest = store.load_channels(first_page[2].pk, 3).await.unwrap();
    let paged: Vec<i64> = first_page.iter().chain(&rest).map(|c| c.pk).collect();
    assert_eq!(paged, all.iter().map(|c| c.pk).collect::<Vec<_>>());
    // One by key, and none once removed.
    let one = store.load_channels_by_pk(&[all[0].pk]).await.unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].spec.id, all[0].spec.id);
    assert!(store
        .load_channels_by_pk(&[created.channel.pk])
        .await
        .unwrap()
        .is_empty());
    // Many by key: those that exist, each once, across the statements one read takes
    // (keys that never were, the removed one, and repeats, 300 in all).
    let mut keys: Vec<i64> = (0..290).map(|i| 1_000_000_000 + i).collect();
    keys.extend(all.iter().map(|c| c.pk));
    keys.extend(all.iter().map(|c| c.pk));
    keys.push(created.channel.pk);
    let mut found: Vec<i64> = store
        .load_channels_by_pk(&keys)
        .await
        .unwrap()
        .iter()
        .map(|c| c.pk)
        .collect();
    found.sort_unstable();
    let mut live: Vec<i64> = all.iter().map(|c| c.pk).collect();
    live.sort_unstable();
    assert_eq!(found, live);
    assert!(store.load_channels_by_pk(&[]).await.unwrap().is_empty());
}

/// The watcher rules and the quota hold across writers (docs/api.md §13): two nodes
/// racing to create one watcher give one success.
async fn watcher_rules_and_quotas_hold_across_writers(place: Place) {
    let first = place.open().await;
    let second = place.another(&first).await;
    let racers = [first.clone(), second.clone()].map(|store| {
        tokio::spawn(async move { store.create_channel(watcher("/apps/x"), 100).await })
    });
    let mut outcomes = Vec::new();
    for racer in racers {
        outcomes.push(racer.await.unwrap());
    }
    assert_eq!(
        outcomes.iter().filter(|r| r.is_ok()).count(),
        1,
        "{outcomes:?}"
    );
    let rule = |result: Result<_, StoreError>| match result {
        Err(StoreError::WatcherConflict { rule, .. }) => rule,
        other => panic!("expected a watcher conflict, got {other:?}"),
    };
    assert_eq!(
        rule(second.create_channel(watcher("/apps/x/y"), 100).await),
        "Pattern is already provided"
    );
    assert_eq!(
        rule(first.create_channel(watcher("/apps"), 100).await),
        "Pattern would overwrite existing"
    );

    // Twenty creations racing for ten places from two writers: exactly ten.
    let mut creations = Vec::new();
    for i in 0..20 {
        let store = if i % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        creations.push(tokio::spawn(async move {
            store
                .create_channel(channel("q", &format!("c{i}"), "/q"), 10)
                .await
        }));
    }
    let mut created = 0;
    for creation in creations {
        match creation.await.unwrap() {
            Ok(_) => created += 1,
            Err(StoreError::TooManyChannels(10)) => {}
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(created, 10);
}

async fn delivery_bookkeeping_is_kept(place: Place) {
    let store = place.open().await;
    let created = store
        .create_channel(channel("o", "c", "/b"), 10)
        .await
        .unwrap();
    let pk = created.channel.pk;
    let receipt = store
        .append(vec![event("/b/1"), event("/b/2")], None)
        .await
        .unwrap();
    let outcome = |seq: Seq, status, attempts| Outcome {
        channel_pk: pk,
        seq,
        message_number: seq + 1,
        state: crate::model::ResourceState::Exists,
        status,
        attempts,
        last_status: Some(503),
        last_error: None,
        at_ms: now_ms(),
        next_retry_ms: None,
        first_attempt_ms: Some(now_ms() - 1000),
        recent: vec![],
    };
    store.record_progress(pk, receipt.last_seq - 1);
    store.record_outcome(outcome(receipt.last_seq - 1, OutcomeStatus::Delivered, 1));
    store.record_outcome(outcome(receipt.last_seq, OutcomeStatus::Pending, 3));
    store.record_health(pk, Some(now_ms() - 5000), false, None);
    store.flush().await.unwrap();

    let all = store.list_outcomes(pk, None, None, 10).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].resource.as_deref(), Some("/b/1"));
    let pending = store
        .list_outcomes(pk, Some(OutcomeStatus::Pending), None, 10)
        .await
        .unwrap();
    assert_eq!((pending.len(), pending[0].outcome.attempts), (1, 3));
    let after = store
        .list_outcomes(pk, None, Some(receipt.last_seq - 1), 10)
        .await
        .unwrap();
    assert_eq!(after.len(), 1, "paging after a seq");
    let resumed = store.awaiting_retry().await.unwrap();
    assert_eq!((resumed.len(), resumed[0].seq), (1, receipt.last_seq));
    assert!(resumed[0].first_attempt_ms.is_some());
    let stored = store.find_channel("o", "c").await.unwrap().unwrap();
    assert_eq!(stored.progress_seq, receipt.last_seq - 1);
    assert!(stored.synced && stored.failing_since_ms.is_some());

    // A channel removed before its bookkeeping is written gets no delivery-log row,
    // not even a pending one (which no prune would ever take), nor progress.
    let gone = store
        .create_channel(channel("o", "gone", "/b"), 10)
        .await
        .unwrap()
        .channel
        .pk;
    let removal = Removal::Gone {
        pk: gone,
        reason: "test".into(),
    };
    assert_eq!(
        store.remove_channels(removal).await.unwrap().pks,
        vec![gone]
    );
    store.record_progress(gone, receipt.last_seq);
    store.record_outcome(Outcome {
        channel_pk: gone,
        ..outcome(receipt.last_seq, OutcomeStatus::Pending, 1)
    });
    store.record_outcome(outcome(receipt.last_seq, OutcomeStatus::Delivered, 4));
    store.flush().await.unwrap();
    let resumed = store.awaiting_retry().await.unwrap();
    assert!(resumed.iter().all(|o| o.channel_pk != gone), "{resumed:?}");
    assert!(store
        .list_outcomes(gone, None, None, 10)
        .await
        .unwrap()
        .is_empty());
    let kept = store.list_outcomes(pk, None, None, 10).await.unwrap();
    assert_eq!(
        kept[1].outcome.attempts, 4,
        "the live channel's row was rewritten"
    );
}

/// Pruning never removes what a channel still owes, even a channel created between
/// the steps of one pass; and one pass clears far more than a chunk.
async fn pruning_keeps_what_channels_owe_and_clears_the_rest(place: Place) {
    let store = place.open().await;
    let batch = |from: usize| {
        (from..from + 1000)
            .map(|i| event(&format!("/p/{i}/x")))
            .collect()
    };
    for b in 0..12 {
        store.append(batch(b * 1000), None).await.unwrap();
    }
    let everything = now_ms() + 1;
    let first = store.prune(everything, everything).await.unwrap();
    assert!(first.more, "12 000 events are more than a chunk");
    let owing = store
        .create_channel(channel("o", "c", "/p"), 10)
        .await
        .unwrap()
        .channel;
    store.append(batch(50_000), None).await.unwrap();
    let mut pruned = first.events;
    loop {
        let step = store.prune(everything, everything).await.unwrap();
        pruned += step.events;
        if !step.more {
            break;
        }
    }
    assert_eq!(
        pruned, 12_000,
        "everything before the channel, nothing after it"
    );
    assert_eq!(store.pruned_through(), owing.start_seq);
    let kept = store
        .read_matching(&under("/p"), owing.start_seq, 5000)
        .await
        .unwrap()
        .events;
    assert_eq!(kept.len(), 1000, "the channel's events are kept");
    let collections = store
        .list_collections(&under("/"), 0, 100_000)
        .await
        .unwrap();
    assert_eq!(
        collections.len(),
        1000,
        "only the kept events' collections remain"
    );
    assert!(store.size_bytes().await.unwrap() > 0);
}

/// A log all of which is due goes whole, however little it holds, and goes on from
/// there: `pruned_through` is its head, and what comes after is kept and read.
async fn pruning_takes_a_log_all_due(place: Place) {
    let store = place.open().await;
    let pk = stored(&store, channel("o", "c", "/s")).await;
    let head = store
        .append(vec![event("/s/1"), event("/s/2"), event("/s/3")], None)
        .await
        .unwrap()
        .last_seq;
    store.record_progress(pk, head);
    store.record_outcome(entry(pk, head, OutcomeStatus::Delivered, now_ms() - 60_000));
    store.flush().await.unwrap();
    let everything = now_ms() + 1;
    while store.prune(everything, everything).await.unwrap().more {}
    assert_eq!(store.pruned_through(), head);
    assert!(store.read_log(0, 10).await.unwrap().is_empty());
    assert!(store
        .list_outcomes(pk, None, None, 10)
        .await
        .unwrap()
        .is_empty());

    let next = store
        .append(vec![event("/s/4")], None)
        .await
        .unwrap()
        .last_seq;
    let page = store.read_matching(&under("/s"), head, 10).await.unwrap();
    assert_eq!(
        page.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [next]
    );
    // The channel is behind the new event now: it stays, however old.
    while store.prune(now_ms() + 1, now_ms() + 1).await.unwrap().more {}
    assert_eq!(store.pruned_through(), head);
    assert_eq!(store.read_log(0, 10).await.unwrap().len(), 1);
}

/// Retention never loses pending work: a delivery-log entry awaiting a retry stays
/// however old it is, while old entries nothing holds go.
async fn pruning_keeps_pending_delivery_log_entries(place: Place) {
    let store = place.open().await;
    let pk = stored(&store, channel("o", "c", "/q")).await;
    for from in [0, 1000] {
        let batch = (from..from + 1000).map(|i| event(&format!("/q/{i}")));
        store.append(batch.collect(), None).await.unwrap();
    }
    let long_ago = now_ms() - 60_000;
    store.record_outcome(entry(pk, 5, OutcomeStatus::Delivered, long_ago));
    store.record_outcome(entry(pk, 1500, OutcomeStatus::Pending, long_ago));
    store.record_progress(pk, store.head().await.unwrap());
    store.flush().await.unwrap();
    let before = now_ms() - 1000;
    while store.prune(0, before).await.unwrap().more {}
    let left = store.list_outcomes(pk, None, None, 10).await.unwrap();
    let seqs: Vec<Seq> = left.iter().map(|e| e.outcome.seq).collect();
    assert_eq!(
        seqs,
        [1500],
        "the old delivered entry went, the pending one stayed"
    );
    let resumed = store.awaiting_retry().await.unwrap();
    assert_eq!(resumed.iter().map(|o| o.seq).collect::<Vec<_>>(), [1500]);
    assert_eq!(store.pruned_through(), 0, "no event was old enough");
}

async fn idempotent_appends_replay_or_conflict(place: Place) {
    let store = place.open().await;
    let idem = |hash: &str| {
        Some(Idempotency {
            owner: "o".into(),
            key: "k".into(),
            body_hash: hash.into(),
        })
    };
    let first = store.append(vec![event("/a")], idem("h1")).await.unwrap();
    let again = store.append(vec![event("/a")], idem("h1")).await.unwrap();
    assert!(again.replayed && again.last_seq == first.last_seq);
    assert_eq!(
        store.append(vec![event("/a")], idem("h2")).await.err(),
        Some(StoreError::IdempotencyConflict)
    );
    assert_eq!(
        store.head().await.unwrap(),
        first.last_seq,
        "nothing new was appended"
    );
}

/// One Idempotency-Key raced through two writers (on PostgreSQL, two nodes) appends
/// once: every other publish is answered from the first.
async fn an_idempotency_key_raced_through_two_writers_appends_once(place: Place) {
    let first = place.open().await;
    let second = place.another(&first).await;
    for round in 0..20 {
        let idem = || {
            Some(Idempotency {
                owner: "o".into(),
                key: format!("k{round}"),
                body_hash: "h".into(),
            })
        };
        let before = first.head().await.unwrap();
        let (a, b) = tokio::join!(
            first.append(vec![event("/race")], idem()),
            second.append(vec![event("/race")], idem()),
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(
            a.last_seq, b.last_seq,
            "round {round}: one publish, one answer"
        );
        assert!(a.replayed != b.replayed, "round {round}: {a:?} {b:?}");
        let appended = first
            .read_matching(&under("/race"), before, 10)
            .await
            .unwrap()
            .events;
        assert_eq!(appended.len(), 1, "round {round}: appended once");
    }
}

/// A channel on `/` kept within a key's prefixes keeps them across a restart, and
/// covers nothing else.
async fn a_channel_keeps_what_it_covers(place: Place) {
    let store = place.open().await;
    let within = Coverage::union(["/c", "/a"]);
    let mut kept = channel("o", "kept", "/");
    kept.within = Some(Box::new(within.clone()));
    store.create_channel(kept, 10).await.unwrap();
    store
        .create_channel(channel("o", "all", "/"), 10)
        .await
        .unwrap();
    store.close().await;
    let store = place.open().await;
    let found = store.find_channel("o", "kept").await.unwrap().unwrap();
    assert_eq!(found.spec.within.as_deref(), Some(&within));
    assert_eq!(found.spec.coverage().paths(), ["/a", "/c"]);
    let all = store.find_channel("o", "all").await.unwrap().unwrap();
    assert!(all.spec.within.is_none());
    assert_eq!(all.spec.coverage().paths(), ["/"]);
}

/// A renewal (docs/api.md §8.6) moves a live channel's expiration, durably and for
/// every node, and nothing else; the expiry sweep goes by the new expiration; the feed
/// carries it after the channel's creation. A watcher, an expired channel and a removed
/// one are not renewed.
async fn a_renewal_moves_the_expiration_and_nothing_else(place: Place) {
    let store = place.open().await;
    let mut feed = store.take_feed().expect("the feed");
    let now = now_ms();
    let mut spec = channel("o", "c", "/r");
    spec.expiration_ms = Some(now + 60_000);
    let created = store.create_channel(spec, 10).await.unwrap();
    let pk = created.channel.pk;
    let later = now + 3_600_000;
    let renewed = store.renew_channel(pk, later).await.unwrap();
    assert_eq!(renewed.expiration_ms, later);
    assert!(renewed.feed_no > created.feed_no);
    match &place {
        Place::Sqlite(_) => assert_eq!(renewed.node, None, "one process, no node"),
        Place::Postgres { .. } => assert!(renewed.node.is_some(), "its creator delivers it"),
    }
    let mut renewals = Vec::new();
    while let Ok(item) = feed.try_recv() {
        if let Committed::ChannelRenewed { pk, expiration_ms } = item.change {
            renewals.push((item.no, pk, expiration_ms));
        }
    }
    assert_eq!(renewals, [(renewed.feed_no, pk, later)]);

    // Every node reads it at once; the old expiration passing removes nothing.
    let other = place.another(&store).await;
    let seen = other.find_channel("o", "c").await.unwrap().unwrap();
    assert_eq!(seen.spec.expiration_ms, Some(later));
    let swept = Removal::ExpiredAt {
        now_ms: now + 120_000,
        notice_ms: 0,
    };
    assert!(other.remove_channels(swept).await.unwrap().pks.is_empty());

    // Durable, and only the expiration moved.
    store.close().await;
    let store = place.open().await;
    let found = store.find_channel("o", "c").await.unwrap().unwrap();
    assert_eq!(found.spec.expiration_ms, Some(later));
    assert_eq!(
        (found.pk, &*found.spec.resource_id, found.start_seq),
        (pk, "rid", created.channel.start_seq)
    );
    let reread = store.reread_expiration(pk).await.unwrap();
    assert_eq!(reread.expiration_ms, later);

    // What is not a live channel is not renewed.
    let watcher_pk = stored(&store, watcher("/w")).await;
    let mut expired = channel("o", "expired", "/r");
    expired.expiration_ms = Some(now - 1);
    let expired_pk = stored(&store, expired).await;
    for refused in [watcher_pk, expired_pk, pk + 1000] {
        assert_eq!(
            store.renew_channel(refused, later).await,
            Err(StoreError::NotFound),
            "channel {refused}"
        );
    }
    assert_eq!(
        store.reread_expiration(watcher_pk).await,
        Err(StoreError::NotFound)
    );

    // The new expiration is the one the sweep goes by; then it is gone.
    let swept = store
        .remove_channels(Removal::ExpiredAt {
            now_ms: later,
            notice_ms: 0,
        })
        .await
        .unwrap();
    assert_eq!(swept.pks, [pk, expired_pk]);
    assert_eq!(
        store.renew_channel(pk, later + 1).await,
        Err(StoreError::NotFound)
    );
    assert_eq!(store.reread_expiration(pk).await, Err(StoreError::NotFound));
}

/// The tests of this file, once per backend.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Place::sqlite()).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(place) = super::Place::postgres().await {
                        super::$name(place).await
                    }
                }
            )*
        }
    };
}

conformance!(
    log_reads_and_survives_a_restart,
    concurrent_appends_share_commits,
    concurrent_appends_become_visible_in_order,
    channels_are_unique_counted_and_leave_a_record,
    watcher_rules_and_quotas_hold_across_writers,
    delivery_bookkeeping_is_kept,
    pruning_keeps_what_channels_owe_and_clears_the_rest,
    pruning_keeps_pending_delivery_log_entries,
    pruning_takes_a_log_all_due,
    idempotent_appends_replay_or_conflict,
    an_idempotency_key_raced_through_two_writers_appends_once,
    a_channel_keeps_what_it_covers,
    a_renewal_moves_the_expiration_and_nothing_else,
);

/// Several processes starting at once on a new database (a cluster's first start):
/// one migrates while the others wait, and every one of them opens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_opened_at_once_on_a_new_database_all_open() {
    for _ in 0..5 {
        let Some(place) = Place::postgres().await else {
            return;
        };
        let Place::Postgres { url, .. } = &place else {
            unreachable!()
        };
        let nodes: Vec<String> = (0..4).map(|i| format!("at-once-{i}")).collect();
        let opened =
            futures_util::future::join_all(nodes.iter().map(|node| PgStore::open(url, node))).await;
        for (i, store) in opened.into_iter().enumerate() {
            if let Err(e) = store {
                panic!("store {i} of 4 opened at once failed: {e}");
            }
        }
    }
}
