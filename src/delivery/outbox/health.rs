//! The health of a channel's endpoint (docs/api.md §5): since when it fails without a
//! success, its last failure and next retry as the channel shows them, and the channel
//! disabled once the failures have lasted the disable window, until it is enabled.

use std::sync::Arc;

use super::Outbox;
use crate::delivery::DeliveryContext;
use crate::model::{now_ms, Failure};
use crate::telemetry::LogGate;

/// A failing endpoint: since when, the last failure, the next retry, and the rate limit
/// of the channel's failure log lines. Kept after a success (cleared), so a flapping
/// endpoint's log lines stay limited.
#[derive(Default)]
pub(super) struct Failing {
    pub(super) since_ms: Option<i64>,
    pub(super) last_error: Option<Failure>,
    pub(super) next_retry_ms: Option<i64>,
    pub(super) log_gate: LogGate,
}

impl Outbox {
    /// Re-enables a disabled channel: delivery resumes where it stopped.
    pub fn enable(self: &Arc<Self>, ctx: &Arc<DeliveryContext>) {
        let mut st = self.state.lock().unwrap();
        if st.disabled {
            st.disabled = false;
            if let Some(failing) = &mut st.failing {
                failing.since_ms = None;
            }
            ctx.store.record_health(self.pk, None, false);
        }
        self.ensure_running(&mut st, ctx);
    }

    /// A success: the endpoint is healthy again.
    pub(super) fn healthy(&self, ctx: &Arc<DeliveryContext>) {
        let mut st = self.state.lock().unwrap();
        let Some(failing) = &mut st.failing else {
            return;
        };
        failing.last_error = None;
        failing.next_retry_ms = None;
        if failing.since_ms.take().is_some() {
            ctx.store.record_health(self.pk, None, false);
        }
    }

    /// A failure. Disables the channel once its endpoint has failed without a single
    /// success for the disable window (docs/api.md §5).
    pub(super) fn unhealthy(
        &self,
        failure: &Failure,
        next_retry_ms: Option<i64>,
        ctx: &Arc<DeliveryContext>,
    ) {
        let now = now_ms();
        let mut st = self.state.lock().unwrap();
        let failing = st.failing.get_or_insert_with(Box::default);
        failing.last_error = Some(failure.clone());
        failing.next_retry_ms = next_retry_ms;
        let since = *failing.since_ms.get_or_insert(now);
        if since == now {
            ctx.store.record_health(self.pk, Some(now), false);
        }
        if now - since >= ctx.disable_after.as_millis() as i64 {
            failing.next_retry_ms = None;
            st.disabled = true;
            ctx.store.record_health(self.pk, Some(since), true);
            tracing::warn!(channel = %st.spec.id, "endpoint failing without success for the disable window; channel disabled");
        }
    }
}
