//! The `x-mq-date-time` format, `yyyyMMdd'T'HHmmss'Z'` in UTC (e.g.
//! `20261125T185600Z`; RFC 3339 is accepted too): parsing, with calendar
//! math done here (Howard Hinnant's days-from-civil algorithm) rather than
//! pulling in a date crate. Formatting is the clients' half, in
//! `strata_client::signing`.

use crate::error::AuthError;
pub use strata_client::signing::format_date_time;

const MS_PER_DAY: i64 = 86_400_000;

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    // Months counted from March, so the leap day ends the year.
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Parses an `x-mq-date-time` value to milliseconds since the epoch. Two
/// shapes are accepted: the compact `yyyyMMddTHHmmssZ` in UTC (the Java
/// SDK's), and RFC 3339 with an optional fraction and `Z` or an offset
/// (`2026-11-25T18:56:00.123456789Z`, `2026-11-26T02:56:00+08:00`), as the
/// Rust SDK sends its local time. The fraction is dropped: the skew check
/// works in seconds.
pub fn parse_date_time(text: &str) -> Result<i64, AuthError> {
    let malformed = |why: &str| {
        AuthError::Malformed(format!(
            "{} value {text:?} {why}; expected yyyyMMddTHHmmssZ in UTC (e.g. 20261125T185600Z) or RFC 3339",
            crate::signature::DATE_HEADER
        ))
    };
    let b = text.as_bytes();
    // An RFC 3339 time's offset from UTC, in minutes, and where it starts:
    // `Z`, or `+HH:MM` / `-HH:MM` (the Rust SDK 5.0.0 writes local time so).
    let zone = |b: &[u8]| -> Option<(usize, i64)> {
        if b.last() == Some(&b'Z') {
            return Some((b.len() - 1, 0));
        }
        let at = b.len().checked_sub(6)?;
        let z = &b[at..];
        let sign = match z[0] {
            b'+' => 1,
            b'-' => -1,
            _ => return None,
        };
        let digits = [z[1], z[2], z[4], z[5]];
        if z[3] != b':' || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let [h1, h2, m1, m2] = digits.map(|d| i64::from(d - b'0'));
        let (hours, minutes) = (h1 * 10 + h2, m1 * 10 + m2);
        (hours <= 23 && minutes <= 59).then_some((at, sign * (hours * 60 + minutes)))
    };
    let mut offset_minutes = 0;
    // Byte offsets of year, month, day, hour, minute, second.
    let fields: [std::ops::Range<usize>; 6] = if b.len() == 16 && b[8] == b'T' && b[15] == b'Z' {
        [0..4, 4..6, 6..8, 9..11, 11..13, 13..15]
    } else if b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && let Some((zone_at, minutes)) = zone(b)
        && zone_at >= 19
    {
        offset_minutes = minutes;
        let fraction = &b[19..zone_at];
        let valid_fraction = fraction.is_empty()
            || (fraction[0] == b'.'
                && (2..=10).contains(&fraction.len())
                && fraction[1..].iter().all(u8::is_ascii_digit));
        if !valid_fraction {
            return Err(malformed("has a malformed fraction of a second"));
        }
        [0..4, 5..7, 8..10, 11..13, 14..16, 17..19]
    } else {
        return Err(malformed("has the wrong shape"));
    };
    let number = |range: std::ops::Range<usize>| -> Result<u32, AuthError> {
        b[range].iter().try_fold(0u32, |acc, &c| {
            if c.is_ascii_digit() {
                Ok(acc * 10 + u32::from(c - b'0'))
            } else {
                Err(malformed("has a non-digit where a digit belongs"))
            }
        })
    };
    let [y, mo, d, h, mi, se] = fields;
    let year = i64::from(number(y)?);
    let (month, day) = (number(mo)?, number(d)?);
    let (hour, minute, second) = (number(h)?, number(mi)?, number(se)?);
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return Err(malformed("is not a calendar date"));
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Err(malformed("is not a time of day"));
    }
    let secs = i64::from(hour * 3600 + minute * 60 + second);
    // Local time = UTC + offset.
    Ok(days_from_civil(year, month, day) * MS_PER_DAY + secs * 1000 - offset_minutes * 60_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc3339_as_the_rust_sdk_sends_it() {
        let compact = parse_date_time("20261125T205911Z").unwrap();
        assert_eq!(
            parse_date_time("2026-11-25T20:59:11.175512481Z").unwrap(),
            compact
        );
        assert_eq!(parse_date_time("2026-11-25T20:59:11Z").unwrap(), compact);
        assert_eq!(parse_date_time("2026-11-25T20:59:11.1Z").unwrap(), compact);
        // Local time with its offset, as the Rust SDK 5.0.0 sends it off UTC.
        assert_eq!(
            parse_date_time("2026-11-26T04:59:11.5+08:00").unwrap(),
            compact
        );
        assert_eq!(
            parse_date_time("2026-11-25T15:29:11-05:30").unwrap(),
            compact
        );
        assert_eq!(
            parse_date_time("2026-11-25T20:59:11+00:00").unwrap(),
            compact
        );
        for bad in [
            "2026-11-25T20:59:11.Z",
            "2026-11-25T20:59:11.12345678901Z",
            "2026-11-25T20:59:11+24:00",
            "2026-11-25T20:59:11+0100",
            "2026-11-25T20:59:11.+01:00",
            "2026-11-25T20:59+01:00",
            "2026-11-25 20:59:11Z",
            "2026-13-25T20:59:11Z",
            "2026-11-25T20:59:1xZ",
        ] {
            assert!(parse_date_time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn known_dates() {
        assert_eq!(format_date_time(0), "19700101T000000Z");
        assert_eq!(format_date_time(1_795_632_960_000), "20261125T185600Z");
        assert_eq!(
            parse_date_time("20261125T185600Z").unwrap(),
            1_795_632_960_000
        );
        assert_eq!(
            parse_date_time("20000229T235959Z").unwrap(),
            951_868_799_000
        );
        assert_eq!(format_date_time(-1), "19691231T235959Z");
        // Out-of-range instants format without panicking (and do not parse).
        for ms in [i64::MIN, i64::MAX] {
            assert!(parse_date_time(&format_date_time(ms)).is_err());
        }
        assert_eq!(
            parse_date_time("00000101T000000Z").unwrap(),
            -62_167_219_200_000
        );
    }

    #[test]
    fn rejects_bad_text() {
        for bad in [
            "",
            "20261125T185600",
            "20261125 185600Z",
            "2026-11-25T18:56",
            "20261325T185600Z",
            "20261100T185600Z",
            "19000229T000000Z",
            "20261125T246000Z",
            "20261125T186000Z",
            "20261125T185660Z",
            "2026112aT185600Z",
            "+0261125T185600Z",
        ] {
            let err = parse_date_time(bad).unwrap_err();
            assert!(
                matches!(&err, AuthError::Malformed(m) if m.contains("yyyyMMddTHHmmssZ")),
                "{bad}"
            );
        }
    }

    proptest! {
        #[test]
        fn round_trip_1970_to_2200(secs in 0i64..7_258_118_400) {
            let ms = secs * 1000;
            let text = format_date_time(ms);
            prop_assert_eq!(parse_date_time(&text).unwrap(), ms);
        }

        #[test]
        fn civil_round_trip(days in -1_000_000i64..1_000_000) {
            let (y, m, d) = strata_client::signing::civil_from_days(days);
            prop_assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
