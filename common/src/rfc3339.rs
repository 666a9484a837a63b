//! RFC 3339 times as Unix milliseconds, with any UTC offset (`Z`,
//! `+01:00`, `-05:30`); `humantime` alone reads only UTC.

/// Unix milliseconds as an RFC 3339 UTC time with milliseconds (times
/// before 1970 show as 1970).
pub fn format_ms(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

/// Unix milliseconds of an RFC 3339 time (a space may stand for the `T`, and
/// the offset may be left out for UTC), or why it is not one.
pub fn parse_ms(text: &str) -> Result<i64, String> {
    let (time, offset_ms) = split_offset(text);
    let t = humantime::parse_rfc3339_weak(time).map_err(|e| e.to_string())?;
    let utc = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| "it is before 1970".to_string())?
        .as_millis();
    let ms = i64::try_from(utc)
        .unwrap_or(i64::MAX)
        .saturating_sub(offset_ms);
    if ms < 0 {
        return Err("it is before 1970".into());
    }
    Ok(ms)
}

/// Splits a trailing `±HH:MM` offset off a date and time: the rest and the
/// offset in milliseconds (local time minus UTC).
fn split_offset(text: &str) -> (&str, i64) {
    let Some(head) = text.get(..text.len().saturating_sub(6)) else {
        return (text, 0);
    };
    let tail = &text.as_bytes()[head.len()..];
    let digit = |i: usize| {
        tail.get(i)
            .filter(|b| b.is_ascii_digit())
            .map(|b| i64::from(b - b'0'))
    };
    let sign = match tail.first() {
        Some(b'+') => 1,
        Some(b'-') => -1,
        _ => return (text, 0),
    };
    let (Some(h1), Some(h2), Some(b':'), Some(m1), Some(m2)) =
        (digit(1), digit(2), tail.get(3), digit(4), digit(5))
    else {
        return (text, 0);
    };
    let (hours, minutes) = (h1 * 10 + h2, m1 * 10 + m2);
    // Only after a time of day: "2026-12-06" ends in "-12-06", not an offset.
    if hours > 23 || minutes > 59 || !head.contains(['T', 't', ' ']) {
        return (text, 0);
    }
    (head, sign * (hours * 60 + minutes) * 60_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_taken_off() {
        let utc = parse_ms("2026-12-06T12:00:00Z").unwrap();
        assert_eq!(parse_ms("2026-12-06T13:00:00+01:00"), Ok(utc));
        assert_eq!(parse_ms("2026-12-06T06:30:00-05:30"), Ok(utc));
        assert_eq!(parse_ms("2026-12-06T12:00:00+00:00"), Ok(utc));
        assert_eq!(parse_ms("2026-12-06 12:00:00"), Ok(utc));
        assert_eq!(parse_ms("2026-12-06T13:00:00.250+01:00"), Ok(utc + 250));
        assert_eq!(parse_ms("1970-01-01T00:00:01Z"), Ok(1000));
    }

    #[test]
    fn refuses_what_is_not_a_time() {
        for bad in [
            "",
            "yesterday",
            "2026-12-06",
            "2026-13-01T00:00:00Z",
            "2026-12-06T13:00:00+24:00",
            "1970-01-01T00:30:00+01:00",
        ] {
            assert!(parse_ms(bad).is_err(), "{bad:?}");
        }
    }
}
