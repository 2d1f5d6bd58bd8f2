//! Stopping one channel's delivery: a flag and a wake-up, inline in the channel.
//! A `CancellationToken` would do, but it is a separate allocation of about 112 bytes
//! per channel, idle or not, and a million idle channels must stay small
//! (BENCHMARKS.md, memory per idle channel).

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

#[derive(Debug, Default)]
pub struct Cancel {
    cancelled: AtomicBool,
    wake: Notify,
}

impl Cancel {
    /// Cancels for good and wakes everything waiting in [`Cancel::cancelled`].
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        self.wake.notify_waiters();
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    /// Completes once cancelled (at once if it already is).
    pub async fn cancelled(&self) {
        self.cancelled_or(|| false).await
    }

    /// Completes once cancelled or once `also` holds, which is looked at again after
    /// every [`Cancel::nudge`].
    pub async fn cancelled_or(&self, also: impl Fn() -> bool) {
        loop {
            let woken = self.wake.notified();
            tokio::pin!(woken);
            // Registered before the flags are read: a cancel or nudge in between still
            // wakes it.
            woken.as_mut().enable();
            if self.is_cancelled() || also() {
                return;
            }
            woken.await;
        }
    }

    /// Wakes every waiter to look at its condition again, without cancelling.
    pub fn nudge(&self) {
        self.wake.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn waiters_wake_on_cancel_and_later_ones_return_at_once() {
        let cancel = Arc::new(Cancel::default());
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let cancel = cancel.clone();
                tokio::spawn(async move { cancel.cancelled().await })
            })
            .collect();
        tokio::task::yield_now().await;
        assert!(!cancel.is_cancelled());
        cancel.cancel();
        for waiter in waiters {
            tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
                .await
                .expect("woken")
                .unwrap();
        }
        cancel.cancelled().await;
        assert!(cancel.is_cancelled());
    }

    #[tokio::test]
    async fn a_nudge_wakes_a_waiter_whose_condition_now_holds() {
        let cancel = Arc::new(Cancel::default());
        let flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let waiter = {
            let (cancel, flag) = (cancel.clone(), flag.clone());
            tokio::spawn(async move { cancel.cancelled_or(|| flag.load(Ordering::SeqCst)).await })
        };
        tokio::task::yield_now().await;
        cancel.nudge();
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "a nudge alone does not end the wait");
        flag.store(true, Ordering::SeqCst);
        cancel.nudge();
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .unwrap();
        assert!(!cancel.is_cancelled());
    }
}
