//! UTC times as the index keeps them (integer microseconds since the Unix epoch), the file
//! layout derived from them, and RFC 3339 for the HTTP API.

use jiff::Timestamp;
use lockstep_media::mp4_reader::SampleRef;

/// `<camera>/<YYYY-MM-DD>/<HH-MM-SS.ffffff>.mp4` (UTC), relative to the storage root, with `/`
/// separators on every system.
pub fn segment_relative_path(camera: &str, utc_us: i64) -> String {
    let ts = Timestamp::from_microsecond(utc_us).unwrap_or(Timestamp::UNIX_EPOCH);
    format!(
        "{camera}/{}/{}.mp4",
        ts.strftime("%Y-%m-%d"),
        ts.strftime("%H-%M-%S.%6f")
    )
}

/// RFC 3339 with microseconds, in UTC.
pub fn rfc3339(utc_us: i64) -> String {
    Timestamp::from_microsecond(utc_us)
        .unwrap_or(Timestamp::UNIX_EPOCH)
        .strftime("%Y-%m-%dT%H:%M:%S.%6fZ")
        .to_string()
}

/// Parses an RFC 3339 time (any offset) to UTC microseconds; the error says what was wrong.
/// A `+HH:MM` offset whose `+` a URL query decoded to a space is taken back.
pub fn parse_rfc3339(text: &str) -> Result<i64, String> {
    let restored;
    let text = match text.rsplit_once(' ') {
        Some((time, offset))
            if time.contains('T')
                && offset.len() == 5
                && offset.bytes().enumerate().all(|(i, b)| {
                    if i == 2 {
                        b == b':'
                    } else {
                        b.is_ascii_digit()
                    }
                }) =>
        {
            restored = format!("{time}+{offset}");
            restored.as_str()
        }
        _ => text,
    };
    text.parse::<Timestamp>()
        .map(|ts| ts.as_microsecond())
        .map_err(|e| format!("{text:?} is not an RFC 3339 time ({e})"))
}

/// `n / d` rounded to the nearest integer (`d > 0`).
pub(crate) fn div_round(n: i64, d: i64) -> i64 {
    (2 * n + d).div_euclid(2 * d)
}

/// A media duration in `timescale` ticks as microseconds (rounded).
pub(crate) fn ticks_to_us(ticks: i64, timescale: u32) -> i64 {
    div_round(ticks * 1_000_000, i64::from(timescale.max(1)))
}

/// Where a track's samples end, in µs from its time zero.
pub(crate) fn samples_end_us(samples: &[SampleRef], timescale: u32) -> i64 {
    let end = samples.iter().map(|s| s.pts + i64::from(s.duration)).max();
    end.map_or(0, |end| ticks_to_us(end, timescale))
}

/// Now, in UTC microseconds.
pub fn now_us() -> i64 {
    Timestamp::now().as_microsecond()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_times_round_trip() {
        let t = parse_rfc3339("2026-11-22T07:01:33.250123+01:00").unwrap();
        assert_eq!(rfc3339(t), "2026-11-22T06:01:33.250123Z");
        assert_eq!(
            segment_relative_path("front-door", t),
            "front-door/2026-11-22/06-01-33.250123.mp4"
        );
        // `?from=2026-11-22T07:01:33+01:00` unencoded: the query gives a space for the `+`.
        assert_eq!(parse_rfc3339("2026-11-22T07:01:33.250123 01:00"), Ok(t));
        let err = parse_rfc3339("yesterday").unwrap_err();
        assert!(err.contains("yesterday"), "{err}");
    }
}
