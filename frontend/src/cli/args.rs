//! Value parsers for the arguments whose form clap cannot check by itself
//! (times, durations, offsets, `NAME=VALUE`). A value that does not parse
//! is refused while the command line is parsed, before anything is sent:
//! exit status 2 and, with `--json`, the `USAGE_ERROR` every other command
//! line mistake gets.

use std::time::Duration;

/// A point in time: RFC 3339 (2026-11-25T18:00:00Z) or Unix milliseconds.
pub fn time_ms(text: &str) -> Result<i64, String> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    strata_common::rfc3339::parse_ms(text).map_err(|e| {
        format!("{text:?} is neither RFC 3339 (2026-11-25T18:00:00Z) nor Unix milliseconds: {e}")
    })
}

/// A duration such as 30s, 5m, 2h or 7days.
pub fn duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is not a duration like 30s, 5m or 2h: {e}"))
}

/// A point in time given absolutely or as a duration before now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum When {
    /// Unix milliseconds.
    At(i64),
    /// This long before the command runs.
    Ago(Duration),
}

impl When {
    /// Unix milliseconds, taking "ago" from `now_ms`.
    pub fn to_ms(&self, now_ms: i64) -> i64 {
        match self {
            When::At(ms) => *ms,
            When::Ago(d) => now_ms.saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        }
    }
}

/// RFC 3339, Unix milliseconds, or a duration before now ("24h").
pub fn when(text: &str) -> Result<When, String> {
    if let Ok(ms) = time_ms(text) {
        return Ok(When::At(ms));
    }
    humantime::parse_duration(text).map(When::Ago).map_err(|_| {
        format!(
            "{text:?} is not an RFC 3339 time (2026-11-25T18:00:00Z), Unix milliseconds \
             or a duration before now (24h)"
        )
    })
}

/// Where reading starts on each queue: `--from` of `strata consume`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartAt {
    Earliest,
    Latest,
    Offset(u64),
}

pub fn start_at(text: &str) -> Result<StartAt, String> {
    match text {
        "earliest" => Ok(StartAt::Earliest),
        "latest" => Ok(StartAt::Latest),
        n => n
            .parse()
            .map(StartAt::Offset)
            .map_err(|_| format!("{n:?} is not earliest, latest or an offset")),
    }
}

/// Where `group reset --to` moves a group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResetTo {
    Earliest,
    Latest,
    Offset(u64),
    Time(When),
}

pub fn reset_to(text: &str) -> Result<ResetTo, String> {
    match text {
        "earliest" => return Ok(ResetTo::Earliest),
        "latest" => return Ok(ResetTo::Latest),
        _ => {}
    }
    if let Ok(offset) = text.parse::<u64>() {
        return Ok(ResetTo::Offset(offset));
    }
    // A plain number is an offset, so a time must be RFC 3339 here.
    if let Ok(ms) = strata_common::rfc3339::parse_ms(text) {
        return Ok(ResetTo::Time(When::At(ms)));
    }
    humantime::parse_duration(text)
        .map(|d| ResetTo::Time(When::Ago(d)))
        .map_err(|_| {
            format!(
                "{text:?} is not earliest, latest, an offset, an RFC 3339 time \
                 (2026-11-25T18:00:00Z) or a duration before now (90m)"
            )
        })
}

/// The base URL of a node's HTTP API: http:// or https:// and a host.
pub fn server_url(text: &str) -> Result<String, String> {
    let rest = text
        .strip_prefix("http://")
        .or_else(|| text.strip_prefix("https://"));
    match rest {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') => Ok(text.to_string()),
        _ => Err(format!(
            "{text:?} is not the base URL of a node's HTTP API, like http://127.0.0.1:8080"
        )),
    }
}

/// A node id, by the rule `serve` applies to `node_id`.
pub fn node_id(text: &str) -> Result<String, String> {
    strata_common::names::validate_node_id(text).map_err(|e| e.to_string())?;
    Ok(text.to_string())
}

/// A user property, `NAME=VALUE` (the value may contain '=').
pub fn property(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_string(), value.to_string())),
        _ => Err(format!("{text:?} is not NAME=VALUE")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_take_rfc3339_and_milliseconds() {
        assert_eq!(time_ms("1700000000000"), Ok(1_700_000_000_000));
        assert_eq!(time_ms("1970-01-01T00:00:01Z"), Ok(1000));
        assert!(time_ms("yesterday").unwrap_err().contains("RFC 3339"));
    }

    #[test]
    fn when_takes_durations_before_now() {
        assert_eq!(when("1000"), Ok(When::At(1000)));
        let ago = when("90m").unwrap();
        assert_eq!(ago, When::Ago(Duration::from_secs(90 * 60)));
        assert_eq!(ago.to_ms(10_000_000), 10_000_000 - 5_400_000);
        assert!(When::Ago(Duration::MAX).to_ms(5) < 0);
        assert!(when("bogus").is_err());
    }

    #[test]
    fn from_and_reset_targets() {
        assert_eq!(start_at("earliest"), Ok(StartAt::Earliest));
        assert_eq!(start_at("17"), Ok(StartAt::Offset(17)));
        assert!(start_at("-1").is_err());
        assert_eq!(reset_to("latest"), Ok(ResetTo::Latest));
        assert_eq!(reset_to("42"), Ok(ResetTo::Offset(42)));
        assert_eq!(
            reset_to("1970-01-01T00:00:02Z"),
            Ok(ResetTo::Time(When::At(2000)))
        );
        assert_eq!(
            reset_to("2h"),
            Ok(ResetTo::Time(When::Ago(Duration::from_secs(7200))))
        );
        assert!(reset_to("soon").unwrap_err().contains("earliest, latest"));
    }

    #[test]
    fn node_ids_follow_the_serve_rule() {
        assert_eq!(node_id("node-1").as_deref(), Ok("node-1"));
        let e = node_id("node-1/x").unwrap_err();
        assert!(e.contains("node id"), "{e}");
    }

    #[test]
    fn servers_are_http_urls() {
        assert!(server_url("http://127.0.0.1:8080").is_ok());
        assert!(server_url("https://strata.example.com").is_ok());
        for bad in [
            "notaurl",
            "127.0.0.1:8080",
            "http://",
            "ftp://x",
            "http:///x",
        ] {
            assert!(server_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn properties_need_a_name_and_keep_equals_in_values() {
        assert_eq!(property("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert_eq!(property("a="), Ok(("a".into(), String::new())));
        assert!(property("=b").is_err());
        assert!(property("ab").is_err());
    }
}
