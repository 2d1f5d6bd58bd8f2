//! The running nodes of one cluster: started together on one schema, and what they say
//! about themselves (which node delivers which channel).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::task::JoinSet;

use crate::format::duration_arg;
use crate::gateway::Gateway;
use crate::load;
use crate::postgres::{Database, Schema};
use crate::scenarios::Ctx;

/// How long the channels may take to spread over the nodes.
pub(super) const SPREAD_PATIENCE: Duration = Duration::from_secs(60);

/// The running nodes of one cluster, all on one schema; `ids[i]` is `gateways[i]`'s
/// `--node-id`.
pub(super) struct Nodes {
    pub(super) gateways: Vec<Gateway>,
    pub(super) ids: Vec<String>,
    schema: Schema,
    client: reqwest::Client,
}

impl Nodes {
    /// Starts `n` nodes (`n1` …) on a fresh schema, at once, each with `--lease-ttl
    /// ttl`.
    pub(super) async fn start(
        ctx: &Ctx,
        database: &Database,
        name: &str,
        n: usize,
        ttl_seconds: f64,
    ) -> anyhow::Result<Nodes> {
        let schema = database.create_schema(name).await?;
        // Data directories and logs of their own; the schema is the same for all.
        let local = Ctx {
            database: None,
            ..ctx.clone()
        };
        let mut starting = JoinSet::new();
        for i in 0..n {
            let id = format!("n{}", i + 1);
            let launch = local
                .launch(&format!("{name}-{id}-postgres"))
                .await?
                .on_postgres(schema.clone())
                .arg("--node-id", &id)
                .arg("--lease-ttl", &duration_arg(ttl_seconds));
            starting.spawn(async move { (i, id, Gateway::start(&launch).await) });
        }
        let mut started = Vec::new();
        while let Some(joined) = starting.join_next().await {
            let (i, id, gateway) = joined?;
            started.push((
                i,
                id,
                gateway.with_context(|| format!("starting node {}", i + 1))?,
            ));
        }
        started.sort_by_key(|(i, _, _)| *i);
        Ok(Nodes {
            ids: started.iter().map(|(_, id, _)| id.clone()).collect(),
            gateways: started.into_iter().map(|(_, _, g)| g).collect(),
            schema,
            client: load::client(4)?,
        })
    }

    pub(super) fn urls(&self) -> Vec<String> {
        self.gateways.iter().map(|g| g.url.clone()).collect()
    }

    pub(super) fn index(&self, id: &str) -> usize {
        self.ids
            .iter()
            .position(|i| i == id)
            .expect("a running node")
    }

    /// Takes node `id` out of the cluster's set (the caller stops it).
    pub(super) fn take(&mut self, id: &str) -> Gateway {
        let i = self.index(id);
        self.ids.remove(i);
        self.gateways.remove(i)
    }

    /// Channels per running node, as `GET /v1/cluster` on the first running node says.
    async fn spread(&self) -> anyhow::Result<BTreeMap<String, usize>> {
        let url = format!("{}/v1/cluster", self.gateways[0].url);
        let shown = get_json(&self.client, &url).await?;
        let mut spread: BTreeMap<String, usize> =
            self.ids.iter().map(|id| (id.clone(), 0)).collect();
        for node in shown["nodes"]
            .as_array()
            .context("/v1/cluster lists no nodes")?
        {
            let id = node["id"].as_str().unwrap_or_default();
            if let Some(count) = spread.get_mut(id) {
                *count = node["channels"].as_u64().unwrap_or(0) as usize;
            }
        }
        Ok(spread)
    }

    /// Waits until every running node delivers some of the `channels` and they deliver
    /// all of them. Returns how long that took and the spread.
    pub(super) async fn wait_spread(
        &self,
        channels: usize,
    ) -> anyhow::Result<(f64, BTreeMap<String, usize>)> {
        let began = Instant::now();
        loop {
            let spread = self.spread().await?;
            if spread.values().all(|n| *n > 0) && spread.values().sum::<usize>() == channels {
                return Ok((began.elapsed().as_secs_f64(), spread));
            }
            anyhow::ensure!(
                began.elapsed() < SPREAD_PATIENCE,
                "the {channels} channels did not spread over the nodes within {SPREAD_PATIENCE:?}: {spread:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Which node delivers each channel, as `GET /v1/channels` on the first running node
    /// says.
    pub(super) async fn owners(&self) -> anyhow::Result<BTreeMap<String, String>> {
        let url = format!("{}/v1/channels?maxResults=1000", self.gateways[0].url);
        let shown = get_json(&self.client, &url).await?;
        let mut owners = BTreeMap::new();
        for item in shown["items"]
            .as_array()
            .context("/v1/channels lists no items")?
        {
            let id = item["id"].as_str().context("a channel without id")?;
            let node = item["delivery"]["node"].as_str().unwrap_or_default();
            owners.insert(id.to_string(), node.to_string());
        }
        Ok(owners)
    }

    /// Stops every node and drops the schema.
    pub(super) async fn finish(self, database: &Database) -> anyhow::Result<()> {
        database.gateway_stopping(&self.schema.name).await?;
        for gateway in self.gateways {
            let data = gateway.data_dir.clone();
            gateway.stop().await?;
            let _ = std::fs::remove_dir_all(data);
        }
        database.drop_schema(&self.schema.name).await
    }
}

/// `GET url`, answered `200` with JSON.
async fn get_json(client: &reqwest::Client, url: &str) -> anyhow::Result<serde_json::Value> {
    let response = client.get(url).send().await?.error_for_status()?;
    let text = response.text().await?;
    serde_json::from_str(&text).with_context(|| format!("{url} answered {text:?}"))
}
