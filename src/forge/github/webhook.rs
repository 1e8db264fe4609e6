//! GitHub webhook deliveries: signature check and what they mean to slipway.
//!
//! GitHub signs each delivery with the webhook secret: `X-Hub-Signature-256: sha256=<hex>`,
//! the HMAC-SHA256 of the raw body (GitHub docs, "Validating webhook deliveries"). The
//! comparison is constant-time.
//!
//! Owns verifying and reading deliveries; it must not act on them (the web route nudges
//! the forge).

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Why a delivery was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("missing X-Hub-Signature-256 header")]
    Missing,
    #[error("X-Hub-Signature-256 is not sha256=<hex>")]
    Malformed,
    #[error("X-Hub-Signature-256 does not match the body and GITHUB_WEBHOOK_SECRET")]
    Mismatch,
}

/// Checks `signature` (the header's value) against `body` and `secret`.
pub fn verify(secret: &str, body: &[u8], signature: Option<&str>) -> Result<(), WebhookError> {
    let sig = signature.ok_or(WebhookError::Missing)?;
    let hex_sig = sig.strip_prefix("sha256=").ok_or(WebhookError::Malformed)?;
    let expected = hex::decode(hex_sig).map_err(|_| WebhookError::Malformed)?;
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).map_err(|_| WebhookError::Malformed)?;
    mac.update(body);
    mac.verify_slice(&expected)
        .map_err(|_| WebhookError::Mismatch)
}

/// Whether an event (`X-GitHub-Event`) can change CI's verdict on a commit.
pub fn is_ci_event(event: &str) -> bool {
    matches!(
        event,
        "check_run" | "check_suite" | "status" | "workflow_run"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &str, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn signatures_are_checked_against_the_raw_body() {
        let body = include_bytes!(
            "../../../../shared/fixtures/github/webhooks/check_run_completed.payload.json"
        );
        let good = sign("s3cret", body);
        assert_eq!(verify("s3cret", body, Some(&good)), Ok(()));
        assert_eq!(
            verify("other", body, Some(&good)),
            Err(WebhookError::Mismatch)
        );
        let mut tampered = body.to_vec();
        tampered[10] ^= 1;
        assert_eq!(
            verify("s3cret", &tampered, Some(&good)),
            Err(WebhookError::Mismatch)
        );
        assert_eq!(verify("s3cret", body, None), Err(WebhookError::Missing));
        assert_eq!(
            verify("s3cret", body, Some("sha1=abc")),
            Err(WebhookError::Malformed)
        );
        // GitHub's documented example (docs: "Validating webhook deliveries").
        assert_eq!(
            verify(
                "It's a Secret to Everybody",
                b"Hello, World!",
                Some("sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")
            ),
            Ok(())
        );
    }
}
