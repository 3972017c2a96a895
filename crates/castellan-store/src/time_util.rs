//! Timestamps are stored as integer microseconds since the Unix epoch: portable and cheap to sort.

use time::OffsetDateTime;

/// Microseconds since the epoch.
pub fn to_micros(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1000) as i64
}

/// Back from microseconds (out-of-range values clamp to the epoch).
pub fn from_micros(us: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Now, in microseconds since the epoch.
pub fn now_micros() -> i64 {
    to_micros(OffsetDateTime::now_utc())
}
