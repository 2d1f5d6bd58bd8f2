//! Reading the specs of idle channels that wake up (`idle.rs`), many in one read. One
//! event on a resource that 100k quiet channels watch wakes them all at once; read one
//! by one, each paid a statement and two hops to a reader thread and back, which
//! was a sixth of everything one notification of that fan-out cost. Workers that
//! wake while a read is running queue their keys, and the next read takes them all.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::model::StoredChannel;
use crate::store::{Store, StoreError};

/// Most keys one read asks for.
const MOST_PER_READ: usize = 1024;

type Answer = Result<Option<StoredChannel>, StoreError>;

#[derive(Default)]
pub struct SpecLoader {
    waiting: Mutex<Waiting>,
}

#[derive(Default)]
struct Waiting {
    keys: Vec<(i64, oneshot::Sender<Answer>)>,
    /// Whether a reading task runs (it takes what is waiting until nothing is).
    reading: bool,
}

impl SpecLoader {
    /// The stored channel `pk`, `None` once removed.
    pub async fn load(self: &Arc<Self>, store: &Arc<dyn Store>, pk: i64) -> Answer {
        let (answer, answered) = oneshot::channel();
        let start = {
            let mut waiting = self.waiting.lock().unwrap();
            waiting.keys.push((pk, answer));
            !std::mem::replace(&mut waiting.reading, true)
        };
        if start {
            tokio::spawn(self.clone().read(store.clone()));
        }
        answered
            .await
            .unwrap_or_else(|_| Err(StoreError::Backend("the channel read was dropped".into())))
    }

    async fn read(self: Arc<Self>, store: Arc<dyn Store>) {
        loop {
            let batch: Vec<(i64, oneshot::Sender<Answer>)> = {
                let mut waiting = self.waiting.lock().unwrap();
                if waiting.keys.is_empty() {
                    waiting.reading = false;
                    return;
                }
                let take = waiting.keys.len().min(MOST_PER_READ);
                waiting.keys.drain(..take).collect()
            };
            let keys: Vec<i64> = batch.iter().map(|(pk, _)| *pk).collect();
            metrics::counter!("watchwire_channel_specs_read_total", "what" => "reads").increment(1);
            metrics::counter!("watchwire_channel_specs_read_total", "what" => "specs")
                .increment(keys.len() as u64);
            match store.load_channels_by_pk(&keys).await {
                Ok(found) => {
                    let by_pk: HashMap<i64, StoredChannel> =
                        found.into_iter().map(|c| (c.pk, c)).collect();
                    for (pk, answer) in batch {
                        // A copy: a key may be asked twice in one read (a renewal's
                        // re-read); a channel's spec is shared, not copied.
                        let _ = answer.send(Ok(by_pk.get(&pk).cloned()));
                    }
                }
                Err(e) => {
                    for (_, answer) in batch {
                        let _ = answer.send(Err(StoreError::Backend(e.to_string())));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance::{channel, Place};

    /// Many workers waking at once each get their own channel (or `None` for one
    /// removed), whether their keys went in one read or several.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_waking_worker_gets_its_own_channel() {
        let place = Place::sqlite();
        let store = place.open().await;
        let mut pks = Vec::new();
        for i in 0..300 {
            let created = store
                .create_channel(channel("o", &format!("c{i}"), "/r"), 1_000)
                .await
                .unwrap();
            pks.push((created.channel.pk, Some(format!("c{i}"))));
        }
        pks.push((i64::MAX, None)); // never was
        pks.push((pks[7].0, Some("c7".into()))); // asked twice
        let loader = Arc::new(SpecLoader::default());
        let loads = pks.iter().map(|(pk, _)| {
            let (loader, store, pk) = (loader.clone(), store.clone(), *pk);
            tokio::spawn(async move { loader.load(&store, pk).await })
        });
        let loads: Vec<_> = loads.collect();
        for (load, (pk, id)) in loads.into_iter().zip(&pks) {
            let got = load.await.unwrap().unwrap();
            assert_eq!(got.as_ref().map(|c| c.pk), id.as_ref().map(|_| *pk));
            assert_eq!(got.map(|c| c.spec.id.to_string()), *id);
        }
        // Nothing is left waiting, and a later load starts a read again.
        assert!(loader.waiting.lock().unwrap().keys.is_empty());
        let again = loader.load(&store, pks[0].0).await.unwrap().unwrap();
        assert_eq!(again.spec.id.as_ref(), "c0");
    }
}
