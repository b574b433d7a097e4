//! What both roles write about objects: conditions and Events, as plain data. Pure: the time
//! is passed in.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// An Event to publish on the object being changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventSpec {
    pub warning: bool,
    pub reason: &'static str,
    pub note: String,
}

impl EventSpec {
    /// Logs it too: a warning as a warning.
    pub fn log(&self) {
        if self.warning {
            tracing::warn!(reason = self.reason, "{}", self.note);
        } else {
            tracing::info!(reason = self.reason, "{}", self.note);
        }
    }
}

/// A condition of `type_`; its transition time stays what it was unless the status changed,
/// else `now`.
pub fn condition(
    type_: &str,
    ok: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
    old: &[Condition],
    now: &Time,
) -> Condition {
    let status = if ok { "True" } else { "False" }.to_string();
    // Keep the transition time unless the status really changed.
    let last_transition_time = old
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| now.clone());
    Condition {
        type_: type_.to_string(),
        status,
        reason: reason.to_string(),
        message,
        observed_generation: generation,
        last_transition_time,
    }
}

/// Whether two condition lists differ in anything but timestamps.
pub fn conditions_differ(a: &[Condition], b: &[Condition]) -> bool {
    let strip = |cs: &[Condition]| {
        cs.iter()
            .map(|c| {
                (
                    c.type_.clone(),
                    c.status.clone(),
                    c.reason.clone(),
                    c.message.clone(),
                    c.observed_generation,
                )
            })
            .collect::<Vec<_>>()
    };
    strip(a) != strip(b)
}
