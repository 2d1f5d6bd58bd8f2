//! Google's error envelope (docs/api.md §10):
//! `{"error":{"code":400,"message":"…","errors":[{"domain":"global","reason":"…","message":"…"}]}}`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: u16,
    pub message: String,
    pub errors: Vec<ErrorItem>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorItem {
    pub domain: String,
    pub reason: String,
    pub message: String,
}

impl ErrorEnvelope {
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        ErrorEnvelope {
            error: ErrorBody {
                code,
                message: message.clone(),
                errors: vec![ErrorItem {
                    domain: "global".to_string(),
                    reason: reason.to_string(),
                    message,
                }],
            },
        }
    }

    /// The reason of the first error item (what clients usually switch on).
    pub fn reason(&self) -> Option<&str> {
        self.error.errors.first().map(|e| e.reason.as_str())
    }
}
