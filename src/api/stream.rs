//! `GET /v1/watch` (docs/api.md §7): a resumable Server-Sent Events stream of the log.
//!
//! The stream subscribes to live events *before* reading the store, catches up from
//! the store after `since` / `Last-Event-ID`, then follows the live feed, skipping
//! what it already sent: no gap, no duplicate. Events wait for the consumer in a
//! bounded buffer that absorbs bursts; when the buffer stays full for the stall
//! timeout, or the consumer fell too far behind the live feed, the stream ends with
//! `event: cutoff` (its id is the last cursor sent, so a client resumes from there).
//! Only that stream's own task ever waits: nothing else slows down.

use crate::filter::{self, Filter};
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, Uri};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use tokio::sync::{broadcast, mpsc};

use super::auth::Subscriber;
use super::error::ApiError;
use super::reading::{authorize_reader, event_json, since_cursor, ReadRequest};
use super::AppState;
use crate::delivery::EventBatch;
use crate::model::{cursor, Coverage, Seq, SharedEvent};

/// Events read from the store per step while catching up.
const CATCH_UP_PAGE: usize = 1000;

pub async fn stream(
    State(app): State<AppState>,
    Subscriber(caller): Subscriber,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let ReadRequest { query, coverage } = authorize_reader(
        &app,
        &caller,
        &uri,
        &["resource", "since", "checkpoints", "filter"],
        "resource",
    )?;
    let filter = query
        .get("filter")
        .map(Filter::from_text)
        .transpose()
        .map_err(ApiError::invalid_filter)?;
    // Browsers' EventSource resends the last id it saw; it wins over `since`.
    let last_event_id = headers
        .get("last-event-id")
        .map(|v| {
            v.to_str().map_err(|_| {
                ApiError::invalid("Last-Event-ID is not a cursor this gateway gave out")
                    .with_reason("invalidCursor")
            })
        })
        .transpose()?
        .filter(|v| !v.is_empty());
    let since = match (last_event_id, query.get("since")) {
        (Some(id), _) => Some(since_cursor(&app, "Last-Event-ID", id).await?),
        (None, Some(since)) => Some(since_cursor(&app, "since", since).await?),
        (None, None) => None,
    };
    let checkpoints = query.flag("checkpoints")?;

    let live = app.dispatcher.subscribe();
    let start = since.unwrap_or_else(|| app.dispatcher.routed_head());
    let (tx, rx) = mpsc::channel(app.config.stream_buffer.max(1));
    let follower = Follower {
        app: app.clone(),
        coverage,
        filter,
        sent: start,
        tx,
        checkpoints,
    };
    tokio::spawn(follower.run(live, since.is_some()));

    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|waiting| (Ok::<_, Infallible>(waiting.into_frame()), rx))
    });
    let mut response = Sse::new(body)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response();
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, "no-cache".parse().unwrap());
    h.insert("x-accel-buffering", "no".parse().unwrap());
    Ok(response)
}

struct Follower {
    app: AppState,
    coverage: Coverage,
    /// Only the events it matches are sent (docs/api.md §15).
    filter: Option<Filter>,
    /// Every matching event at or below this has been sent (or precedes the stream).
    sent: Seq,
    tx: mpsc::Sender<Waiting>,
    checkpoints: bool,
}

/// What waits in a stream's buffer for its consumer. An event waits as the log's own
/// shared copy and is written out as a frame only when its turn comes: a burst to
/// thousands of streams queues pointers, not a rendered copy per stream.
enum Waiting {
    Event(SharedEvent),
    /// Checkpoints and last words (boxed: rare, and it keeps every slot small).
    Control(Box<SseEvent>),
}

impl Waiting {
    fn into_frame(self) -> SseEvent {
        match self {
            Waiting::Event(event) => SseEvent::default()
                .id(cursor(event.seq))
                .event(event.state.as_str())
                .data(event_json(&event)),
            Waiting::Control(frame) => *frame,
        }
    }
}

/// Why a stream stopped.
enum Stop {
    /// The consumer went away.
    Closed,
    /// The consumer cannot keep up.
    Cutoff(&'static str),
    /// The gateway is stopping: the consumer is told where to resume.
    Shutdown,
}

impl Follower {
    async fn run(mut self, mut live: broadcast::Receiver<EventBatch>, catch_up: bool) {
        let result = async {
            if catch_up {
                self.catch_up().await?;
            }
            self.follow(&mut live).await
        }
        .await;
        let (event, reason) = match result {
            Err(Stop::Cutoff(reason)) => ("cutoff", reason),
            Err(Stop::Shutdown) => (
                "shutdown",
                "the gateway is shutting down; reconnect with Last-Event-ID to resume",
            ),
            _ => return,
        };
        // The last word carries the cursor to resume from: everything up to it was sent.
        let data = serde_json::json!({"reason": reason, "cursor": cursor(self.sent)}).to_string();
        let last = SseEvent::default()
            .event(event)
            .id(cursor(self.sent))
            .data(data);
        // A cut-off consumer's buffer is full by definition: wait a little for room.
        let last = Waiting::Control(Box::new(last));
        let _ = tokio::time::timeout(Duration::from_secs(5), self.tx.send(last)).await;
    }

    async fn send(&mut self, event: &SharedEvent) -> Result<(), Stop> {
        if event.seq <= self.sent {
            return Ok(());
        }
        if self.coverage.covers(&event.resource) && filter::admits(self.filter.as_ref(), event) {
            self.push(Waiting::Event(event.clone())).await?;
        }
        // Past the events it skips too: the cursor a cutoff or shutdown gives to resume
        // from stays recent on a quiet resource, rather than expiring with retention.
        self.sent = event.seq;
        Ok(())
    }

    /// Queues a frame for the consumer, waiting at most the stall timeout for room.
    async fn push(&self, frame: Waiting) -> Result<(), Stop> {
        match tokio::time::timeout(self.app.config.stream_stall_timeout, self.tx.send(frame)).await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Stop::Closed),
            Err(_) => Err(Stop::Cutoff("the consumer is not keeping up")),
        }
    }

    async fn catch_up(&mut self) -> Result<(), Stop> {
        loop {
            if self.app.dispatcher.context().closing.is_cancelled() {
                return Err(Stop::Shutdown);
            }
            let page = self
                .app
                .store
                .read_matching(&self.coverage, self.sent, CATCH_UP_PAGE)
                .await
                .map(|page| page.events);
            let page = page.map_err(|e| {
                tracing::error!(error = %e, "stream catch-up failed");
                Stop::Closed
            })?;
            for event in &page {
                self.send(event).await?;
            }
            if page.len() < CATCH_UP_PAGE {
                return Ok(());
            }
        }
    }

    async fn follow(&mut self, live: &mut broadcast::Receiver<EventBatch>) -> Result<(), Stop> {
        let idle = self.app.config.checkpoint_interval;
        let closing = self.app.dispatcher.context().closing.clone();
        loop {
            let received = tokio::select! {
                batch = live.recv() => batch,
                _ = tokio::time::sleep(idle), if self.checkpoints => {
                    self.checkpoint(live).await?;
                    continue;
                }
                _ = self.tx.closed() => return Err(Stop::Closed),
                _ = closing.cancelled() => return Err(Stop::Shutdown),
            };
            match received {
                Ok(batch) => self.send_batch(&batch).await?,
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    return Err(Stop::Cutoff(
                        "the consumer fell too far behind the live log",
                    ))
                }
                Err(broadcast::error::RecvError::Closed) => return Err(Stop::Closed),
            }
        }
    }

    async fn send_batch(&mut self, batch: &EventBatch) -> Result<(), Stop> {
        for event in batch.iter() {
            self.send(event).await?;
        }
        Ok(())
    }

    /// "Nothing at or below this cursor will follow." The head is read first and every
    /// batch already broadcast is drained, so no event at or below it is still pending.
    async fn checkpoint(&mut self, live: &mut broadcast::Receiver<EventBatch>) -> Result<(), Stop> {
        let head = self.app.dispatcher.routed_head();
        loop {
            match live.try_recv() {
                Ok(batch) => self.send_batch(&batch).await?,
                Err(broadcast::error::TryRecvError::Lagged(_)) => {
                    return Err(Stop::Cutoff(
                        "the consumer fell too far behind the live log",
                    ))
                }
                Err(_) => break,
            }
        }
        let at = cursor(head.max(self.sent));
        let data = serde_json::json!({"cursor": at}).to_string();
        let frame = SseEvent::default().event("checkpoint").id(at).data(data);
        self.push(Waiting::Control(Box::new(frame))).await
    }
}
