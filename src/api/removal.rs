//! When a removal (stop, a watcher deleted) is in force: once no attempt on the channel
//! can start on any node (docs/api.md §3, §13). Here, once the router has applied it;
//! on another node of a cluster, once that node has stopped the channel, or its lease
//! lapsed so it can start nothing.

use std::time::{Duration, Instant};

use axum::http::StatusCode;

use super::error::ApiError;
use super::AppState;
use crate::store::Removed;

/// How often a removal waiting for another node looks again.
const RECHECK: Duration = Duration::from_millis(5);

/// Waits until no attempt on the removed channels can start anywhere.
pub async fn in_force(app: &AppState, removed: &Removed) -> Result<(), ApiError> {
    app.dispatcher.wait_routed(removed.feed_no).await;
    let Some(membership) = app.membership.as_deref() else {
        return Ok(());
    };
    // A node that is alive settles within milliseconds; one that is not, within its
    // lease. Past that, something is wrong with the database: say so, do not pretend.
    let deadline = Instant::now() + app.config.lease_ttl + Duration::from_secs(5);
    for &pk in &removed.elsewhere {
        while !membership.removal_settled(pk).await? {
            if Instant::now() >= deadline {
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "backendError",
                    "the channel was removed, but the node delivering it has not confirmed it stopped; retry to see it settled",
                ));
            }
            tokio::time::sleep(RECHECK).await;
        }
    }
    Ok(())
}
