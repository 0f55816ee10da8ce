//! Webhook signatures: `X-Selextract-Signature: t=<unix seconds>,v1=<hex>` where the hex is
//! HMAC-SHA256 of `"<t>.<body>"` under the user's signing secret (the whole `whsec_…`
//! text is the key). Receivers check it with [`verify_signature`] (or its few lines in
//! their own language, docs/NOTIFICATIONS.md) and refuse old timestamps, which stops replays.

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The signature header.
pub const SIGNATURE_HEADER: &str = "X-Selextract-Signature";
/// The event type (`run.completed`, …).
pub const EVENT_HEADER: &str = "X-Selextract-Event";
/// The delivery id: the same on every attempt of one delivery, so receivers deduplicate.
pub const DELIVERY_HEADER: &str = "X-Selextract-Delivery";

/// Why a signature does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature header is not `t=<unix>,v1=<hex>`")]
    Malformed,
    #[error("the signature's timestamp is {age_seconds} s away from now, beyond the tolerance")]
    Stale { age_seconds: i64 },
    #[error("no v1 signature matches the body under this secret")]
    Mismatch,
}

/// The header value for `body` sent at `timestamp` (unix seconds).
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mac = mac(secret, timestamp, body).finalize().into_bytes();
    format!("t={timestamp},v1={}", hex(&mac))
}

/// Checks a received `X-Selextract-Signature` header against the raw body: the timestamp
/// within `tolerance` of `now_unix` and a `v1` value equal (in constant time) to the
/// HMAC of `"<t>.<body>"` under `secret`.
pub fn verify_signature(
    secret: &str,
    header: &str,
    body: &[u8],
    now_unix: i64,
    tolerance: Duration,
) -> Result<(), SignatureError> {
    let mut timestamp = None;
    let mut candidates = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => {
                timestamp = Some(
                    value
                        .parse::<i64>()
                        .map_err(|_| SignatureError::Malformed)?,
                )
            }
            Some(("v1", value)) => candidates.push(unhex(value).ok_or(SignatureError::Malformed)?),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if candidates.is_empty() {
        return Err(SignatureError::Malformed);
    }
    let age_seconds = now_unix.saturating_sub(timestamp);
    if age_seconds.unsigned_abs() > tolerance.as_secs() {
        return Err(SignatureError::Stale { age_seconds });
    }
    let matches = candidates
        .iter()
        .any(|candidate| mac(secret, timestamp, body).verify_slice(candidate).is_ok());
    if matches {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

fn mac(secret: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
    let mut mac = new_mac(secret.as_bytes());
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

pub(crate) fn new_mac(key: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of every length"),
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn a_signature_verifies_only_for_its_secret_body_and_time() {
        let header = sign("whsec_a", 1_700_000_000, b"{\"x\":1}");
        assert!(header.starts_with("t=1700000000,v1="));
        verify_signature("whsec_a", &header, b"{\"x\":1}", 1_700_000_100, DAY).unwrap();
        assert_eq!(
            verify_signature("whsec_b", &header, b"{\"x\":1}", 1_700_000_100, DAY),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature("whsec_a", &header, b"{\"x\":2}", 1_700_000_100, DAY),
            Err(SignatureError::Mismatch)
        );
        assert!(matches!(
            verify_signature(
                "whsec_a",
                &header,
                b"{\"x\":1}",
                1_700_000_000 + 301,
                Duration::from_secs(300)
            ),
            Err(SignatureError::Stale { .. })
        ));
        for junk in ["", "t=1", "v1=00", "t=x,v1=00", "t=1,v1=0g", "t=1,v1=é0"] {
            assert_eq!(
                verify_signature("whsec_a", junk, b"", 1, DAY),
                Err(SignatureError::Malformed),
                "{junk}"
            );
        }
    }
}
