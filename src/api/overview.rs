//! `GET /v1/overview` (docs/api.md §12.2): the gateway at a glance, for the console's
//! first view. The last hour per wall-clock minute (notifications delivered, attempts
//! failed, events published: `telemetry::activity`), the backlog, the failing channels
//! and the hosts in trouble, worst first. Each node knows only its own; in a cluster the
//! node asked sums every node's part, asking the others for it through this same call
//! with `?local=true` and the caller's key. A node that does not answer in time is
//! named as missing, and the answer is the sum of the others.

use std::sync::OnceLock;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::auth::{presented_key, Operator};
use super::error::ApiError;
use super::query::Query;
use super::AppState;
use crate::channel_view::failure_view;
use crate::cluster::NodeInfo;
use crate::delivery::hosts::{wall_clock_ms, HostState};
use crate::delivery::Dispatcher;
use crate::model::now_ms;
use crate::telemetry::activity::{add_minutes, Minute};

/// The most failing channels and hosts listed; the counts say how many there are.
pub const LISTED: usize = 20;
/// How long the node asked waits for each other node's part.
pub const NODE_TIMEOUT: Duration = Duration::from_secs(2);
/// The largest part another node may answer with (a part is a few kilobytes).
const MAX_PART_BYTES: usize = 1 << 20;

/// The answer, and each node's part of it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Overview {
    /// When the node asked made it.
    #[serde(with = "time")]
    at: i64,
    /// The last 60 minutes, oldest first; the last one is the current minute.
    minutes: Vec<MinuteView>,
    /// Notifications owed by the channels the nodes deliver (their `pendingCount`s).
    backlog: u64,
    failing_channel_count: u64,
    failing_channels: Vec<FailingChannel>,
    failing_host_count: u64,
    failing_hosts: Vec<FailingHost>,
    /// The nodes whose parts are summed.
    nodes: Vec<String>,
    /// The nodes that did not answer, and why.
    missing: Vec<MissingNode>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MinuteView {
    #[serde(with = "time")]
    start: i64,
    delivered: u64,
    failed: u64,
    published: u64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FailingChannel {
    id: String,
    owner: String,
    address: String,
    /// In a cluster, the node delivering it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    node: Option<String>,
    enabled: bool,
    pending_count: u64,
    #[serde(with = "time")]
    failing_since: i64,
    /// `{reason, detail, status?}`; `null` when its node restarted since.
    last_error: Option<Value>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FailingHost {
    host: String,
    state: String,
    failures: u32,
    #[serde(
        default,
        with = "optional_time",
        skip_serializing_if = "Option::is_none"
    )]
    until: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    node: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MissingNode {
    id: String,
    address: String,
    reason: String,
}

pub async fn overview(
    State(app): State<AppState>,
    _: Operator,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Json<Overview>, ApiError> {
    let local = Query::parse(&uri, &["local"])?.flag("local")?;
    let mut answer = local_part(&app).await;
    let Some(membership) = app.membership.as_deref().filter(|_| !local) else {
        return Ok(Json(answer));
    };
    let others: Vec<NodeInfo> = membership
        .nodes()
        .await?
        .into_iter()
        .filter(|n| n.id != membership.node_id())
        .collect();
    let key = presented_key(&headers, &uri);
    let parts =
        futures_util::future::join_all(others.iter().map(|n| node_part(n, key.as_deref()))).await;
    for (node, part) in others.into_iter().zip(parts) {
        match part {
            Ok(part) => answer.add(part),
            Err(reason) => answer.missing.push(MissingNode {
                id: node.id,
                address: node.address,
                reason,
            }),
        }
    }
    answer.keep_the_worst();
    Ok(Json(answer))
}

/// This node's part.
async fn local_part(app: &AppState) -> Overview {
    let node = app.membership.as_deref().map(|m| m.node_id().to_string());
    let ctx = app.dispatcher.context();
    let at = now_ms();
    let minutes = ctx
        .activity
        .last_hour(at)
        .iter()
        .map(MinuteView::from)
        .collect();
    let dispatcher = app.dispatcher.clone();
    let of_node = node.clone();
    // Every channel this node delivers: off the runtime's threads, there may be millions.
    let channels = tokio::task::spawn_blocking(move || Channels::read(&dispatcher, of_node))
        .await
        .expect("reading the channels does not panic");
    let hosts: Vec<FailingHost> = ctx
        .outbound
        .hosts()
        .troubled()
        .into_iter()
        .map(|t| FailingHost {
            host: t.host.to_string(),
            state: t.state.as_str().to_string(),
            failures: t.failures,
            until: t.until.map(wall_clock_ms),
            node: node.clone(),
        })
        .collect();
    let mut part = Overview {
        at,
        minutes,
        backlog: channels.backlog,
        failing_channel_count: channels.failing_count,
        failing_channels: channels.failing,
        failing_host_count: hosts.len() as u64,
        failing_hosts: hosts,
        nodes: vec![node.unwrap_or_else(|| "embedded".into())],
        missing: Vec::new(),
    };
    part.keep_the_worst();
    part
}

/// What the overview reads of the channels a node delivers.
struct Channels {
    backlog: u64,
    failing_count: u64,
    /// The worst of them, at most `2 * LISTED` at any time.
    failing: Vec<FailingChannel>,
}

impl Channels {
    fn read(dispatcher: &Dispatcher, node: Option<String>) -> Channels {
        let mut channels = Channels {
            backlog: 0,
            failing_count: 0,
            failing: Vec::new(),
        };
        for pk in dispatcher.local_pks() {
            let Some(handle) = dispatcher.handle(pk) else {
                continue;
            };
            let state = handle.snapshot();
            channels.backlog += state.pending;
            let Some(failing_since) = state.failing_since_ms else {
                continue;
            };
            channels.failing_count += 1;
            // A failing channel keeps its spec: only a healthy idle one puts it away.
            let Some(spec) = handle.spec() else {
                continue;
            };
            channels.failing.push(FailingChannel {
                id: spec.id.to_string(),
                owner: spec.owner.to_string(),
                address: spec.address.to_string(),
                node: node.clone(),
                enabled: state.enabled,
                pending_count: state.pending,
                failing_since,
                last_error: state.last_error.as_ref().map(failure_view),
            });
            if channels.failing.len() >= 2 * LISTED {
                worst_channels_first(&mut channels.failing);
            }
        }
        channels
    }
}

/// Keeps the [`LISTED`] worst: failing the longest, then owing the most.
fn worst_channels_first(channels: &mut Vec<FailingChannel>) {
    channels.sort_by(|a, b| {
        (a.failing_since, b.pending_count, &a.id).cmp(&(b.failing_since, a.pending_count, &b.id))
    });
    channels.truncate(LISTED);
}

/// Keeps the [`LISTED`] worst: backing off, then held, then failing; more failures first.
fn worst_hosts_first(hosts: &mut Vec<FailingHost>) {
    let rank = |state: &str| {
        [HostState::BackingOff, HostState::Limited, HostState::Open]
            .iter()
            .position(|s| s.as_str() == state)
            .unwrap_or(usize::MAX)
    };
    hosts.sort_by(|a, b| {
        (rank(&a.state), b.failures, &a.host, &a.node).cmp(&(
            rank(&b.state),
            a.failures,
            &b.host,
            &b.node,
        ))
    });
    hosts.truncate(LISTED);
}

impl Overview {
    /// Adds another node's part: its minutes to the same minutes, its counts, its lists.
    fn add(&mut self, part: Overview) {
        let mut minutes: Vec<Minute> = self.minutes.iter().map(Minute::from).collect();
        let theirs: Vec<Minute> = part.minutes.iter().map(Minute::from).collect();
        add_minutes(&mut minutes, &theirs);
        self.minutes = minutes.iter().map(MinuteView::from).collect();
        self.backlog += part.backlog;
        self.failing_channel_count += part.failing_channel_count;
        self.failing_channels.extend(part.failing_channels);
        self.failing_host_count += part.failing_host_count;
        self.failing_hosts.extend(part.failing_hosts);
        self.nodes.extend(part.nodes);
    }

    fn keep_the_worst(&mut self) {
        worst_channels_first(&mut self.failing_channels);
        worst_hosts_first(&mut self.failing_hosts);
    }
}

impl From<&Minute> for MinuteView {
    fn from(m: &Minute) -> Self {
        MinuteView {
            start: m.start_ms,
            delivered: m.delivered,
            failed: m.failed,
            published: m.published,
        }
    }
}

impl From<&MinuteView> for Minute {
    fn from(m: &MinuteView) -> Self {
        Minute {
            start_ms: m.start,
            delivered: m.delivered,
            failed: m.failed,
            published: m.published,
        }
    }
}

/// The client nodes ask each other with: straight to the node's address, never
/// through a proxy of the environment.
fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .no_proxy()
            .timeout(NODE_TIMEOUT)
            .build()
            .expect("a plain HTTP client builds")
    })
}

/// Another node's part, asked at the address it registered, with the caller's key; or
/// why there is none.
async fn node_part(node: &NodeInfo, key: Option<&str>) -> Result<Overview, String> {
    let url = format!("{}/v1/overview?local=true", node.address);
    let mut request = client().get(&url);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let seconds = NODE_TIMEOUT.as_secs();
    let mut response = request.send().await.map_err(|e| match e.is_timeout() {
        true => format!("it did not answer within {seconds} s"),
        false => format!("it could not be reached at {}", node.address),
    })?;
    let status = response.status();
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) if body.len() + chunk.len() <= MAX_PART_BYTES => {
                body.extend_from_slice(&chunk)
            }
            Ok(Some(_)) => return Err("its answer was too large".into()),
            Ok(None) => break,
            Err(e) if e.is_timeout() => {
                return Err(format!("it did not answer within {seconds} s"))
            }
            Err(_) => return Err("its answer broke off".into()),
        }
    }
    if !status.is_success() {
        let message = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
            .unwrap_or_default();
        return Err(format!("it answered {}: {message}", status.as_u16()));
    }
    let part: Overview = serde_json::from_slice(&body)
        .map_err(|e| format!("its answer was not an overview: {e}"))?;
    // A load balancer's URL shared by every node would reach some other node.
    if part.nodes != [node.id.as_str()] {
        return Err(format!(
            "its address {} reached {} instead: each node needs a --public-url of its own",
            node.address,
            part.nodes.join(", ")
        ));
    }
    Ok(part)
}

/// A time in ms since the epoch as the API writes it (RFC 3339, docs/api.md §14).
mod time {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::model::rfc3339_ms(*ms))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let text = String::deserialize(d)?;
        chrono::DateTime::parse_from_rfc3339(&text)
            .map(|t| t.timestamp_millis())
            .map_err(serde::de::Error::custom)
    }
}

/// [`time`], for a time that may be absent.
mod optional_time {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ms: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
        match ms {
            Some(ms) => super::time::serialize(ms, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        #[derive(Deserialize)]
        struct Time(#[serde(with = "super::time")] i64);
        Ok(Option::<Time>::deserialize(d)?.map(|Time(ms)| ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(id: &str, failing_since: i64, pending_count: u64) -> FailingChannel {
        FailingChannel {
            id: id.into(),
            owner: "o".into(),
            address: "https://x/".into(),
            node: None,
            enabled: true,
            pending_count,
            failing_since,
            last_error: None,
        }
    }

    fn host(name: &str, state: HostState, failures: u32) -> FailingHost {
        FailingHost {
            host: name.into(),
            state: state.as_str().into(),
            failures,
            until: None,
            node: None,
        }
    }

    #[test]
    fn the_worst_come_first_and_the_lists_are_bounded() {
        let mut channels: Vec<FailingChannel> = (0..50)
            .map(|i| channel(&format!("c{i:02}"), 1000 + i, 0))
            .collect();
        channels.push(channel("oldest", 10, 1));
        channels.push(channel("same-age-owing-more", 10, 5));
        worst_channels_first(&mut channels);
        let ids: Vec<&str> = channels.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids.len(), LISTED);
        assert_eq!(&ids[..3], ["same-age-owing-more", "oldest", "c00"]);

        let mut hosts = vec![
            host("h://open", HostState::Open, 4),
            host("h://held", HostState::Limited, 1),
            host("h://down-long", HostState::BackingOff, 9),
            host("h://down", HostState::BackingOff, 2),
        ];
        hosts.extend((0..30).map(|i| host(&format!("h://{i}"), HostState::Open, 1)));
        worst_hosts_first(&mut hosts);
        let names: Vec<&str> = hosts.iter().map(|h| h.host.as_str()).collect();
        assert_eq!(names.len(), LISTED);
        assert_eq!(
            &names[..4],
            ["h://down-long", "h://down", "h://held", "h://open"]
        );
    }

    #[test]
    fn a_part_reads_back_as_it_was_written() {
        let part = Overview {
            at: 1_796_040_012_345,
            minutes: vec![MinuteView {
                start: 1_796_040_000_000,
                delivered: 1,
                failed: 2,
                published: 3,
            }],
            backlog: 4,
            failing_channel_count: 1,
            failing_channels: vec![channel("c", 1_796_039_000_000, 4)],
            failing_host_count: 1,
            failing_hosts: vec![FailingHost {
                until: Some(1_796_040_013_000),
                ..host("h://down:1", HostState::BackingOff, 2)
            }],
            nodes: vec!["n1".into()],
            missing: vec![],
        };
        let text = serde_json::to_string(&part).unwrap();
        assert!(
            text.contains(r#""start":"2026-11-30T12:00:00.000Z""#),
            "{text}"
        );
        assert!(
            text.contains(r#""until":"2026-11-30T12:00:13.000Z""#),
            "{text}"
        );
        let read: Overview = serde_json::from_str(&text).unwrap();
        assert_eq!(serde_json::to_string(&read).unwrap(), text);
    }
}
