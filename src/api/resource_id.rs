//! `resourceId` (docs/api.md §2): opaque and stable per resource, an HMAC-SHA256 of the
//! canonical path under the store's instance secret, so it reveals nothing about the
//! path without the secret. Every watch needs one and channels crowd onto few
//! resources, so [`ResourceIds`] keys the MAC once and remembers recent resources' ids.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::memo::Memo;

/// Resources whose ids are remembered; at the bound the memory starts over (computing
/// an id again costs a few microseconds, so a plain bound is enough).
const REMEMBERED: usize = 1024;

/// The id of `resource` under `secret`.
pub fn resource_id(secret: &[u8], resource: &str) -> String {
    finish(keyed(secret), resource)
}

fn keyed(secret: &[u8]) -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length")
}

fn finish(mut mac: Hmac<Sha256>, resource: &str) -> String {
    mac.update(resource.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&mac.finalize().into_bytes()[..18])
}

/// [`resource_id`] under one secret, for the watch path: the MAC is keyed once (a copy
/// of it starts each id) and the ids of up to [`REMEMBERED`] resources are kept.
pub struct ResourceIds {
    keyed: Hmac<Sha256>,
    remembered: Memo<Box<str>>,
}

impl ResourceIds {
    pub fn new(secret: &[u8]) -> ResourceIds {
        ResourceIds {
            keyed: keyed(secret),
            remembered: Memo::new(REMEMBERED),
        }
    }

    /// The id of `resource`: the same as [`resource_id`] under this secret.
    pub fn of(&self, resource: &str) -> Box<str> {
        self.remembered
            .get_or_make(resource, || finish(self.keyed.clone(), resource).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_ids_are_stable_and_opaque() {
        let a = resource_id(b"secret", "/b/photos");
        assert_eq!(a, resource_id(b"secret", "/b/photos"));
        assert_ne!(a, resource_id(b"secret", "/b/photo"));
        assert_ne!(a, resource_id(b"other", "/b/photos"));
        assert!(!a.contains("photos") && crate::protocol::watch::is_valid_channel_id(&a));
    }

    #[test]
    fn remembered_ids_are_the_ids_computed_afresh() {
        let ids = ResourceIds::new(b"secret");
        // Past the bound, so that the memory starts over at least once.
        for round in 0..2 {
            for i in 0..REMEMBERED + 10 {
                let resource = format!("/r/{i}");
                assert_eq!(
                    *ids.of(&resource),
                    resource_id(b"secret", &resource),
                    "round {round}, {resource}"
                );
            }
        }
        assert!(ids.remembered.len() <= REMEMBERED);
        assert_ne!(*ResourceIds::new(b"other").of("/r/1"), *ids.of("/r/1"));
    }
}
