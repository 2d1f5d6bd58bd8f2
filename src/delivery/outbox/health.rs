//! The health of a channel's endpoint (docs/api.md §5): since when it fails without a
//! success, its last failure and next retry as the channel shows them, and the channel
//! disabled once the failures have lasted the disable window, until it is enabled.

use std::sync::Arc;

use serde_json::json;

use super::{Outbox, OutboxState};
use crate::delivery::DeliveryContext;
use crate::model::{now_ms, rfc3339_ms, Failure, NewEvent};
use crate::operational::{channel_event, failure_reason, ChannelChange, Health};
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
            let reason = json!("enabled through the API");
            let event = self.change(ChannelChange::Enabled, &st, reason);
            ctx.store.record_health(self.pk, None, false, event);
        }
        self.ensure_running(&mut st, ctx);
    }

    /// A success: the endpoint is healthy again.
    pub(super) fn healthy(&self, ctx: &Arc<DeliveryContext>) {
        let mut st = self.state.lock().unwrap();
        let Some(failing) = &mut st.failing else {
            return;
        };
        let recovered_from = failing.last_error.take();
        failing.next_retry_ms = None;
        if let Some(since) = failing.since_ms.take() {
            let reason = json!({
                "failingSince": rfc3339_ms(since),
                "lastError": recovered_from.as_ref().map(failure_reason),
            });
            let event = self.change(ChannelChange::Recovered, &st, reason);
            ctx.store.record_health(self.pk, None, false, event);
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
            let event = self.change(ChannelChange::Failing, &st, failure_reason(failure));
            ctx.store.record_health(self.pk, Some(now), false, event);
        }
        if now - since >= ctx.disable_after.as_millis() as i64 {
            let channel = st
                .spec
                .as_ref()
                .map_or_else(|| self.pk.to_string(), |s| s.id.to_string());
            tracing::warn!(%channel, "endpoint failing without success for the disable window; channel disabled");
            if let Some(failing) = &mut st.failing {
                failing.next_retry_ms = None;
            }
            st.disabled = true;
            let reason = json!({
                "failingSince": rfc3339_ms(since),
                "disableAfterSeconds": ctx.disable_after.as_secs(),
                "lastError": failure_reason(failure),
            });
            let event = self.change(ChannelChange::Disabled, &st, reason);
            ctx.store.record_health(self.pk, Some(since), true, event);
        }
    }

    /// The operational event of `change`, with the channel's health as it is now.
    /// Always made: a channel that is delivering, failing or disabled holds its spec
    /// (only a healthy idle one puts it away, `idle.rs`).
    fn change(
        &self,
        change: ChannelChange,
        st: &OutboxState,
        reason: serde_json::Value,
    ) -> Option<NewEvent> {
        let failing = st.failing.as_deref();
        let health = Health {
            enabled: !st.disabled,
            failing_since_ms: failing.and_then(|f| f.since_ms),
            last_error: failing.and_then(|f| f.last_error.as_ref()),
        };
        let spec = st.spec.as_deref()?;
        Some(channel_event(change, spec, Some(health), reason, now_ms()))
    }
}
