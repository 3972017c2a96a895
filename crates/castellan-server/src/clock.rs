//! The server's clock in the unit the engine and the directory compare expiries in.

/// Now, in microseconds since the epoch (the engine's and the directory's clock unit).
pub fn now_micros() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000) as i64
}

/// An instant in the same unit.
pub fn micros_of(t: time::OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1000) as i64
}
