//! A broker's connection, shared by every channel that delivers to it: made when the
//! first attempt needs it (so startup never waits for, or fails because of, a broker),
//! and made again after a failure, no sooner than a backoff that grows with each
//! failure in a row. While the backoff runs, attempts fail at once as
//! `brokerUnavailable` instead of each waiting for a connection that will not come.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::model::{Failure, FailureReason};

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MOST_BACKOFF: Duration = Duration::from_secs(10);

/// One broker's connection `C` (a cheap handle, cloned for each attempt).
pub struct Link<C> {
    /// How the broker is named in details (never with credentials).
    name: String,
    connect_timeout: Duration,
    state: tokio::sync::Mutex<State<C>>,
}

struct State<C> {
    client: Option<C>,
    /// Failures in a row, for the backoff.
    failures: u32,
    /// No new connection before this.
    not_before: Option<Instant>,
    /// Why the last connection failed.
    last_error: String,
}

impl<C: Clone> Link<C> {
    pub fn new(name: String, connect_timeout: Duration) -> Link<C> {
        Link {
            name,
            connect_timeout,
            state: tokio::sync::Mutex::new(State {
                client: None,
                failures: 0,
                not_before: None,
                last_error: String::new(),
            }),
        }
    }

    /// The connection, made now if there is none and the backoff allows. Concurrent
    /// callers wait for one connection rather than each making their own.
    pub async fn client<F, Fut>(&self, connect: F) -> Result<C, Failure>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<C, String>>,
    {
        let mut state = self.state.lock().await;
        if let Some(client) = &state.client {
            return Ok(client.clone());
        }
        if let Some(not_before) = state.not_before {
            let now = Instant::now();
            if now < not_before {
                return Err(self.unavailable(format!(
                    "{}; trying again in {} ms",
                    state.last_error,
                    (not_before - now).as_millis()
                )));
            }
        }
        let made = match tokio::time::timeout(self.connect_timeout, connect()).await {
            Ok(made) => made,
            Err(_) => Err(format!(
                "no connection within {} ms",
                self.connect_timeout.as_millis()
            )),
        };
        match made {
            Ok(client) => {
                tracing::info!(broker = %self.name, "connected to the broker");
                state.failures = 0;
                state.not_before = None;
                state.client = Some(client.clone());
                Ok(client)
            }
            Err(error) => {
                state.failures = state.failures.saturating_add(1);
                state.not_before = Some(Instant::now() + backoff(state.failures));
                state.last_error = error.clone();
                Err(self.unavailable(error))
            }
        }
    }

    /// Gives the connection up: the next attempt makes a new one. `is_current` tells the
    /// connection that failed from one made since by another attempt, which stays.
    pub async fn broken(&self, is_current: impl FnOnce(&C) -> bool, why: &str) {
        let mut state = self.state.lock().await;
        if state.client.as_ref().is_some_and(is_current) {
            tracing::warn!(broker = %self.name, error = why, "lost the connection to the broker");
            state.client = None;
            state.failures = state.failures.saturating_add(1);
            state.not_before = Some(Instant::now() + backoff(state.failures).min(FIRST_BACKOFF));
            state.last_error = why.to_string();
        }
    }

    /// A failure of this broker's connection.
    pub fn unavailable(&self, why: String) -> Failure {
        Failure {
            reason: FailureReason::BrokerUnavailable,
            detail: format!("no connection to {}: {why}", self.name),
            status: None,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

/// 100 ms, doubling with each failure in a row, at most 10 s.
fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    (FIRST_BACKOFF * 2u32.pow(doublings)).min(MOST_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn the_backoff_doubles_up_to_ten_seconds() {
        assert_eq!(backoff(1), Duration::from_millis(100));
        assert_eq!(backoff(2), Duration::from_millis(200));
        assert_eq!(backoff(5), Duration::from_millis(1600));
        assert_eq!(backoff(40), MOST_BACKOFF);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_connection_is_not_tried_again_until_the_backoff_ends() {
        let link: Link<u32> = Link::new("redis://h:6379/0".into(), Duration::from_secs(1));
        let tries = AtomicU32::new(0);
        let connect = || async {
            tries.fetch_add(1, Ordering::SeqCst);
            Err::<u32, _>("connection refused".to_string())
        };
        let first = link.client(connect).await.unwrap_err();
        assert_eq!(first.reason, FailureReason::BrokerUnavailable);
        assert!(first
            .detail
            .contains("redis://h:6379/0: connection refused"));
        let second = link.client(connect).await.unwrap_err();
        assert!(
            second.detail.contains("trying again in"),
            "{}",
            second.detail
        );
        assert_eq!(
            tries.load(Ordering::SeqCst),
            1,
            "the backoff held the second"
        );

        let link: Link<u32> = Link::new("b".into(), Duration::from_secs(1));
        assert_eq!(link.client(|| async { Ok(7) }).await.unwrap(), 7);
        assert_eq!(
            link.client(|| async { Ok(8) }).await.unwrap(),
            7,
            "kept while it works"
        );
        link.broken(|c| *c == 6, "not the current one").await;
        assert_eq!(link.client(|| async { Ok(8) }).await.unwrap(), 7);
        link.broken(|c| *c == 7, "reset").await;
        // The backoff after losing a working connection is the first step.
        tokio::time::advance(FIRST_BACKOFF).await;
        assert_eq!(link.client(|| async { Ok(8) }).await.unwrap(), 8);
    }
}
