//! Parameters of the resource faults: CPU hog (memory hog and disk fill join here).

use serde::{Deserialize, Serialize};

use super::{only, CheckParams, Problems};
use crate::spec::model::Selector;

/// CPU hog parameters.
///
/// ```
/// let p = chaos_runner::spec::CpuHogParams { workers: 2, load: 80 };
/// assert_eq!(p.workers, 2);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpuHogParams {
    /// Busy threads (1 to 256).
    pub workers: u32,
    /// Load per thread in percent (1 to 100).
    pub load: u8,
}

impl CheckParams for CpuHogParams {
    fn check(&self, at: &str, problems: &mut Problems) {
        problems.check(
            (1..=256).contains(&self.workers),
            format!("{at}.workers"),
            "must be between 1 and 256",
        );
        problems.check(
            (1..=100).contains(&self.load),
            format!("{at}.load"),
            "must be a percentage between 1 and 100",
        );
    }
}

/// Resource faults run on this machine: they need `host: localhost` and nothing else.
pub(super) fn check_host_selector(selector: &Selector, at: &str, problems: &mut Problems) {
    match selector.host.as_deref() {
        None => {
            problems.check(
                false,
                at.to_owned(),
                "needs a selector (`host: localhost` for local resource faults)",
            );
        }
        Some(host) => {
            problems.check(
                matches!(host, "localhost" | "127.0.0.1" | "::1"),
                format!("{at}.host"),
                "the local backend only injects on `localhost`",
            );
        }
    }
    only(selector, at, &["host"], problems);
}
