//! Parameters of the resource faults: CPU hog, memory hog and disk fill, with optional
//! cgroup (v1) confinement of the hogs.

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};

use super::{only, CheckParams, Problems};
use crate::spec::model::Selector;

/// CPU hog parameters.
///
/// ```
/// let p = chaos_runner::spec::CpuHogParams { workers: 2, load: 80, ..Default::default() };
/// assert_eq!(p.workers, 2);
/// assert!(!p.cgroup);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CpuHogParams {
    /// Busy threads (1 to 256).
    pub workers: u32,
    /// Load per thread in percent (1 to 100).
    pub load: u8,
    /// Run the hog in its own cgroup (v1 `cpu` + `cpuacct`) and report its measured CPU
    /// time.
    #[serde(default)]
    pub cgroup: bool,
    /// CPU quota of that cgroup in percent of one CPU (1 to 25600; needs `cgroup: true`).
    #[serde(default)]
    pub cpu_quota_percent: Option<u32>,
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
        if let Some(quota) = self.cpu_quota_percent {
            problems.check(
                (1..=25_600).contains(&quota),
                format!("{at}.cpuQuotaPercent"),
                "must be between 1 and 25600 (percent of one CPU)",
            );
            problems.check(
                self.cgroup,
                format!("{at}.cpuQuotaPercent"),
                "needs `cgroup: true`",
            );
        }
    }
}

/// The largest hog or fill one fault may ask for (1 TiB).
const MAX_BYTES: u64 = 1 << 40;

/// Memory hog parameters.
///
/// ```
/// let p: chaos_runner::spec::MemoryHogParams =
///     serde_json::from_value(serde_json::json!({"bytes": "64 MiB"})).unwrap();
/// assert_eq!(p.bytes.as_u64(), 64 << 20);
/// assert!(p.touch);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MemoryHogParams {
    /// How much to allocate (`256 MiB`, `1 GiB` or a number of bytes; 4 KiB to 1 TiB).
    pub bytes: ByteSize,
    /// Write every page so the memory is really resident (default true).
    #[serde(default = "yes")]
    pub touch: bool,
    /// Run the hog in its own cgroup (v1 `memory`) and report its peak usage.
    #[serde(default)]
    pub cgroup: bool,
    /// The cgroup's memory limit (`memory.limit_in_bytes`; needs `cgroup: true`): a hog
    /// above it is OOM-killed inside its cgroup, not elsewhere.
    #[serde(default)]
    pub memory_limit: Option<ByteSize>,
}

fn yes() -> bool {
    true
}

impl CheckParams for MemoryHogParams {
    fn check(&self, at: &str, problems: &mut Problems) {
        problems.check(
            (4096..=MAX_BYTES).contains(&self.bytes.as_u64()),
            format!("{at}.bytes"),
            "must be between 4 KiB and 1 TiB",
        );
        if let Some(limit) = self.memory_limit {
            problems.check(
                (1 << 20..=MAX_BYTES).contains(&limit.as_u64()),
                format!("{at}.memoryLimit"),
                "must be between 1 MiB and 1 TiB",
            );
            problems.check(
                self.cgroup,
                format!("{at}.memoryLimit"),
                "needs `cgroup: true`",
            );
        }
    }
}

/// Disk fill parameters: exactly one of `bytes` and `percentOfFree`; the fill never
/// leaves less free than the larger of `minFreeBytes` and `safetyFloorPercent` of the
/// filesystem.
///
/// ```
/// let p: chaos_runner::spec::DiskFillParams =
///     serde_json::from_value(serde_json::json!({"path": "/tmp", "percentOfFree": 50})).unwrap();
/// assert_eq!(p.floor(100 << 30), 5 << 30); // 5% of 100 GiB is above the 1 GiB default
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DiskFillParams {
    /// An existing directory (absolute path) on the filesystem to fill.
    pub path: String,
    /// How much to write.
    #[serde(default)]
    pub bytes: Option<ByteSize>,
    /// How much to write, in percent of the free space at injection (1 to 100).
    #[serde(default)]
    pub percent_of_free: Option<u8>,
    /// Free space never to go below (default 1 GiB).
    #[serde(default = "one_gib")]
    pub min_free_bytes: ByteSize,
    /// Free space never to go below, in percent of the filesystem (0 to 100, default 5).
    #[serde(default = "five")]
    pub safety_floor_percent: f64,
}

fn one_gib() -> ByteSize {
    ByteSize::gib(1)
}

fn five() -> f64 {
    5.0
}

impl DiskFillParams {
    /// The free space to keep on a filesystem of `total` bytes: the larger of
    /// `minFreeBytes` and `safetyFloorPercent` of `total`.
    pub fn floor(&self, total: u64) -> u64 {
        let share = (total as f64 * self.safety_floor_percent / 100.0).ceil() as u64;
        share.max(self.min_free_bytes.as_u64())
    }
}

impl CheckParams for DiskFillParams {
    fn check(&self, at: &str, problems: &mut Problems) {
        problems.check(
            self.path.starts_with('/'),
            format!("{at}.path"),
            "must be an absolute path",
        );
        problems.check(
            self.bytes.is_some() != self.percent_of_free.is_some(),
            at.to_owned(),
            "needs exactly one of `bytes` and `percentOfFree`",
        );
        if let Some(bytes) = self.bytes {
            problems.check(
                (1..=MAX_BYTES).contains(&bytes.as_u64()),
                format!("{at}.bytes"),
                "must be between 1 byte and 1 TiB",
            );
        }
        if let Some(p) = self.percent_of_free {
            problems.check(
                (1..=100).contains(&p),
                format!("{at}.percentOfFree"),
                "must be a percentage between 1 and 100",
            );
        }
        problems.check(
            (0.0..=100.0).contains(&self.safety_floor_percent),
            format!("{at}.safetyFloorPercent"),
            "must be a percentage between 0 and 100",
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
