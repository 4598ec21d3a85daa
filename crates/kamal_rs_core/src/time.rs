//! UTC timestamps as Kamal writes them (`Time.now.utc.iso8601`: `2024-05-01T12:00:00Z`).

use std::time::{SystemTime, UNIX_EPOCH};

pub fn utc_iso8601(at: SystemTime) -> String {
    let secs = at
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `2024-05-01T12:00:00.123Z`: the events file's times.
pub fn utc_rfc3339_millis(at: SystemTime) -> String {
    let millis = at
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_millis())
        .unwrap_or(0);
    let seconds = utc_iso8601(at);
    format!("{}.{millis:03}Z", seconds.trim_end_matches('Z'))
}

pub fn now() -> String {
    utc_iso8601(SystemTime::now())
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_like_ruby_iso8601() {
        assert_eq!(utc_iso8601(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            utc_iso8601(UNIX_EPOCH + Duration::from_secs(1_795_683_195)),
            "2026-11-26T08:53:15Z"
        );
        assert_eq!(
            utc_iso8601(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            utc_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(951_782_400_042)),
            "2000-02-29T00:00:00.042Z"
        );
    }
}
