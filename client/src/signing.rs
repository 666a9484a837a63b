//! Signing RocketMQ 5 requests as the official SDKs do: the
//! `x-mq-date-time` header (UTC, `yyyyMMdd'T'HHmmss'Z'`) and an
//! `authorization` header carrying HMAC-SHA1 of that date under the secret
//! key (`MQv2-HMAC-SHA1 Credential=<AK>, SignedHeaders=x-mq-date-time,
//! Signature=<hex>`). Pure: no I/O, no clock. The server's checks (parsing,
//! skew, constant-time comparison) build on these in `strata-tenancy`.

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

/// The header whose value the signature covers.
pub const DATE_HEADER: &str = "x-mq-date-time";
/// The signature scheme name.
pub const HMAC_SCHEME: &str = "MQv2-HMAC-SHA1";

const MS_PER_DAY: i64 = 86_400_000;

/// The (year, month, day) of a day count since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    // Both are small and positive by construction (1..=31, 1..=12).
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Formats milliseconds since the epoch (sub-second part dropped). Only
/// years 0..=9999 produce text that the server accepts back.
pub fn format_date_time(ms: i64) -> String {
    let days = ms.div_euclid(MS_PER_DAY);
    let secs = ms.rem_euclid(MS_PER_DAY) / 1000;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// HMAC-SHA1 of `date_time` keyed by `secret`.
pub fn mac(secret: &str, date_time: &str) -> Vec<u8> {
    // HMAC takes keys of any length, so this cannot fail; the fallback only
    // keeps a panic out of the code path if that ever changed.
    match <Hmac<Sha1> as KeyInit>::new_from_slice(secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(date_time.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

/// The signature a client sends: lowercase hex HMAC-SHA1(secret, date_time).
pub fn sign(secret: &str, date_time: &str) -> String {
    hex::encode(mac(secret, date_time))
}

/// The two headers of a signed request at `now_ms`: (`x-mq-date-time`
/// value, `authorization` value).
pub fn signed_headers(access_key: &str, secret: &str, now_ms: i64) -> (String, String) {
    let date = format_date_time(now_ms);
    let signature = sign(secret, &date);
    let authorization = format!(
        "{HMAC_SCHEME} Credential={access_key}, SignedHeaders={DATE_HEADER}, Signature={signature}"
    );
    (date, authorization)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(format_date_time(0), "19700101T000000Z");
        assert_eq!(format_date_time(1_795_632_960_000), "20261125T185600Z");
        assert_eq!(format_date_time(-1), "19691231T235959Z");
        // Out-of-range instants format without panicking.
        for ms in [i64::MIN, i64::MAX] {
            let _ = format_date_time(ms);
        }
    }

    #[test]
    fn a_known_signature() {
        // RFC 2202 test case 2: HMAC-SHA1("Jefe", "what do ya want for nothing?").
        assert_eq!(
            sign("Jefe", "what do ya want for nothing?"),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
        let (date, auth) = signed_headers("AK", "SK", 1_795_632_960_000);
        assert_eq!(date, "20261125T185600Z");
        assert_eq!(
            auth,
            format!(
                "MQv2-HMAC-SHA1 Credential=AK, SignedHeaders=x-mq-date-time, Signature={}",
                sign("SK", &date)
            )
        );
    }
}
