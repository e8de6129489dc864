//! Parameters of the Kubernetes faults that run inside a pod through an ephemeral
//! container: `pod-cpu-hog`, `pod-memory-hog`, `pod-net-delay` and `pod-net-loss`.
//!
//! Each takes the image holding `chaos-runner` (the runner's own by default) and the
//! container whose process namespace the helper joins (the pod's first container when
//! absent).

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};
use std::time::Duration;

use super::kube::is_dns_label;
use super::{CheckParams, Problems};

/// The image ephemeral helper containers run when `image` is not given: the runner's own,
/// built from `chaos-runner/deploy/Dockerfile`.
pub const DEFAULT_IMAGE: &str = "chaos-runner:latest";

/// The interface netem shapes when `interface` is not given (a pod's usual one).
pub const DEFAULT_INTERFACE: &str = "eth0";

fn default_image() -> String {
    DEFAULT_IMAGE.to_owned()
}

fn default_interface() -> String {
    DEFAULT_INTERFACE.to_owned()
}

fn yes() -> bool {
    true
}

/// A container image reference: 1 to 512 of `[A-Za-z0-9./:@_-]`, starting alphanumeric.
///
/// ```
/// use chaos_runner::spec::params::pod_helper::is_image;
/// assert!(is_image("registry.example/chaos-runner:1.0"));
/// assert!(!is_image("x; rm -rf /"));
/// ```
pub fn is_image(image: &str) -> bool {
    (1..=512).contains(&image.len())
        && image
            .bytes()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && image.bytes().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, b'.' | b'/' | b':' | b'@' | b'_' | b'-')
        })
}

/// A network interface name as Linux takes it: 1 to 15 of `[A-Za-z0-9._-]`.
fn is_interface(name: &str) -> bool {
    (1..=15).contains(&name.len())
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

fn check_helper(image: &str, container: Option<&str>, at: &str, problems: &mut Problems) {
    problems.check(
        is_image(image),
        format!("{at}.image"),
        "must be an image reference (`registry/name:tag` or `name@sha256:...`)",
    );
    if let Some(c) = container {
        problems.check(
            is_dns_label(c),
            format!("{at}.container"),
            "must be a container name (1-63 lowercase letters, digits or dashes)",
        );
    }
}

/// `pod-cpu-hog` parameters: an ephemeral container in each picked pod running
/// `chaos-runner stress cpu` until the fault's duration is up.
///
/// ```
/// let p: chaos_runner::spec::PodCpuHogParams =
///     serde_json::from_value(serde_json::json!({"workers": 2, "load": 80})).unwrap();
/// assert_eq!(p.image, chaos_runner::spec::params::pod_helper::DEFAULT_IMAGE);
/// assert_eq!(p.container, None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PodCpuHogParams {
    /// Busy threads (1 to 256).
    pub workers: u32,
    /// Busy share of each thread in percent (1 to 100).
    pub load: u8,
    /// The image holding `chaos-runner` (default: the runner's own image).
    #[serde(default = "default_image")]
    pub image: String,
    /// The container whose process namespace the hog joins (default: the pod's first).
    #[serde(default)]
    pub container: Option<String>,
}

impl CheckParams for PodCpuHogParams {
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
        check_helper(&self.image, self.container.as_deref(), at, problems);
    }
}

/// `pod-memory-hog` parameters: an ephemeral container in each picked pod running
/// `chaos-runner stress memory` until the fault's duration is up. The memory counts
/// against the pod's cgroup (and node), not the target container's limit.
///
/// ```
/// let p: chaos_runner::spec::PodMemoryHogParams =
///     serde_json::from_value(serde_json::json!({"bytes": "256 MiB"})).unwrap();
/// assert_eq!(p.bytes.as_u64(), 256 << 20);
/// assert!(p.touch);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PodMemoryHogParams {
    /// How much to hold (4 KiB to 64 GiB).
    pub bytes: ByteSize,
    /// Write every page so the memory is resident (default true).
    #[serde(default = "yes")]
    pub touch: bool,
    /// The image holding `chaos-runner` (default: the runner's own image).
    #[serde(default = "default_image")]
    pub image: String,
    /// The container whose process namespace the hog joins (default: the pod's first).
    #[serde(default)]
    pub container: Option<String>,
}

impl CheckParams for PodMemoryHogParams {
    fn check(&self, at: &str, problems: &mut Problems) {
        problems.check(
            (4096..=64 << 30).contains(&self.bytes.as_u64()),
            format!("{at}.bytes"),
            "must be between 4 KiB and 64 GiB",
        );
        check_helper(&self.image, self.container.as_deref(), at, problems);
    }
}

/// `pod-net-delay` parameters: an ephemeral container with `NET_ADMIN` in each picked
/// pod adds a netem root qdisc (delay, optional jitter and loss) to `interface` and
/// removes it when the fault's duration is up.
///
/// ```
/// let p: chaos_runner::spec::PodNetDelayParams =
///     serde_json::from_value(serde_json::json!({"delay": "100ms", "jitter": "10ms"})).unwrap();
/// assert_eq!(p.delay, std::time::Duration::from_millis(100));
/// assert_eq!(p.interface, "eth0");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PodNetDelayParams {
    /// Added delay (1 ms to 60 s).
    #[serde(with = "humantime_serde")]
    pub delay: Duration,
    /// Random variation around the delay (at most the delay; default none).
    #[serde(default, with = "humantime_serde")]
    pub jitter: Duration,
    /// Share of packets also dropped, in percent (0 to 100; default 0).
    #[serde(default)]
    pub loss_percent: f64,
    /// The pod's interface (default `eth0`).
    #[serde(default = "default_interface")]
    pub interface: String,
    /// The image holding `chaos-runner` and `tc` (default: the runner's own image).
    #[serde(default = "default_image")]
    pub image: String,
    /// The container whose process namespace the helper joins (default: the pod's first).
    #[serde(default)]
    pub container: Option<String>,
}

impl CheckParams for PodNetDelayParams {
    fn check(&self, at: &str, problems: &mut Problems) {
        problems.check(
            self.delay >= Duration::from_millis(1) && self.delay <= Duration::from_secs(60),
            format!("{at}.delay"),
            "must be between 1ms and 60s",
        );
        problems.check(
            self.jitter <= self.delay,
            format!("{at}.jitter"),
            "must not exceed the delay",
        );
        check_loss(self.loss_percent, true, at, problems);
        check_interface(&self.interface, at, problems);
        check_helper(&self.image, self.container.as_deref(), at, problems);
    }
}

/// `pod-net-loss` parameters: like `pod-net-delay`, dropping a share of packets only.
///
/// ```
/// let p: chaos_runner::spec::PodNetLossParams =
///     serde_json::from_value(serde_json::json!({"lossPercent": 5})).unwrap();
/// assert_eq!(p.loss_percent, 5.0);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PodNetLossParams {
    /// Share of packets dropped, in percent (above 0, at most 100).
    pub loss_percent: f64,
    /// The pod's interface (default `eth0`).
    #[serde(default = "default_interface")]
    pub interface: String,
    /// The image holding `chaos-runner` and `tc` (default: the runner's own image).
    #[serde(default = "default_image")]
    pub image: String,
    /// The container whose process namespace the helper joins (default: the pod's first).
    #[serde(default)]
    pub container: Option<String>,
}

impl CheckParams for PodNetLossParams {
    fn check(&self, at: &str, problems: &mut Problems) {
        check_loss(self.loss_percent, false, at, problems);
        check_interface(&self.interface, at, problems);
        check_helper(&self.image, self.container.as_deref(), at, problems);
    }
}

/// A signal a PID namespace's init can be sent from inside its namespace: one it may
/// catch. (SIGKILL and SIGSTOP from inside are dropped by the kernel, always.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum CatchableSignal {
    /// SIGTERM (the default): the usual "shut down".
    #[default]
    #[serde(rename = "TERM")]
    Term,
    /// SIGINT.
    #[serde(rename = "INT")]
    Int,
    /// SIGQUIT.
    #[serde(rename = "QUIT")]
    Quit,
    /// SIGHUP.
    #[serde(rename = "HUP")]
    Hup,
}

impl CatchableSignal {
    /// The name as written and as `chaos-runner stress signal-init --signal` takes it.
    ///
    /// ```
    /// assert_eq!(chaos_runner::spec::params::pod_helper::CatchableSignal::Term.name(), "TERM");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            CatchableSignal::Term => "TERM",
            CatchableSignal::Int => "INT",
            CatchableSignal::Quit => "QUIT",
            CatchableSignal::Hup => "HUP",
        }
    }

    /// The signal number.
    ///
    /// ```
    /// use chaos_runner::spec::params::pod_helper::CatchableSignal;
    /// assert_eq!(CatchableSignal::Hup.number(), libc::SIGHUP);
    /// ```
    pub fn number(self) -> libc::c_int {
        match self {
            CatchableSignal::Term => libc::SIGTERM,
            CatchableSignal::Int => libc::SIGINT,
            CatchableSignal::Quit => libc::SIGQUIT,
            CatchableSignal::Hup => libc::SIGHUP,
        }
    }

    /// Parses a name (`TERM`, `INT`, `QUIT`, `HUP`).
    pub fn parse(name: &str) -> Option<CatchableSignal> {
        [
            CatchableSignal::Term,
            CatchableSignal::Int,
            CatchableSignal::Quit,
            CatchableSignal::Hup,
        ]
        .into_iter()
        .find(|s| s.name() == name)
    }
}

fn two_minutes() -> Duration {
    Duration::from_secs(120)
}

/// `container-kill` parameters: a one-shot ephemeral container joins `container`'s process
/// namespace and sends its main process (the namespace's PID 1) `signal`, after checking
/// that the process catches it (the kernel drops uncaught signals sent to an init from
/// inside its namespace, SIGKILL included). The kubelet then restarts the container.
///
/// ```
/// let p: chaos_runner::spec::ContainerKillParams =
///     serde_json::from_value(serde_json::json!({"container": "app"})).unwrap();
/// assert_eq!(p.signal.name(), "TERM");
/// assert_eq!(p.restart_timeout, std::time::Duration::from_secs(120));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ContainerKillParams {
    /// The container to kill.
    pub container: String,
    /// `TERM` (default), `INT`, `QUIT` or `HUP`.
    #[serde(default)]
    pub signal: CatchableSignal,
    /// How long the container may take to be restarted and Ready (1s to 1h, default 2m).
    #[serde(default = "two_minutes", with = "humantime_serde")]
    pub restart_timeout: Duration,
    /// The image holding `chaos-runner` (default: the runner's own image).
    #[serde(default = "default_image")]
    pub image: String,
}

impl CheckParams for ContainerKillParams {
    fn check(&self, at: &str, problems: &mut Problems) {
        problems.check(
            self.restart_timeout >= Duration::from_secs(1)
                && self.restart_timeout <= Duration::from_secs(3600),
            format!("{at}.restartTimeout"),
            "must be between 1s and 1h",
        );
        check_helper(&self.image, Some(&self.container), at, problems);
    }
}

fn check_loss(loss: f64, zero_ok: bool, at: &str, problems: &mut Problems) {
    let ok = loss.is_finite() && loss <= 100.0 && (loss > 0.0 || (zero_ok && loss == 0.0));
    problems.check(
        ok,
        format!("{at}.lossPercent"),
        if zero_ok {
            "must be a percentage between 0 and 100"
        } else {
            "must be a percentage above 0, at most 100"
        },
    );
}

fn check_interface(name: &str, at: &str, problems: &mut Problems) {
    problems.check(
        is_interface(name),
        format!("{at}.interface"),
        "must be an interface name (1-15 of A-Z a-z 0-9 . _ -)",
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems_of<T: CheckParams + serde::de::DeserializeOwned>(
        v: serde_json::Value,
    ) -> Vec<String> {
        let p: T = serde_json::from_value(v).unwrap();
        let mut problems = Problems::default();
        p.check("p", &mut problems);
        problems.found().iter().map(|(f, _)| f.clone()).collect()
    }

    #[test]
    fn bad_values_name_their_field() {
        assert_eq!(
            problems_of::<PodCpuHogParams>(
                serde_json::json!({"workers": 0, "load": 101, "image": "a b", "container": "Bad_Name"})
            ),
            ["p.workers", "p.load", "p.image", "p.container"]
        );
        assert_eq!(
            problems_of::<PodNetDelayParams>(
                serde_json::json!({"delay": "10ms", "jitter": "20ms", "lossPercent": -1, "interface": "eth0;x"})
            ),
            ["p.jitter", "p.lossPercent", "p.interface"]
        );
        assert_eq!(
            problems_of::<PodNetLossParams>(serde_json::json!({"lossPercent": 0})),
            ["p.lossPercent"]
        );
        assert_eq!(
            problems_of::<PodMemoryHogParams>(serde_json::json!({"bytes": 10})),
            ["p.bytes"]
        );
        assert!(
            problems_of::<PodNetLossParams>(serde_json::json!({"lossPercent": 2.5})).is_empty()
        );
    }
}
