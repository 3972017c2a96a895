//! What `/metrics` counts beyond HTTP requests: check decisions and their latency, bulk-check sizes, logins by
//! outcome and dry-run sizes (the store adds write-group sizes and commit latency, the metrics page the index's
//! revision and its lag). Each handle is registered once, when the app state is made: after the recorder is
//! installed, and not looked up again on the check path.

use metrics::{Counter, Histogram, counter, histogram};

/// The registered handles.
pub struct Telemetry {
    checks_allowed: Counter,
    checks_denied: Counter,
    check_duration: Histogram,
    bulk_size: Histogram,
    logins: [Counter; 3],
    preview_users: Histogram,
}

/// How a login ended.
#[derive(Debug, Clone, Copy)]
pub enum Login {
    /// A session was started.
    Success,
    /// Wrong credentials, or an inactive account.
    Failure,
    /// Refused with 429 (the account or address is throttled, or the hashing queue is full).
    Throttled,
}

impl Telemetry {
    /// Registers every handle with the installed recorder.
    pub fn new() -> Self {
        let login = |outcome: &'static str| counter!("castellan_logins_total", "outcome" => outcome);
        Self {
            checks_allowed: counter!("castellan_checks_total", "decision" => "allowed"),
            checks_denied: counter!("castellan_checks_total", "decision" => "denied"),
            check_duration: histogram!("castellan_check_duration_seconds"),
            bulk_size: histogram!("castellan_bulk_check_size"),
            logins: [login("success"), login("failure"), login("throttled")],
            preview_users: histogram!("castellan_preview_users"),
        }
    }

    /// Counts one check's decision.
    pub fn check(&self, allowed: bool) {
        if allowed { &self.checks_allowed } else { &self.checks_denied }.increment(1);
    }

    /// Records how long answering a check (or a bulk check) took.
    pub fn check_duration(&self, elapsed: std::time::Duration) {
        self.check_duration.record(elapsed.as_secs_f64());
    }

    /// Records a bulk check's size.
    pub fn bulk(&self, size: usize) {
        self.bulk_size.record(size as f64);
    }

    /// Counts a login by outcome.
    pub fn login(&self, outcome: Login) {
        self.logins[outcome as usize].increment(1);
    }

    /// Records how many users a dry run's impact reached.
    pub fn preview(&self, users: usize) {
        self.preview_users.record(users as f64);
    }
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}
