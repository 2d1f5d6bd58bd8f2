//! authed: the fan-out's headline point (`fanout_channels` channels on one collection,
//! the same events in the same batches) with endpoint authentication on every channel:
//! a fixed `Authorization: Bearer …` header (docs/api.md §17), which the receiver checks
//! on every notification. Delivered notifications per second and the gateway's CPU per
//! notification, each against the unauthenticated `fanout` headline of the same run.

use serde::{Deserialize, Serialize};

use super::fanout::{self, Point};
use super::{Ctx, HeaderAuth};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Authed {
    /// The header every channel sends with each notification (its value is not kept).
    pub header: String,
    /// Bytes of that header's value.
    pub value_bytes: usize,
    /// The fan-out with the header on every channel.
    pub point: Point,
    /// The unauthenticated fan-out at the same channel count and events, same run
    /// (`None` without a `fanout` run).
    pub unauthenticated_per_second: Option<f64>,
    pub unauthenticated_cpu_us_per_notification: Option<f64>,
    /// The gateway's CPU per notification with the header ÷ without (target ≤ 1.05).
    pub cpu_ratio: Option<f64>,
    /// Notifications per second with the header ÷ without.
    pub throughput_ratio: Option<f64>,
}

/// `unauthenticated`: the `fanout` headline point of the same run.
pub async fn run(
    ctx: &Ctx,
    raw_per_second: Option<f64>,
    unauthenticated: Option<&Point>,
) -> anyhow::Result<Authed> {
    let channels = ctx.sizes.fanout_channels;
    let events = fanout::events(&ctx.sizes, channels);
    let auth = HeaderAuth::bearer();
    let variant = fanout::Variant {
        auth: Some(&auth),
        ..Default::default()
    };
    let (point, _) =
        fanout::point(ctx, "authed", channels, events, raw_per_second, &variant).await?;
    // Only a point of the same size compares.
    let base = unauthenticated.filter(|u| u.channels == channels && u.events == events);
    let over = |with: f64, without: f64| (without > 0.0).then(|| with / without);
    Ok(Authed {
        header: auth.name.clone(),
        value_bytes: auth.value.len(),
        unauthenticated_per_second: base.map(|u| u.delivered_per_second),
        unauthenticated_cpu_us_per_notification: base.map(|u| u.gateway_cpu_us_per_notification),
        cpu_ratio: base.and_then(|u| {
            over(
                point.gateway_cpu_us_per_notification,
                u.gateway_cpu_us_per_notification,
            )
        }),
        throughput_ratio: base
            .and_then(|u| over(point.delivered_per_second, u.delivered_per_second)),
        point,
    })
}
