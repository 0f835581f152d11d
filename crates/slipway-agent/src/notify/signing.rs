//! Standard Webhooks signatures: `webhook-signature: v1,<base64 HMAC>` over
//! `{webhook-id}.{webhook-timestamp}.{body}`, keyed with the base64 part of
//! the channel's `whsec_...` secret.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

const PREFIX: &str = "whsec_";

/// A channel's signing key, decoded once.
pub struct SigningKey(ring::hmac::Key);

impl SigningKey {
    /// The key of a `whsec_<base64>` secret; the error says what is wrong
    /// without repeating the secret.
    pub fn from_secret(secret: &str) -> Result<Self, String> {
        let Some(encoded) = secret.strip_prefix(PREFIX) else {
            return Err(
                "the webhook secret must start with `whsec_` followed by base64 (as Standard \
                 Webhooks secrets do); generate one with `echo whsec_$(openssl rand -base64 32)`"
                    .into(),
            );
        };
        let bytes = STANDARD.decode(encoded).map_err(|_| {
            String::from(
                "the webhook secret after `whsec_` is not valid base64; generate one with \
                 `echo whsec_$(openssl rand -base64 32)`",
            )
        })?;
        if bytes.is_empty() {
            return Err("the webhook secret is empty after `whsec_`".into());
        }
        Ok(Self(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &bytes)))
    }

    /// The `webhook-signature` header value for one attempt.
    pub fn sign(&self, id: &str, timestamp: i64, body: &str) -> String {
        let mut ctx = ring::hmac::Context::with_key(&self.0);
        ctx.update(id.as_bytes());
        ctx.update(b".");
        ctx.update(timestamp.to_string().as_bytes());
        ctx.update(b".");
        ctx.update(body.as_bytes());
        format!("v1,{}", STANDARD.encode(ctx.sign().as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::SigningKey;

    /// The specification's own test vector.
    #[test]
    fn signs_the_standard_webhooks_test_vector() {
        let key = SigningKey::from_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            key.sign(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                r#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn refuses_malformed_secrets_without_echoing_them() {
        for bad in ["MfKQ9r8GKYqrTwjU", "whsec_!!not-base64!!", "whsec_"] {
            let e = SigningKey::from_secret(bad).err().unwrap();
            assert!(e.contains("whsec_"), "{e}");
            assert!(!e.contains("MfKQ") && !e.contains("not-base64"), "{e}");
        }
    }
}
