//! Discord's request signature: Ed25519 over `X-Signature-Timestamp` followed by the raw body, checked
//! with the application's public key (hex), plus Tao's own freshness rule on the timestamp.
//!
//! Owns parsing the configured key, the check of one request and why it failed (for the log; the client
//! only ever sees a 401). Does no I/O.

use std::fmt;

use ed25519_dalek::{Signature, VerifyingKey};

/// How far `X-Signature-Timestamp` may be from Tao's clock, either way (Discord sets no replay window;
/// this is Tao's policy: a captured request cannot be replayed later than this).
pub const MAX_SKEW_SECS: i64 = 300;

/// The application's public key, ready to check requests.
#[derive(Clone)]
pub struct Verifier {
    key: VerifyingKey,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Verifier({})", hex::encode(self.key.as_bytes()))
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// A signature header is absent.
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    /// The signature is not 128 hex characters.
    #[error("X-Signature-Ed25519 is not 64 bytes of hex")]
    BadSignatureEncoding,
    /// The timestamp is not a number of seconds.
    #[error("X-Signature-Timestamp is not a Unix time in seconds: {0:?}")]
    BadTimestamp(String),
    /// The timestamp is too far from now.
    #[error("X-Signature-Timestamp is {0} s away from Tao's clock (at most {MAX_SKEW_SECS} s allowed)")]
    Stale(i64),
    /// The signature does not match.
    #[error("the signature does not match the public key")]
    Mismatch,
}

impl Verifier {
    /// Reads a public key written as 64 hex characters (the Developer Portal's "Public Key").
    pub fn from_hex(hex_key: &str) -> Result<Verifier, String> {
        let bytes = hex::decode(hex_key.trim())
            .map_err(|_| format!("expected 64 hex characters, found {} characters", hex_key.trim().len()))?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| format!("expected 32 bytes (64 hex characters), found {}", b.len()))?;
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| "not a valid Ed25519 public key".to_string())?;
        Ok(Verifier { key })
    }

    /// Checks the signature of `timestamp ‖ body` (no freshness check; see [`Verifier::verify_at`]).
    pub fn verify_signature(&self, signature_hex: &str, timestamp: &str, body: &[u8]) -> Result<(), VerifyError> {
        let sig = hex::decode(signature_hex.trim()).map_err(|_| VerifyError::BadSignatureEncoding)?;
        let sig: [u8; 64] = sig.try_into().map_err(|_| VerifyError::BadSignatureEncoding)?;
        let message = [timestamp.as_bytes(), body].concat();
        self.key.verify_strict(&message, &Signature::from_bytes(&sig)).map_err(|_| VerifyError::Mismatch)
    }

    /// Checks a request's headers and raw body at `now` (Unix seconds): both headers present, the
    /// timestamp within [`MAX_SKEW_SECS`] of `now`, and the signature valid.
    pub fn verify_at(
        &self,
        signature: Option<&str>,
        timestamp: Option<&str>,
        body: &[u8],
        now: i64,
    ) -> Result<(), VerifyError> {
        let signature = signature.ok_or(VerifyError::MissingHeader("X-Signature-Ed25519"))?;
        let timestamp = timestamp.ok_or(VerifyError::MissingHeader("X-Signature-Timestamp"))?;
        let at: i64 = timestamp.trim().parse().map_err(|_| VerifyError::BadTimestamp(timestamp.to_string()))?;
        let skew = (now - at).abs();
        if skew > MAX_SKEW_SECS {
            return Err(VerifyError::Stale(skew));
        }
        self.verify_signature(signature, timestamp, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VECTOR: &str = include_str!(
        "../../../tests/fixtures/discord/interaction_requests/application_command.chat_input.string_option.real_signed.vector.json"
    );
    const BODY: &[u8] = include_bytes!(
        "../../../tests/fixtures/discord/interaction_requests/application_command.chat_input.string_option.real_signed.body.json"
    );

    fn vector() -> (Verifier, String, String) {
        let v: serde_json::Value = serde_json::from_str(VECTOR).unwrap();
        let verifier = Verifier::from_hex(v["public_key_hex"].as_str().unwrap()).unwrap();
        let sig = v["headers"]["X-Signature-Ed25519"].as_str().unwrap().to_string();
        let ts = v["headers"]["X-Signature-Timestamp"].as_str().unwrap().to_string();
        (verifier, sig, ts)
    }

    #[test]
    fn the_real_discord_request_verifies_with_its_public_key() {
        let (verifier, sig, ts) = vector();
        assert_eq!(BODY.len(), 1655, "the fixture body must be byte-exact");
        verifier.verify_signature(&sig, &ts, BODY).expect("Discord's own signature verifies");
        verifier.verify_signature(&sig.to_uppercase(), &ts, BODY).expect("upper-case hex is accepted");
        let now: i64 = ts.parse().unwrap();
        verifier.verify_at(Some(&sig), Some(&ts), BODY, now + 10).expect("fresh");
    }

    #[test]
    fn tampering_staleness_and_missing_headers_are_refused() {
        let (verifier, sig, ts) = vector();
        let mut tampered = BODY.to_vec();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(verifier.verify_signature(&sig, &ts, &tampered), Err(VerifyError::Mismatch));
        assert_eq!(verifier.verify_signature(&sig, "1749368684", BODY), Err(VerifyError::Mismatch));
        assert_eq!(verifier.verify_signature(&sig[..120], &ts, BODY), Err(VerifyError::BadSignatureEncoding));
        let now: i64 = ts.parse().unwrap();
        assert_eq!(verifier.verify_at(Some(&sig), Some(&ts), BODY, now + 301), Err(VerifyError::Stale(301)));
        assert_eq!(
            verifier.verify_at(None, Some(&ts), BODY, now),
            Err(VerifyError::MissingHeader("X-Signature-Ed25519"))
        );
        assert_eq!(
            verifier.verify_at(Some(&sig), None, BODY, now),
            Err(VerifyError::MissingHeader("X-Signature-Timestamp"))
        );
        assert!(matches!(verifier.verify_at(Some(&sig), Some("soon"), BODY, now), Err(VerifyError::BadTimestamp(_))));
    }

    #[test]
    fn bad_keys_are_explained() {
        assert!(Verifier::from_hex("abc").unwrap_err().contains("hex"));
        assert!(Verifier::from_hex(&"ab".repeat(31)).unwrap_err().contains("found 31"));
    }
}
