//! One notification's delivery as steps: an attempt goes out (`destination.rs`), its
//! answer is decided on here ([`Decision`]), and the outbox records it
//! (`outbox/record.rs`).

use std::time::Duration;

use super::destination::{Attempt, Verdict};
use super::render::Notification;
use super::retry::RetryPolicy;
use crate::model::{now_ms, AttemptRecord, Failure, Outcome, RECENT_ATTEMPTS};

/// What one attempt decides for its notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Delivered,
    /// `410 Gone`: the receiver unsubscribes; the channel is stopped.
    Gone,
    /// Failed for good (a permanent status, or the retry budget ran out): the channel
    /// moves on to its next notification.
    Failed(Failure),
    /// Try again after `delay`.
    Retry {
        delay: Duration,
        failure: Failure,
    },
}

/// Where one notification's delivery stands, from its first attempt on.
pub struct Delivery {
    pub notification: Notification,
    pub attempts: u32,
    /// When the first attempt started, ms since the epoch: the retry budget runs from
    /// here (docs/api.md §5).
    pub first_attempt_ms: Option<i64>,
    /// The last few attempts, oldest first.
    pub recent: Vec<AttemptRecord>,
}

impl Delivery {
    pub fn new(notification: Notification) -> Delivery {
        Delivery {
            notification,
            attempts: 0,
            first_attempt_ms: None,
            recent: Vec::new(),
        }
    }

    /// Carries on where a delivery stood before a restart (its stored entry awaiting
    /// a retry): the attempt count, the recent attempts, and the budget's start.
    pub fn resumed(notification: Notification, before: &Outcome) -> Delivery {
        Delivery {
            notification,
            attempts: before.attempts,
            first_attempt_ms: before.first_attempt_ms,
            recent: before.recent.clone(),
        }
    }

    /// Counts an attempt that the gateway's shutdown cut short before an answer came:
    /// the receiver may have got it. Its notification stays owed.
    pub fn interrupted(&mut self, started_ms: i64) -> Failure {
        let failure = Failure {
            reason: crate::model::FailureReason::Interrupted,
            detail: "the gateway shut down before the receiver answered".into(),
            status: None,
        };
        self.count(AttemptRecord {
            at_ms: started_ms,
            duration_ms: (now_ms() - started_ms).max(0) as u64,
            status: None,
            reason: Some(failure.reason),
            detail: Some(failure.detail.clone()),
            response: None,
            broker_status: None,
        });
        failure
    }

    /// One more attempt, kept among the recent ones.
    fn count(&mut self, attempt: AttemptRecord) {
        self.attempts += 1;
        self.first_attempt_ms.get_or_insert(attempt.at_ms);
        if self.recent.len() == RECENT_ATTEMPTS {
            self.recent.remove(0);
        }
        self.recent.push(attempt);
    }

    /// Takes in an attempt and decides what follows. `delay` is the backoff the
    /// retry policy chose for this attempt (with its jitter), used only on a retry.
    pub fn decide(&mut self, attempt: &Attempt, retry: &RetryPolicy) -> Decision {
        self.count(attempt.record());
        let first = self.first_attempt_ms.unwrap_or(attempt.started_ms);
        let delay = match &attempt.answer.verdict {
            Verdict::Retry { retry_after } => retry.delay(self.attempts, *retry_after),
            _ => Duration::ZERO,
        };
        let retried_for = Duration::from_millis((now_ms() - first).max(0) as u64);
        decide(attempt, delay, retried_for, retry.budget, self.attempts)
    }
}

impl Delivery {
    /// How much of the retry budget is left; `None` before the first attempt.
    pub fn budget_left(&self, budget: Duration) -> Option<Duration> {
        let first = self.first_attempt_ms?;
        let spent = Duration::from_millis((now_ms() - first).max(0) as u64);
        Some(budget.saturating_sub(spent))
    }

    /// Fails the notification for good because the budget ran out while its next
    /// attempt waited for the receiving host (backed off, or told to wait).
    pub fn out_of_budget(&self, budget: Duration, last: Option<Failure>) -> Decision {
        let last = last.unwrap_or_else(|| Failure {
            reason: crate::model::FailureReason::Timeout,
            detail: "no answer".into(),
            status: None,
        });
        Decision::Failed(Failure {
            detail: format!(
                "retry budget of {} exhausted after {} attempts while the receiving host was held back; last: {}",
                humanize(budget),
                self.attempts,
                last.detail
            ),
            ..last
        })
    }
}

/// The pure part of [`Delivery::decide`]: what an attempt's verdict means once the
/// budget is counted. `retried_for` is the time since the notification's first attempt.
pub fn decide(
    attempt: &Attempt,
    delay: Duration,
    retried_for: Duration,
    budget: Duration,
    attempts: u32,
) -> Decision {
    let answer = &attempt.answer;
    let failure = || {
        answer.failure.clone().unwrap_or_else(|| Failure {
            reason: crate::model::FailureReason::HttpStatus,
            detail: format!("the receiver answered {}", answer.status.unwrap_or(0)),
            status: answer.status,
        })
    };
    match &answer.verdict {
        Verdict::Delivered => Decision::Delivered,
        Verdict::Gone => Decision::Gone,
        Verdict::Failed => Decision::Failed(failure()),
        Verdict::Retry { .. } if retried_for + delay > budget => {
            let last = failure();
            Decision::Failed(Failure {
                detail: format!(
                    "retry budget of {} exhausted after {attempts} attempts; last: {}",
                    humanize(budget),
                    last.detail
                ),
                ..last
            })
        }
        Verdict::Retry { .. } => Decision::Retry {
            delay,
            failure: failure(),
        },
    }
}

/// `90s`, `15m`, `24h`: a duration as the command line takes it.
pub fn humanize(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => format!("{}ms", d.as_millis()),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::destination::Answer;
    use crate::model::FailureReason;

    fn attempt(verdict: Verdict, status: Option<u16>) -> Attempt {
        let answer = Answer {
            verdict,
            status,
            failure: status.filter(|s| !(200..300).contains(s)).map(|s| Failure {
                reason: FailureReason::HttpStatus,
                detail: format!("the receiver answered {s}"),
                status: Some(s),
            }),
            excerpt: None,
            acknowledgement: None,
        };
        Attempt {
            answer,
            started_ms: 0,
            duration: Duration::from_millis(3),
        }
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn verdicts_become_decisions_within_the_budget() {
        let retry = Verdict::Retry { retry_after: None };
        let s = Duration::from_secs;
        assert_eq!(
            decide(&attempt(Verdict::Delivered, Some(204)), s(0), s(0), HOUR, 1),
            Decision::Delivered
        );
        assert_eq!(
            decide(&attempt(Verdict::Gone, Some(410)), s(0), s(0), HOUR, 1),
            Decision::Gone
        );
        let Decision::Failed(why) =
            decide(&attempt(Verdict::Failed, Some(404)), s(0), s(0), HOUR, 1)
        else {
            panic!("a 404 fails for good")
        };
        assert_eq!(
            (why.reason, why.status),
            (FailureReason::HttpStatus, Some(404))
        );
        let Decision::Retry { delay, failure } =
            decide(&attempt(retry.clone(), Some(503)), s(5), s(60), HOUR, 2)
        else {
            panic!("a 503 inside the budget is retried")
        };
        assert_eq!((delay, failure.status), (s(5), Some(503)));
        let Decision::Failed(why) = decide(&attempt(retry, Some(503)), s(5), s(3598), HOUR, 9)
        else {
            panic!("a retry past the budget fails for good")
        };
        assert!(
            why.detail
                .contains("budget of 1h exhausted after 9 attempts")
                && why.detail.contains("503"),
            "{}",
            why.detail
        );
    }

    #[test]
    fn a_delivery_keeps_its_first_attempt_time_and_the_last_attempts() {
        let policy = RetryPolicy {
            schedule: vec![Duration::from_millis(1)],
            budget: HOUR,
        };
        let mut delivery = Delivery::new(Notification::sync(0));
        for n in 0..7 {
            let mut a = attempt(Verdict::Retry { retry_after: None }, Some(500 + n));
            a.started_ms = now_ms() + n as i64;
            assert!(matches!(
                delivery.decide(&a, &policy),
                Decision::Retry { .. }
            ));
        }
        assert_eq!(delivery.attempts, 7);
        assert_eq!(delivery.recent.len(), RECENT_ATTEMPTS);
        assert_eq!(delivery.recent.last().unwrap().status, Some(506));
        assert!(delivery.first_attempt_ms.unwrap() <= delivery.recent[0].at_ms);
    }

    #[test]
    fn durations_read_as_the_command_line_writes_them() {
        assert_eq!(humanize(Duration::from_secs(86_400)), "1d");
        assert_eq!(humanize(Duration::from_secs(7_200)), "2h");
        assert_eq!(humanize(Duration::from_secs(90)), "90s");
        assert_eq!(humanize(Duration::from_millis(300)), "300ms");
    }
}
