//! Standard Webhooks signatures (docs/api.md §10): `webhook-signature: v1,<base64 HMAC-SHA256
//! of "id.timestamp.body">`, several space-separated during a key rotation, keyed by a
//! `whsec_<base64>` secret. The gateway signs with this; receivers verify with it.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

const SECRET_PREFIX: &str = "whsec_";

/// A decoded signing key.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret(Vec<u8>);

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningSecret(<redacted>)")
    }
}

impl SigningSecret {
    /// Parses `whsec_<base64 of 24..=64 bytes>`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let b64 = s
            .strip_prefix(SECRET_PREFIX)
            .ok_or_else(|| "a signing secret must start with \"whsec_\"".to_string())?;
        let key = BASE64
            .decode(b64)
            .map_err(|_| "a signing secret must be \"whsec_\" followed by base64".to_string())?;
        if !(24..=64).contains(&key.len()) {
            return Err(format!(
                "a signing secret must hold 24 to 64 bytes; this one holds {}",
                key.len()
            ));
        }
        Ok(SigningSecret(key))
    }

    /// The `v1,<base64>` signature of one message.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        format!("v1,{}", BASE64.encode(self.mac(msg_id, timestamp, body)))
    }

    fn mac(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.finalize().into_bytes().to_vec()
    }

    /// Whether any `v1,` entry of a space-separated signature header matches, compared
    /// in constant time.
    pub fn verify(&self, msg_id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
        use subtle::ConstantTimeEq;
        let expected = self.mac(msg_id, timestamp, body);
        header
            .split(' ')
            .filter_map(|entry| entry.strip_prefix("v1,"))
            .filter_map(|b64| BASE64.decode(b64).ok())
            .fold(false, |found, candidate| {
                found | bool::from(candidate.ct_eq(&expected))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Test vector published by the Standard Webhooks specification.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const MSG_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1614265330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn matches_the_standard_webhooks_vector() {
        let secret = SigningSecret::parse(SECRET).unwrap();
        assert_eq!(secret.sign(MSG_ID, TS, BODY), SIG);
        assert!(secret.verify(MSG_ID, TS, BODY, SIG));
        assert!(secret.verify(MSG_ID, TS, BODY, &format!("v1,bm90IGl0 {SIG}")));
        assert!(!secret.verify(MSG_ID, TS + 1, BODY, SIG));
        assert!(!secret.verify(MSG_ID, TS, b"{}", SIG));
    }

    #[test]
    fn rejects_malformed_secrets() {
        assert!(SigningSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(SigningSecret::parse("whsec_!!!").is_err());
        assert!(SigningSecret::parse("whsec_AAAA").is_err()); // 3 bytes
    }
}
