//! A Server-Sent Events client for tests: reads frames off a streaming response.

use std::time::Duration;

use super::PATIENCE;

/// One SSE frame.
#[derive(Debug, Clone, Default)]
pub struct Frame {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
}

impl Frame {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data).expect("frame data is JSON")
    }
}

pub struct SseStream {
    pub response: reqwest::Response,
    buffer: String,
}

impl SseStream {
    /// Sends `request` (see `Api::stream`); panics unless it is a 200 stream.
    pub async fn open(request: reqwest::RequestBuilder) -> SseStream {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200, "stream did not open");
        assert!(response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
        SseStream {
            response,
            buffer: String::new(),
        }
    }

    /// The next frame that carries data (comments and keep-alives skipped); `None`
    /// once the stream ends.
    pub async fn next(&mut self) -> Option<Frame> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let raw: String = self.buffer.drain(..end + 2).collect();
                let mut frame = Frame::default();
                let mut data = Vec::new();
                for line in raw.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        frame.id = Some(v.trim_start().to_string());
                    } else if let Some(v) = line.strip_prefix("event:") {
                        frame.event = Some(v.trim_start().to_string());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push(v.strip_prefix(' ').unwrap_or(v).to_string());
                    }
                }
                if data.is_empty() {
                    continue;
                }
                frame.data = data.join("\n");
                return Some(frame);
            }
            let chunk = tokio::time::timeout(PATIENCE, self.response.chunk())
                .await
                .expect("stream stalled")
                .unwrap()?;
            self.buffer
                .push_str(std::str::from_utf8(&chunk).expect("UTF-8 stream"));
        }
    }

    /// The next frame, which must exist.
    pub async fn expect(&mut self) -> Frame {
        self.next().await.expect("the stream ended early")
    }

    /// Asserts no data frame arrives within `window`.
    pub async fn expect_silence(&mut self, window: Duration) {
        if let Ok(frame) = tokio::time::timeout(window, self.next()).await {
            panic!("expected nothing, got {frame:?}");
        }
    }
}
