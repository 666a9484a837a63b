//! Parsing and checking credentials as clients send them. Pure: no I/O, no
//! clock.
//!
//! Two schemes:
//!
//! * RocketMQ 5 clients (gRPC metadata):
//!   `authorization: MQv2-HMAC-SHA1 Credential=<AK>, SignedHeaders=x-mq-date-time, Signature=<hex>`
//!   where the signature is HMAC-SHA1 keyed by the secret key over the value
//!   of the `x-mq-date-time` header. The secret never crosses the wire.
//! * HTTP: `Authorization: Bearer <AK>:<SK>`, for curl and scripts over TLS.

use strata_client::signing::mac;
pub use strata_client::signing::{DATE_HEADER, HMAC_SCHEME};
use subtle::ConstantTimeEq;

pub use crate::date_time::{format_date_time, parse_date_time};
use crate::error::AuthError;
use crate::secrets::SecretKey;

/// The HTTP scheme name.
pub const BEARER_SCHEME: &str = "Bearer";

/// A parsed authorization header.
#[derive(Debug, Clone)]
pub enum Authorization {
    Bearer {
        access_key: String,
        secret: SecretKey,
    },
    Hmac {
        access_key: String,
        /// Lowercased header names, in the order given.
        signed_headers: Vec<String>,
        signature: Vec<u8>,
    },
}

impl Authorization {
    /// The access key the request claims.
    pub fn access_key(&self) -> &str {
        match self {
            Authorization::Bearer { access_key, .. } | Authorization::Hmac { access_key, .. } => {
                access_key
            }
        }
    }
}

fn malformed(message: impl Into<String>) -> AuthError {
    AuthError::Malformed(message.into())
}

/// Parses an authorization header value. The scheme and parameter names are
/// case-insensitive; messages never echo a bearer secret.
pub fn parse_authorization(header: &str) -> Result<Authorization, AuthError> {
    let header = header.trim();
    let (scheme, rest) = header
        .split_once(|c: char| c.is_ascii_whitespace())
        .ok_or_else(|| {
            malformed(format!(
                "expected \"{HMAC_SCHEME} Credential=..., SignedHeaders=..., Signature=...\" or \"{BEARER_SCHEME} <access key>:<secret key>\""
            ))
        })?;
    if scheme.eq_ignore_ascii_case(BEARER_SCHEME) {
        parse_bearer(rest.trim())
    } else if scheme.eq_ignore_ascii_case(HMAC_SCHEME) {
        parse_hmac(rest.trim())
    } else {
        Err(malformed(format!(
            "unsupported scheme {scheme:?}; expected {HMAC_SCHEME} or {BEARER_SCHEME}"
        )))
    }
}

fn parse_bearer(token: &str) -> Result<Authorization, AuthError> {
    match token.split_once(':') {
        Some((access_key, secret)) if !access_key.is_empty() && !secret.is_empty() => {
            Ok(Authorization::Bearer {
                access_key: access_key.to_string(),
                secret: SecretKey::new(secret),
            })
        }
        _ => Err(malformed(
            "bearer token must be <access key>:<secret key>, both non-empty",
        )),
    }
}

fn parse_hmac(params: &str) -> Result<Authorization, AuthError> {
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in params.split(',') {
        let part = part.trim();
        let (name, value) = part
            .split_once('=')
            .ok_or_else(|| malformed(format!("parameter {part:?} is not Name=Value")))?;
        let slot = if name.eq_ignore_ascii_case("Credential") {
            &mut credential
        } else if name.eq_ignore_ascii_case("SignedHeaders") {
            &mut signed_headers
        } else if name.eq_ignore_ascii_case("Signature") {
            &mut signature
        } else {
            return Err(malformed(format!(
                "unknown parameter {name:?}; expected Credential, SignedHeaders and Signature"
            )));
        };
        if slot.replace(value.trim()).is_some() {
            return Err(malformed(format!("parameter {name} appears twice")));
        }
    }
    let credential = credential.ok_or_else(|| malformed("missing Credential parameter"))?;
    // Clients may append a scope ("AK/region/..."); only the key matters here.
    let access_key = credential.split('/').next().unwrap_or_default();
    if access_key.is_empty() {
        return Err(malformed("Credential has an empty access key"));
    }
    let signed_headers: Vec<String> = signed_headers
        .ok_or_else(|| malformed("missing SignedHeaders parameter"))?
        .split(';')
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    let signature = signature.ok_or_else(|| malformed("missing Signature parameter"))?;
    let signature =
        hex::decode(signature).map_err(|_| malformed("Signature is not hexadecimal"))?;
    if signature.is_empty() {
        return Err(malformed("Signature is empty"));
    }
    Ok(Authorization::Hmac {
        access_key: access_key.to_string(),
        signed_headers,
        signature,
    })
}

/// The signature a client sends: lowercase hex HMAC-SHA1(secret, date_time).
pub fn sign(secret: &SecretKey, date_time: &str) -> String {
    strata_client::signing::sign(secret.expose(), date_time)
}

/// Whether `signature` (raw bytes) signs `date_time` under `secret`,
/// compared in constant time.
pub fn verify(secret: &SecretKey, date_time: &str, signature: &[u8]) -> bool {
    let expected = mac(secret.expose(), date_time);
    !expected.is_empty() && bool::from(expected.ct_eq(signature))
}

/// [`AuthError::ClockSkew`] if the request time is more than `max_skew_ms`
/// away from now in either direction; this bounds how long a captured
/// signature can be replayed.
pub fn check_skew(date_ms: i64, now_ms: i64, max_skew_ms: i64) -> Result<(), AuthError> {
    let skew = date_ms.saturating_sub(now_ms);
    if skew.unsigned_abs() > max_skew_ms.unsigned_abs() {
        return Err(AuthError::ClockSkew {
            skew_ms: skew,
            max_ms: max_skew_ms,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_answer() {
        // From: python3 -c 'import hmac,hashlib;print(hmac.new(b"key",
        //   b"20261125T185600Z",hashlib.sha1).hexdigest())'
        // and confirmed with `openssl dgst -sha1 -hmac key`.
        let key = SecretKey::new("key");
        let expected = "b22d767dc91a8a0282732c790ed71f438c36d0d5";
        assert_eq!(sign(&key, "20261125T185600Z"), expected);
        // The RFC 2104 example published on Wikipedia, as a second witness.
        assert_eq!(
            sign(&key, "The quick brown fox jumps over the lazy dog"),
            "de7c9b85b8b78aa6bc8a7a36f70a90701c9db4d9"
        );
        assert!(verify(
            &key,
            "20261125T185600Z",
            &hex::decode(expected).unwrap()
        ));
    }

    #[test]
    fn parses_rocketmq_header() {
        let header = "MQv2-HMAC-SHA1 Credential=STRAAK/extra, SignedHeaders=x-mq-date-time, Signature=B22D767DC91A8A0282732C790ED71F438C36D0D5";
        let Authorization::Hmac {
            access_key,
            signed_headers,
            signature,
        } = parse_authorization(header).unwrap()
        else {
            panic!("expected hmac");
        };
        assert_eq!(access_key, "STRAAK");
        assert_eq!(signed_headers, [DATE_HEADER]);
        assert_eq!(
            hex::encode(signature),
            "b22d767dc91a8a0282732c790ed71f438c36d0d5"
        );
        // Lowercase scheme, no spaces after commas, mixed-case header name.
        let compact = "mqv2-hmac-sha1 Credential=AK,SignedHeaders=X-MQ-Date-Time,Signature=00ff";
        let parsed = parse_authorization(compact).unwrap();
        assert_eq!(parsed.access_key(), "AK");
        assert!(
            matches!(parsed, Authorization::Hmac { signed_headers, .. } if signed_headers == [DATE_HEADER])
        );
    }

    #[test]
    fn parses_bearer() {
        let parsed = parse_authorization("bearer STRAAK:sec:ret").unwrap();
        let Authorization::Bearer { access_key, secret } = parsed else {
            panic!("expected bearer");
        };
        assert_eq!(
            (access_key.as_str(), secret.expose()),
            ("STRAAK", "sec:ret")
        );
    }

    #[test]
    fn malformed_headers_say_why() {
        let cases = [
            ("", "expected"),
            ("Basic abc", "unsupported scheme"),
            ("Bearer nocolon", "bearer token"),
            ("Bearer :secret", "bearer token"),
            ("Bearer AK:", "bearer token"),
            (
                "MQv2-HMAC-SHA1 SignedHeaders=x-mq-date-time, Signature=00",
                "missing Credential",
            ),
            (
                "MQv2-HMAC-SHA1 Credential=AK, Signature=00",
                "missing SignedHeaders",
            ),
            (
                "MQv2-HMAC-SHA1 Credential=AK, SignedHeaders=x-mq-date-time",
                "missing Signature",
            ),
            (
                "MQv2-HMAC-SHA1 Credential=AK, SignedHeaders=h, Signature=xyz",
                "not hexadecimal",
            ),
            (
                "MQv2-HMAC-SHA1 Credential=AK, SignedHeaders=h, Signature=",
                "empty",
            ),
            (
                "MQv2-HMAC-SHA1 Credential=/x, SignedHeaders=h, Signature=00",
                "empty access key",
            ),
            (
                "MQv2-HMAC-SHA1 Credential=AK, Credential=B, SignedHeaders=h, Signature=00",
                "twice",
            ),
            (
                "MQv2-HMAC-SHA1 Credential=AK, Region=x, SignedHeaders=h, Signature=00",
                "unknown parameter",
            ),
            ("MQv2-HMAC-SHA1 Credential", "not Name=Value"),
        ];
        for (header, expected) in cases {
            match parse_authorization(header) {
                Err(AuthError::Malformed(m)) => assert!(m.contains(expected), "{header}: {m}"),
                other => panic!("{header}: {other:?}"),
            }
        }
        // A bearer secret never appears in an error message.
        let err = parse_authorization("Bearer :topsecret")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("topsecret"), "{err}");
    }

    #[test]
    fn skew() {
        assert!(check_skew(1_000, 1_000, 0).is_ok());
        assert!(check_skew(1_500, 1_000, 500).is_ok());
        assert!(check_skew(500, 1_000, 500).is_ok());
        assert!(matches!(
            check_skew(1_501, 1_000, 500),
            Err(AuthError::ClockSkew {
                skew_ms: 501,
                max_ms: 500
            })
        ));
        assert!(matches!(
            check_skew(0, 1_000, 500),
            Err(AuthError::ClockSkew {
                skew_ms: -1_000,
                ..
            })
        ));
        assert!(check_skew(i64::MIN, i64::MAX, 500).is_err());
    }

    proptest! {
        #[test]
        fn sign_verify(secret in "[A-Za-z0-9]{1,64}", date in "[0-9T]{0,32}") {
            let key = SecretKey::new(secret);
            let signature = hex::decode(sign(&key, &date)).unwrap();
            prop_assert!(verify(&key, &date, &signature));
            let other = format!("{date}x");
            prop_assert!(!verify(&key, &other, &signature));
            prop_assert!(!verify(&key, &date, &signature[..19]));
        }

        #[test]
        fn any_flipped_byte_fails(index in 0usize..20, bit in 0u8..8) {
            let key = SecretKey::new("secret");
            let mut signature = hex::decode(sign(&key, "20261125T185600Z")).unwrap();
            signature[index] ^= 1 << bit;
            prop_assert!(!verify(&key, "20261125T185600Z", &signature));
        }
    }
}
