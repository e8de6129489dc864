//! The experiment file model (`kind: Experiment`), as written in YAML.
//!
//! Field names are camelCase; unknown fields are refused everywhere. Checks that need more
//! than one field live in [`super::validate`].

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// The one API version this runner reads.
pub const API_VERSION: &str = "chaos.game-resilience.dev/v1";

/// A chaos experiment.
///
/// ```
/// let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../experiments/local/cpu-hog.yaml")).unwrap();
/// let exp = chaos_runner::spec::parse_experiment("cpu-hog.yaml", &text).unwrap();
/// assert_eq!(exp.spec.faults[0].fault_type, chaos_runner::spec::FaultType::CpuHog);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Experiment {
    /// Must be `chaos.game-resilience.dev/v1`.
    pub api_version: String,
    /// Must be `Experiment`.
    pub kind: String,
    /// Name, description (state the hypothesis), labels.
    pub metadata: Metadata,
    /// What to inject, where, and when to stop.
    pub spec: ExperimentSpec,
}

/// Name and description of an experiment or SLO set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    /// Lowercase letters, digits and dashes, 1 to 63 characters.
    pub name: String,
    /// What the experiment expects to hold (the hypothesis).
    #[serde(default)]
    pub description: String,
    /// Free-form labels copied into reports.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// The body of an experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExperimentSpec {
    /// Where faults are injected.
    pub target: Target,
    /// SLO file (`kind: SLOSet`) the conditions refer to, relative to this file.
    #[serde(default)]
    pub slo_file: Option<String>,
    /// The Prometheus server conditions and probes query.
    #[serde(default)]
    pub prometheus: Option<PrometheusSource>,
    /// Checks that must hold before the faults go in and after they come out.
    #[serde(default)]
    pub steady_state: Vec<Check>,
    /// The faults, injected together and held for their duration.
    pub faults: Vec<FaultSpec>,
    /// Conditions checked while faults are live; any breach aborts and reverts at once.
    #[serde(default)]
    pub abort_when: Vec<Check>,
    /// How often conditions are checked (100 ms to 1 min).
    #[serde(default = "default_interval", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub check_interval: Duration,
    /// Refuse to start when an SLO's remaining error budget is below a share.
    #[serde(default)]
    pub error_budget_gate: Option<ErrorBudgetGate>,
    /// Where reports go and in which formats.
    #[serde(default)]
    pub report: ReportSpec,
    /// The built-in load generator: virtual players driving the game API for the whole
    /// run; its client-side SLIs feed `load` checks.
    #[serde(default)]
    pub load: Option<LoadSpec>,
    /// Services the runner starts before the run (each supervised, in its own temporary
    /// directory, in order) and stops after it, on every exit path.
    #[serde(default)]
    pub setup: Vec<SetupService>,
    /// Live indicators: values read from the target while the run goes on (a circuit
    /// breaker's state, a queue's depth), shown on the terminal and recorded in the report
    /// each time they change. They never fail or abort a run.
    #[serde(default)]
    pub indicators: Vec<Indicator>,
}

/// A value shown live during a run: either read straight from a metrics endpoint (the
/// service's own `/metrics`, no Prometheus needed) or an instant PromQL query.
///
/// ```yaml
/// indicators:
///   - name: saves-breaker
///     metricsUrl: http://127.0.0.1:18080/metrics
///     metric: resilience_circuit_state
///     labels: { policy: save_writes }
///     stateLabel: state          # shows `closed`, `open` or `half_open`
///   - name: save-queue
///     metricsUrl: http://127.0.0.1:18080/metrics
///     metric: game_save_queue_depth
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Indicator {
    /// Name shown on the terminal and in reports.
    pub name: String,
    /// A Prometheus text or OpenMetrics endpoint to read (loopback unless `allowRemote`).
    #[serde(default)]
    pub metrics_url: Option<String>,
    /// The metric (sample name) to read from `metricsUrl`.
    #[serde(default)]
    pub metric: Option<String>,
    /// Label values a sample must carry to count.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Show this label of the matching sample whose value is 1 (a state-set gauge such as
    /// `resilience_circuit_state`) instead of the sum of the matching samples.
    #[serde(default)]
    pub state_label: Option<String>,
    /// Or: an instant PromQL query on `spec.prometheus`.
    #[serde(default)]
    pub query: Option<String>,
    /// Allow a `metricsUrl` that is not on a loopback address.
    #[serde(default)]
    pub allow_remote: bool,
}

fn default_interval() -> Duration {
    Duration::from_secs(1)
}

/// Where faults are injected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Target {
    /// `local` (this machine) or `kubernetes`.
    pub backend: Backend,
}

/// Fault backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// This machine.
    Local,
    /// A Kubernetes cluster (kubeconfig or in-cluster service account).
    Kubernetes,
}

/// A Prometheus HTTP API endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrometheusSource {
    /// Base URL, e.g. `http://127.0.0.1:9090`. `${VAR}` is replaced from the environment.
    pub url: String,
    /// Environment variable holding a bearer token (never logged).
    #[serde(default)]
    pub bearer_token_env: Option<String>,
    /// File holding a bearer token (never logged).
    #[serde(default)]
    pub bearer_token_file: Option<String>,
    /// Timeout of one query.
    #[serde(default = "default_query_timeout", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub timeout: Duration,
    /// Abort after this many failed checks in a row (fail closed).
    #[serde(default = "default_fail_after")]
    pub fail_after: u32,
}

fn default_query_timeout() -> Duration {
    Duration::from_secs(2)
}

fn default_fail_after() -> u32 {
    3
}

/// A steady-state check or abort condition: exactly one of `prometheus`, `sloBurnRate`,
/// `http`, `host` or `load`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Check {
    /// Name shown in progress, reports and JUnit.
    pub name: String,
    /// A PromQL expression compared with a threshold.
    #[serde(default)]
    pub prometheus: Option<PromThreshold>,
    /// An SLO's burn rate over a window (the runner writes the PromQL).
    #[serde(default)]
    pub slo_burn_rate: Option<BurnRate>,
    /// An HTTP probe.
    #[serde(default)]
    pub http: Option<HttpProbe>,
    /// A reading of this machine (CPU, memory, load), needing no Prometheus.
    #[serde(default)]
    pub host: Option<HostSignal>,
    /// A client-side SLI of the built-in load generator (`spec.load`).
    #[serde(default)]
    pub load: Option<LoadCheck>,
    /// Breaches in a row before the condition fires (abort conditions only).
    #[serde(default = "one", rename = "for")]
    pub for_checks: u32,
}

fn one() -> u32 {
    1
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Comparison {
    /// greater than
    #[serde(rename = ">")]
    Gt,
    /// greater than or equal
    #[serde(rename = ">=")]
    Ge,
    /// less than
    #[serde(rename = "<")]
    Lt,
    /// less than or equal
    #[serde(rename = "<=")]
    Le,
    /// equal
    #[serde(rename = "==")]
    Eq,
    /// not equal
    #[serde(rename = "!=")]
    Ne,
}

impl Comparison {
    /// Whether `value <op> threshold` holds.
    ///
    /// ```
    /// use chaos_runner::spec::Comparison;
    /// assert!(Comparison::Gt.holds(2.0, 1.0));
    /// assert!(!Comparison::Le.holds(2.0, 1.0));
    /// ```
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparison::Gt => value > threshold,
            Comparison::Ge => value >= threshold,
            Comparison::Lt => value < threshold,
            Comparison::Le => value <= threshold,
            Comparison::Eq => value == threshold,
            Comparison::Ne => value != threshold,
        }
    }

    /// The operator as written.
    ///
    /// ```
    /// assert_eq!(chaos_runner::spec::Comparison::Ge.symbol(), ">=");
    /// ```
    pub fn symbol(self) -> &'static str {
        match self {
            Comparison::Gt => ">",
            Comparison::Ge => ">=",
            Comparison::Lt => "<",
            Comparison::Le => "<=",
            Comparison::Eq => "==",
            Comparison::Ne => "!=",
        }
    }
}

/// What an empty query result means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnEmpty {
    /// No data is a breach (the safe default: a dead exporter aborts).
    #[default]
    Breach,
    /// No data is fine.
    Ignore,
}

/// A PromQL query compared with a threshold: `query <breachWhen> threshold` is the bad
/// state, which aborts a run (abort conditions) or fails it (steady-state checks).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PromThreshold {
    /// An instant PromQL query returning one number (the first sample is used).
    pub query: String,
    /// The comparison that means "breached".
    pub breach_when: Comparison,
    /// The threshold compared with.
    pub threshold: f64,
    /// What an empty result means.
    #[serde(default)]
    pub on_empty: OnEmpty,
}

/// An SLO burn-rate condition: breached when the SLO's error budget burns faster than
/// `maxBurnRate` times the sustainable rate over `window`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BurnRate {
    /// SLO name from the SLO file.
    pub slo: String,
    /// Look-back window (e.g. `5m`).
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub window: Duration,
    /// Burn-rate limit (14.4 burns a 30-day budget's 2% in one hour).
    pub max_burn_rate: f64,
    /// What an empty result means.
    #[serde(default)]
    pub on_empty: OnEmpty,
}

/// An HTTP probe: breached when the status differs, the answer is slower than
/// `maxLatency`, or the body lacks `bodyContains`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpProbe {
    /// URL to GET.
    pub url: String,
    /// Expected status code.
    #[serde(default = "ok_status")]
    pub expect_status: u16,
    /// Slowest acceptable answer.
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "Option<String>")]
    pub max_latency: Option<Duration>,
    /// Text the body must contain.
    #[serde(default)]
    pub body_contains: Option<String>,
    /// Request timeout.
    #[serde(default = "default_query_timeout", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub timeout: Duration,
}

fn ok_status() -> u16 {
    200
}

/// A reading of the local machine compared with a threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HostSignal {
    /// What to read.
    pub metric: HostMetric,
    /// The comparison that means "breached".
    pub breach_when: Comparison,
    /// The threshold compared with.
    pub threshold: f64,
}

/// Readings of the local machine, from `/proc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum HostMetric {
    /// Share of CPU time not idle since the previous check, all CPUs, in percent.
    CpuBusyPercent,
    /// Memory in use (total minus available), in percent.
    MemoryUsedPercent,
    /// One-minute load average.
    Load1,
}

/// Fault types this runner knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum FaultType {
    /// Burns CPU: `workers` busy loops at `load` percent each.
    CpuHog,
    /// Drops a share of matching packets (nftables `numgen random`).
    NetLoss,
    /// Drops or rejects every matching packet (nftables).
    NetPartition,
    /// Caps an interface's egress rate (tc `tbf`).
    NetBandwidth,
    /// Delays (and optionally drops) an interface's egress packets (tc `netem`; needs a
    /// kernel with `sch_netem`).
    NetDelay,
    /// Allocates and holds memory (`bytes`), optionally in a cgroup with a limit.
    MemoryHog,
    /// Fills a filesystem with one file, never past a safety floor of free space.
    DiskFill,
    /// Kills a process (SIGKILL or SIGTERM).
    ProcessKill,
    /// Pauses a process (SIGSTOP) until the fault ends (SIGCONT).
    ProcessPause,
    /// Kills a supervised process and starts it again.
    ProcessRestart,
    /// TCP proxy toxic: adds `latency` (+/- `jitter`) to every chunk.
    ProxyLatency,
    /// TCP proxy toxic: limits throughput to `rate` KB/s.
    ProxyBandwidth,
    /// TCP proxy toxic: delays the close of connections by `delay`.
    ProxySlowClose,
    /// TCP proxy toxic: holds all data (`timeout: 0` = partition until reverted), or
    /// closes connections after `timeout`.
    ProxyTimeout,
    /// TCP proxy toxic: resets connections (TCP RST) after `timeout`.
    ProxyResetPeer,
    /// TCP proxy toxic: cuts data into small delayed slices.
    ProxySlicer,
    /// TCP proxy toxic: closes connections after `bytes` bytes.
    ProxyLimitData,
    /// TCP proxy toxic: drops (or, with `delay`, delays) a share of chunks.
    ProxyLoss,
    /// TCP proxy down: refuses new connections and cuts open ones.
    ProxyDown,
    /// PostgreSQL: statements matching a pattern fail with a chosen SQLSTATE.
    PostgresError,
    /// PostgreSQL: statements matching a pattern are delayed.
    PostgresLatency,
    /// PostgreSQL: the connection is reset mid-query on statements matching a pattern.
    PostgresReset,
    /// PostgreSQL: new connections are refused at startup (53300, 57P03) or dropped.
    PostgresRefuse,
    /// Redis: commands matching a pattern fail with a RESP error (`-READONLY`, ...).
    RedisError,
    /// Redis: commands matching a pattern are delayed.
    RedisLatency,
    /// Kubernetes: deletes (or evicts) the picked pods.
    PodKill,
    /// Kubernetes: a NetworkPolicy cutting the picked pods off (ingress, egress or both).
    NetworkPartition,
    /// Kubernetes: a NetworkPolicy denying the picked pods' egress to a database port.
    DbPartition,
    /// Kubernetes: an ephemeral container burning CPU in each picked pod.
    PodCpuHog,
    /// Kubernetes: an ephemeral container holding memory in each picked pod.
    PodMemoryHog,
    /// Kubernetes: an ephemeral container (NET_ADMIN) adding a netem delay in each picked pod.
    PodNetDelay,
    /// Kubernetes: an ephemeral container (NET_ADMIN) adding netem packet loss in each picked pod.
    PodNetLoss,
    /// Kubernetes: a container of each picked pod is sent a signal it catches, and restarts.
    ContainerKill,
}

impl FaultType {
    /// The name as written in experiment files (`cpu-hog`).
    ///
    /// ```
    /// assert_eq!(chaos_runner::spec::FaultType::CpuHog.name(), "cpu-hog");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            FaultType::CpuHog => "cpu-hog",
            FaultType::NetLoss => "net-loss",
            FaultType::NetPartition => "net-partition",
            FaultType::NetBandwidth => "net-bandwidth",
            FaultType::NetDelay => "net-delay",
            FaultType::MemoryHog => "memory-hog",
            FaultType::DiskFill => "disk-fill",
            FaultType::ProcessKill => "process-kill",
            FaultType::ProcessPause => "process-pause",
            FaultType::ProcessRestart => "process-restart",
            FaultType::ProxyLatency => "proxy-latency",
            FaultType::ProxyBandwidth => "proxy-bandwidth",
            FaultType::ProxySlowClose => "proxy-slow-close",
            FaultType::ProxyTimeout => "proxy-timeout",
            FaultType::ProxyResetPeer => "proxy-reset-peer",
            FaultType::ProxySlicer => "proxy-slicer",
            FaultType::ProxyLimitData => "proxy-limit-data",
            FaultType::ProxyLoss => "proxy-loss",
            FaultType::ProxyDown => "proxy-down",
            FaultType::PostgresError => "postgres-error",
            FaultType::PostgresLatency => "postgres-latency",
            FaultType::PostgresReset => "postgres-reset",
            FaultType::PostgresRefuse => "postgres-refuse",
            FaultType::RedisError => "redis-error",
            FaultType::RedisLatency => "redis-latency",
            FaultType::PodKill => "pod-kill",
            FaultType::NetworkPartition => "network-partition",
            FaultType::DbPartition => "db-partition",
            FaultType::PodCpuHog => "pod-cpu-hog",
            FaultType::PodMemoryHog => "pod-memory-hog",
            FaultType::PodNetDelay => "pod-net-delay",
            FaultType::PodNetLoss => "pod-net-loss",
            FaultType::ContainerKill => "container-kill",
        }
    }

    /// The backend that runs this fault type.
    ///
    /// ```
    /// use chaos_runner::spec::{Backend, FaultType};
    /// assert_eq!(FaultType::PodKill.backend(), Backend::Kubernetes);
    /// assert_eq!(FaultType::CpuHog.backend(), Backend::Local);
    /// ```
    pub fn backend(self) -> Backend {
        match self {
            FaultType::PodKill
            | FaultType::NetworkPartition
            | FaultType::DbPartition
            | FaultType::PodCpuHog
            | FaultType::PodMemoryHog
            | FaultType::PodNetDelay
            | FaultType::PodNetLoss
            | FaultType::ContainerKill => Backend::Kubernetes,
            _ => Backend::Local,
        }
    }

    /// Whether this fault type runs on `backend`: its own [`FaultType::backend`], and
    /// for the database faults (`postgres-*`, `redis-*`) Kubernetes too (through a proxy
    /// Deployment in front of the database's Service).
    ///
    /// ```
    /// use chaos_runner::spec::{Backend, FaultType};
    /// assert!(FaultType::PostgresLatency.runs_on(Backend::Kubernetes));
    /// assert!(FaultType::PostgresLatency.runs_on(Backend::Local));
    /// assert!(!FaultType::CpuHog.runs_on(Backend::Kubernetes));
    /// ```
    pub fn runs_on(self, backend: Backend) -> bool {
        self.backend() == backend || (backend == Backend::Kubernetes && self.is_db())
    }

    /// Whether this is a protocol-aware database fault (`postgres-*`, `redis-*`).
    ///
    /// ```
    /// assert!(chaos_runner::spec::FaultType::RedisError.is_db());
    /// ```
    pub fn is_db(self) -> bool {
        matches!(
            self,
            FaultType::PostgresError
                | FaultType::PostgresLatency
                | FaultType::PostgresReset
                | FaultType::PostgresRefuse
                | FaultType::RedisError
                | FaultType::RedisLatency
        )
    }
}

/// One fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultSpec {
    /// Name shown in plans, progress and reports.
    pub name: String,
    /// The kind of fault.
    #[serde(rename = "type")]
    pub fault_type: FaultType,
    /// What the fault hits.
    pub selector: Selector,
    /// Type-specific parameters (cpu-hog: `workers`, `load`).
    #[serde(default)]
    pub parameters: BTreeMap<String, serde_json::Value>,
    /// How long the fault stays in (1 s to 24 h).
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub duration: Duration,
    /// Grow the fault in steps, checking conditions between them.
    #[serde(default)]
    pub ramp: Option<Ramp>,
}

/// A ramp: each step overrides some parameters and lasts `duration / steps`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Ramp {
    /// Parameter overrides per step, smallest first.
    pub steps: Vec<BTreeMap<String, serde_json::Value>>,
}

/// What a fault hits. The local backend's resource faults take `host: localhost`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Selector {
    /// A host; the local backend only accepts `localhost`.
    #[serde(default)]
    pub host: Option<String>,
    /// Traffic of this machine (or of a named network namespace) for the `net-*` faults.
    #[serde(default)]
    pub network: Option<NetworkSelector>,
    /// A process on this machine (process faults).
    #[serde(default)]
    pub process: Option<ProcessSelector>,
    /// A TCP fault proxy: one the run starts (`listen` + `upstream`), or one already
    /// running behind a toxiproxy-compatible API (`api` + `name`).
    #[serde(default)]
    pub proxy: Option<ProxySelector>,
    /// Pods on a Kubernetes cluster (the `kubernetes` backend's faults).
    #[serde(default)]
    pub pods: Option<PodSelector>,
    /// A database's Service on a Kubernetes cluster (the `postgres-*` and `redis-*`
    /// faults on the `kubernetes` backend): the runner puts a proxy in front of it.
    #[serde(default)]
    pub service: Option<ServiceSelector>,
}

/// The database Service a Kubernetes `postgres-*` / `redis-*` fault intercepts: for the
/// run, its selector points at a `chaos-runner proxy` Deployment that relays to the
/// database pods through an "upstream" Service.
///
/// ```
/// let s: chaos_runner::spec::ServiceSelector = serde_json::from_value(serde_json::json!({
///     "namespace": "games", "name": "postgres", "port": 5432
/// })).unwrap();
/// assert_eq!(s.port, Some(5432));
/// assert_eq!(s.proxy_image, chaos_runner::spec::params::pod_helper::DEFAULT_IMAGE);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceSelector {
    /// The Service's namespace (protected ones must be listed in
    /// `allowProtectedNamespaces`).
    pub namespace: String,
    /// The Service's name.
    pub name: String,
    /// The Service port to intercept; default: the Service's only port.
    #[serde(default)]
    pub port: Option<u16>,
    /// The image holding `chaos-runner` that the proxy Deployment runs (default: the
    /// runner's own image, as the in-pod helpers).
    #[serde(default = "default_proxy_image")]
    pub proxy_image: String,
    /// How long the proxy Deployment may take to become available (1s to 10m, default
    /// 2m).
    #[serde(default = "default_proxy_ready_timeout", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub ready_timeout: Duration,
    /// Protected namespaces (`kube-system`, `kube-public`, `kube-node-lease`) this
    /// experiment may touch.
    #[serde(default)]
    pub allow_protected_namespaces: Vec<String>,
}

fn default_proxy_image() -> String {
    crate::spec::params::pod_helper::DEFAULT_IMAGE.to_owned()
}

fn default_proxy_ready_timeout() -> Duration {
    Duration::from_secs(120)
}

impl ServiceSelector {
    /// The selector in one line, for plans.
    ///
    /// ```
    /// let s: chaos_runner::spec::ServiceSelector = serde_json::from_value(serde_json::json!({
    ///     "namespace": "games", "name": "postgres"
    /// })).unwrap();
    /// assert_eq!(s.summary(), "Service games/postgres (its only port)");
    /// ```
    pub fn summary(&self) -> String {
        match self.port {
            Some(p) => format!("Service {}/{} port {p}", self.namespace, self.name),
            None => format!("Service {}/{} (its only port)", self.namespace, self.name),
        }
    }
}

/// Which pods a Kubernetes fault hits: the pods of `namespace` matching `labelSelector`
/// (and `fieldSelector`), of which `mode` picks some. Pods annotated
/// `chaos.game-resilience.dev/protected: "true"` are never picked.
///
/// ```
/// let s: chaos_runner::spec::PodSelector = serde_json::from_value(serde_json::json!({
///     "namespace": "games", "labelSelector": {"app": "game-server"}, "mode": "fixed", "value": 2
/// })).unwrap();
/// assert_eq!(s.mode, chaos_runner::spec::PodMode::Fixed);
/// assert_eq!(s.max_percent, 100);
/// ```
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodSelector {
    /// The namespace (protected ones such as `kube-system` must be listed in
    /// `allowProtectedNamespaces`).
    pub namespace: String,
    /// Labels the pods must carry (equality, ANDed).
    #[serde(default)]
    pub label_selector: BTreeMap<String, String>,
    /// A field selector (`status.phase=Running`, `spec.nodeName=node-1`).
    #[serde(default)]
    pub field_selector: Option<String>,
    /// How many of the matching pods are picked.
    #[serde(default)]
    pub mode: PodMode,
    /// The count (`fixed`) or percentage (`fixed-percent`, `random-max-percent`).
    #[serde(default)]
    pub value: Option<u32>,
    /// Seed of the random pick: the same seed and the same pods give the same pick.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Most pods one step may hit, in percent of the matching pods (1 to 100, default
    /// 100); a pick above it is refused.
    #[serde(default = "hundred")]
    pub max_percent: u8,
    /// Protected namespaces (`kube-system`, `kube-public`, `kube-node-lease`) this
    /// experiment may touch.
    #[serde(default)]
    pub allow_protected_namespaces: Vec<String>,
    /// Opt-in for an empty `labelSelector` with no `fieldSelector` (every pod of the
    /// namespace).
    #[serde(default)]
    pub allow_empty_selector: bool,
}

fn hundred() -> u8 {
    100
}

/// How many matching pods a Kubernetes fault picks (as Chaos Mesh's modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum PodMode {
    /// One pod, picked at random (the default).
    #[default]
    One,
    /// Every matching pod.
    All,
    /// `value` pods, picked at random.
    Fixed,
    /// `value` percent of the matching pods (rounded down), picked at random.
    FixedPercent,
    /// A random share between one pod and `value` percent of the matching pods.
    RandomMaxPercent,
}

impl PodSelector {
    /// The selector in one line, for plans.
    ///
    /// ```
    /// let s = chaos_runner::spec::PodSelector { namespace: "games".into(), max_percent: 100, ..Default::default() };
    /// assert_eq!(s.summary(), "pods in games (one)");
    /// ```
    pub fn summary(&self) -> String {
        let mut text = format!("pods in {}", self.namespace);
        if !self.label_selector.is_empty() {
            let labels: Vec<String> = self
                .label_selector
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            text.push_str(&format!(" with {}", labels.join(",")));
        }
        if let Some(f) = &self.field_selector {
            text.push_str(&format!(" where {f}"));
        }
        let mode = match (self.mode, self.value) {
            (PodMode::One, _) => "one".to_owned(),
            (PodMode::All, _) => "all".to_owned(),
            (PodMode::Fixed, v) => format!("fixed {}", v.unwrap_or(0)),
            (PodMode::FixedPercent, v) => format!("fixed {}%", v.unwrap_or(0)),
            (PodMode::RandomMaxPercent, v) => format!("random up to {}%", v.unwrap_or(0)),
        };
        text.push_str(&format!(" ({mode}"));
        if self.max_percent < 100 {
            text.push_str(&format!(", at most {}% of them", self.max_percent));
        }
        text.push(')');
        text
    }
}

/// Which traffic a `net-*` fault hits. Addresses and ports are checked strictly at
/// validation and reach the kernel only as typed values (never pasted into a ruleset).
///
/// ```
/// let s: chaos_runner::spec::NetworkSelector =
///     serde_json::from_value(serde_json::json!({"netns": "game", "ports": [7777, "8000-8010"]})).unwrap();
/// assert_eq!(s.netns.as_deref(), Some("game"));
/// ```
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkSelector {
    /// A named network namespace (`ip netns add NAME`); the host's own when absent.
    #[serde(default)]
    pub netns: Option<String>,
    /// The interface: required by `net-bandwidth` and `net-delay` (tc); for `net-loss`
    /// and `net-partition` it narrows the match to packets in or out of it.
    #[serde(default)]
    pub interface: Option<String>,
    /// Peer addresses or networks (`10.0.0.7`, `10.1.0.0/16`, `fd00::/64`): the
    /// destination of outgoing packets, the source of incoming ones.
    #[serde(default)]
    pub addresses: Vec<String>,
    /// Ports (`7777`) or ranges (`"8000-8100"`), matched as either port of a packet.
    #[serde(default)]
    pub ports: Vec<PortItem>,
    /// `tcp`, `udp` or `all` (the default).
    #[serde(default)]
    pub protocol: NetProtocol,
    /// `ingress`, `egress` or `both` (the default).
    #[serde(default)]
    pub direction: NetDirection,
    /// Opt-in for a match with no addresses and no ports (all traffic), a loopback-wide
    /// partition of the host's namespace, or tc on an interface of the host's namespace.
    #[serde(default)]
    pub allow_all_traffic: bool,
}

/// A port or a port range as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum PortItem {
    /// One port.
    One(u32),
    /// A range `first-last` (inclusive), or one port as a string.
    Range(String),
}

/// Transport protocols a network fault matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NetProtocol {
    /// TCP only.
    Tcp,
    /// UDP only.
    Udp,
    /// Every protocol (with ports: TCP and UDP).
    #[default]
    All,
}

/// Which way packets go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NetDirection {
    /// Packets coming in (and forwarded packets coming from the peers).
    Ingress,
    /// Packets going out (and forwarded packets going to the peers).
    Egress,
    /// Both ways.
    #[default]
    Both,
}

/// Which proxy a `proxy-*` fault acts on. Either `listen` + `upstream` (+ `protocol`): the
/// runner starts a proxy on `listen` for the run (clients must connect there), or `name`
/// (+ `api`): a proxy of a running `chaos-runner proxy` or toxiproxy server.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxySelector {
    /// Address the in-run proxy listens on (`127.0.0.1:15432`).
    #[serde(default)]
    pub listen: Option<String>,
    /// Where the in-run proxy forwards to (`127.0.0.1:5432`).
    #[serde(default)]
    pub upstream: Option<String>,
    /// Relay protocol of the in-run proxy (default `tcp`).
    #[serde(default)]
    pub protocol: Option<ProxyProtocol>,
    /// Admin API of a running proxy server (default `http://127.0.0.1:8474`).
    #[serde(default)]
    pub api: Option<String>,
    /// The proxy's name on that server.
    #[serde(default)]
    pub name: Option<String>,
}

/// Relay protocols of the in-run proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProxyProtocol {
    /// Plain TCP.
    #[default]
    Tcp,
    /// PostgreSQL wire protocol.
    Postgres,
    /// Redis RESP.
    Redis,
}

/// Which process a process fault hits: exactly one of `pidFile`, `name`, `port` or
/// `command`.
///
/// ```
/// let s: chaos_runner::spec::ProcessSelector =
///     serde_json::from_value(serde_json::json!({"port": 8080})).unwrap();
/// assert_eq!(s.port, Some(8080));
/// let s: chaos_runner::spec::ProcessSelector = serde_json::from_value(serde_json::json!({
///     "command": ["game-server"], "env": {"GAME_LISTEN": "127.0.0.1:18080"}, "cwd": "."})).unwrap();
/// assert_eq!(s.env["GAME_LISTEN"], "127.0.0.1:18080");
/// ```
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProcessSelector {
    /// A file holding the target's process id.
    #[serde(default)]
    pub pid_file: Option<String>,
    /// The executable name (`/proc/<pid>/comm` or the file name of `/proc/<pid>/exe`).
    #[serde(default)]
    pub name: Option<String>,
    /// The TCP port the target listens on.
    #[serde(default)]
    pub port: Option<u16>,
    /// A command (argument vector, no shell) the runner starts and supervises for the
    /// run; the target is its current process.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// Whether the supervisor restarts the command when it exits (`command` only;
    /// default `always`).
    #[serde(default)]
    pub restart: Option<RestartPolicy>,
    /// The command is ready once this local TCP port accepts connections (`command`
    /// only; without it, ready means started).
    #[serde(default)]
    pub ready_port: Option<u16>,
    /// The command is ready once a GET of this URL answers 2xx (`command` only; checked
    /// after `readyPort`, if both are given).
    #[serde(default)]
    pub ready_http: Option<String>,
    /// How long the command may take to become ready (`command` only; default 10s, at
    /// most 30m: a first start may build the program).
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "Option<String>")]
    pub ready_timeout: Option<Duration>,
    /// Extra environment variables of the supervised `command` (`command` only), as a
    /// setup service's `env`.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory of the supervised `command` (`command` only), relative to the
    /// runner's own; the runner's own when absent. A relative program path (one with a
    /// `/`) is taken relative to the runner's working directory too, as in `setup`.
    #[serde(default)]
    pub cwd: Option<String>,
    /// Most processes a `name` or `port` may match (default 1, at most 64); more matches
    /// are refused.
    #[serde(default)]
    pub max_targets: Option<u32>,
}

/// What the supervisor does when a supervised command exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RestartPolicy {
    /// Start it again at once (the default).
    #[default]
    Always,
    /// Leave it stopped until the fault is reverted.
    Never,
}

impl Selector {
    /// Each selector part by its YAML name, and whether it is given; validation refuses
    /// parts a fault type would ignore.
    ///
    /// ```
    /// let s = chaos_runner::spec::Selector { host: Some("localhost".into()), ..Default::default() };
    /// assert!(s.parts().contains(&("host", true)));
    /// ```
    pub fn parts(&self) -> Vec<(&'static str, bool)> {
        vec![
            ("host", self.host.is_some()),
            ("network", self.network.is_some()),
            ("process", self.process.is_some()),
            ("proxy", self.proxy.is_some()),
            ("pods", self.pods.is_some()),
            ("service", self.service.is_some()),
        ]
    }

    /// The selector in one line, for plans (`host localhost`). A supervised command's
    /// environment shows its names, never its values.
    ///
    /// ```
    /// use chaos_runner::spec::{ProcessSelector, Selector};
    /// let s = Selector { host: Some("localhost".into()), ..Default::default() };
    /// assert_eq!(s.summary(), "host localhost");
    /// let s = Selector {
    ///     process: Some(ProcessSelector {
    ///         command: Some(vec!["game-server".into()]),
    ///         cwd: Some(".".into()),
    ///         env: [("GAME_DATABASE_URL".to_owned(), "postgres://u:secret@db/game".to_owned())].into(),
    ///         ..Default::default()
    ///     }),
    ///     ..Default::default()
    /// };
    /// assert_eq!(s.summary(), "supervised command `game-server` in . with GAME_DATABASE_URL");
    /// ```
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if let Some(host) = &self.host {
            parts.push(format!("host {host}"));
        }
        if let Some(n) = &self.network {
            parts.push(n.summary());
        }
        if let Some(p) = &self.process {
            if let Some(file) = &p.pid_file {
                parts.push(format!("process from pid file {file}"));
            }
            if let Some(name) = &p.name {
                parts.push(format!("process named {name}"));
            }
            if let Some(port) = p.port {
                parts.push(format!("process listening on port {port}"));
            }
            if let Some(argv) = &p.command {
                let mut what = format!("supervised command `{}`", argv.join(" "));
                if let Some(cwd) = &p.cwd {
                    what.push_str(&format!(" in {cwd}"));
                }
                // Names only: values may hold credentials (a database URL).
                if !p.env.is_empty() {
                    let names: Vec<&str> = p.env.keys().map(String::as_str).collect();
                    what.push_str(&format!(" with {}", names.join(", ")));
                }
                parts.push(what);
            }
        }
        if let Some(p) = &self.proxy {
            match (&p.listen, &p.upstream, &p.name) {
                (Some(l), Some(u), _) => parts.push(format!("proxy {l} -> {u}")),
                (_, _, Some(n)) => parts.push(format!(
                    "proxy `{n}` at {}",
                    p.api.as_deref().unwrap_or("http://127.0.0.1:8474")
                )),
                _ => parts.push("proxy (incomplete)".to_owned()),
            }
        }
        if let Some(p) = &self.pods {
            parts.push(p.summary());
        }
        if let Some(s) = &self.service {
            parts.push(s.summary());
        }
        if parts.is_empty() {
            "nothing".to_owned()
        } else {
            parts.join(", ")
        }
    }
}

impl NetworkSelector {
    /// The network selector in one line, for plans.
    ///
    /// ```
    /// let s = chaos_runner::spec::NetworkSelector { netns: Some("game".into()), ports: vec![chaos_runner::spec::PortItem::One(7777)], ..Default::default() };
    /// assert_eq!(s.summary(), "netns game, ports 7777, all, both ways");
    /// ```
    pub fn summary(&self) -> String {
        let mut parts = vec![format!(
            "netns {}",
            self.netns.as_deref().unwrap_or("(host)")
        )];
        if let Some(i) = &self.interface {
            parts.push(format!("interface {i}"));
        }
        if !self.addresses.is_empty() {
            parts.push(format!("addresses {}", self.addresses.join(" ")));
        }
        if !self.ports.is_empty() {
            let ports: Vec<String> = self
                .ports
                .iter()
                .map(|p| match p {
                    PortItem::One(n) => n.to_string(),
                    PortItem::Range(r) => r.clone(),
                })
                .collect();
            parts.push(format!("ports {}", ports.join(" ")));
        }
        parts.push(
            match self.protocol {
                NetProtocol::Tcp => "tcp",
                NetProtocol::Udp => "udp",
                NetProtocol::All => "all",
            }
            .to_owned(),
        );
        parts.push(
            match self.direction {
                NetDirection::Ingress => "ingress",
                NetDirection::Egress => "egress",
                NetDirection::Both => "both ways",
            }
            .to_owned(),
        );
        parts.join(", ")
    }
}

/// The error-budget gate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ErrorBudgetGate {
    /// SLOs whose remaining budget is checked (all SLOs of the file if empty).
    #[serde(default)]
    pub slos: Vec<String>,
    /// Refuse to start below this remaining share of budget, in percent.
    #[serde(default = "half")]
    pub min_remaining_percent: f64,
}

fn half() -> f64 {
    50.0
}

/// Report outputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReportSpec {
    /// Directory for reports, relative to the working directory.
    #[serde(default = "default_report_dir")]
    pub dir: String,
    /// Formats written.
    #[serde(default = "all_formats")]
    pub formats: Vec<ReportFormat>,
}

impl Default for ReportSpec {
    fn default() -> Self {
        ReportSpec {
            dir: default_report_dir(),
            formats: all_formats(),
        }
    }
}

fn default_report_dir() -> String {
    "chaos-reports".to_owned()
}

fn all_formats() -> Vec<ReportFormat> {
    vec![
        ReportFormat::Json,
        ReportFormat::Junit,
        ReportFormat::Markdown,
    ]
}

/// Report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReportFormat {
    /// The whole timeline as JSON.
    Json,
    /// JUnit XML for CI.
    Junit,
    /// A Markdown summary.
    Markdown,
    /// One self-contained HTML page: an SVG chart per check (value against threshold,
    /// fault windows shaded, abort marked), no scripts.
    Html,
}

/// The built-in load generator (`spec.load`): `players` virtual players send `rate`
/// requests per second in total (open loop) to the game API at `target`, in the
/// proportions of `mix`.
///
/// ```
/// let l: chaos_runner::spec::LoadSpec =
///     serde_json::from_value(serde_json::json!({"target": "http://127.0.0.1:18080", "rate": 100})).unwrap();
/// assert_eq!(l.players, 50);
/// assert_eq!(l.mix.save_write, 0.3);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadSpec {
    /// Base URL of the game API (`http://127.0.0.1:18080`); a loopback host unless
    /// `allowRemote` is set.
    pub target: String,
    /// Allow a target that is not on this machine.
    #[serde(default)]
    pub allow_remote: bool,
    /// Virtual players (1 to 100000). Each has at most one request in flight, so this is
    /// also the bound on requests in flight: a due request with no free player is counted
    /// as an error (`overflow`).
    #[serde(default = "default_players")]
    pub players: u32,
    /// Requests per second, all players together (1 to 100000).
    pub rate: u32,
    /// Relative weights of the request kinds.
    #[serde(default)]
    pub mix: LoadMix,
    /// Timeout of one request (10ms to 60s); a timeout is an error.
    #[serde(default = "default_query_timeout", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub timeout: Duration,
    /// How long the load runs before the steady-state checks (0 to 10m), so their
    /// windows hold data.
    #[serde(default = "default_warmup", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub warmup: Duration,
    /// Seed of the players' random choices (a run is repeatable with the same seed).
    #[serde(default)]
    pub seed: Option<u64>,
}

fn default_players() -> u32 {
    50
}

fn default_warmup() -> Duration {
    Duration::from_secs(2)
}

/// Relative weights of the request kinds of the load generator (each >= 0, sum > 0).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadMix {
    /// Queue for a match, or poll the player's ticket.
    #[serde(default)]
    pub matchmaking: f64,
    /// Join the matched session, leave it, or list sessions.
    #[serde(default)]
    pub session: f64,
    /// Write the player's save.
    #[serde(default)]
    pub save_write: f64,
    /// Read the player's save (a player who never saved writes first).
    #[serde(default)]
    pub save_read: f64,
}

impl Default for LoadMix {
    fn default() -> Self {
        LoadMix {
            matchmaking: 0.3,
            session: 0.2,
            save_write: 0.3,
            save_read: 0.2,
        }
    }
}

/// Client-side SLIs of the load generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum LoadSli {
    /// Share of requests not failed (2xx and 429 count as available), 0 to 1.
    Availability,
    /// Share of requests failed (not 2xx, not 429, timeouts, overflow), 0 to 1.
    ErrorRate,
    /// 95th percentile latency in milliseconds, measured from the scheduled send time.
    LatencyP95,
    /// 99th percentile latency in milliseconds, measured from the scheduled send time.
    LatencyP99,
    /// Availability of the matchmaking calls (queue, poll ticket).
    MatchmakingSuccess,
    /// Availability of the save calls (write, read).
    SaveSuccess,
}

impl LoadSli {
    /// The name as written.
    ///
    /// ```
    /// assert_eq!(chaos_runner::spec::LoadSli::LatencyP95.name(), "latencyP95");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            LoadSli::Availability => "availability",
            LoadSli::ErrorRate => "errorRate",
            LoadSli::LatencyP95 => "latencyP95",
            LoadSli::LatencyP99 => "latencyP99",
            LoadSli::MatchmakingSuccess => "matchmakingSuccess",
            LoadSli::SaveSuccess => "saveSuccess",
        }
    }
}

/// The game API calls the load generator makes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum LoadOperation {
    /// `POST /v1/matchmaking/queue`
    Queue,
    /// `GET /v1/matchmaking/tickets/{ticket}`
    PollTicket,
    /// `POST /v1/sessions/{match}/join`
    Join,
    /// `POST /v1/sessions/{match}/leave`
    Leave,
    /// `GET /v1/sessions`
    Sessions,
    /// `PUT /v1/players/{player}/save`
    SaveWrite,
    /// `GET /v1/players/{player}/save`
    SaveRead,
}

impl LoadOperation {
    /// Every operation, in report order.
    pub const ALL: [LoadOperation; 7] = [
        LoadOperation::Queue,
        LoadOperation::PollTicket,
        LoadOperation::Join,
        LoadOperation::Leave,
        LoadOperation::Sessions,
        LoadOperation::SaveWrite,
        LoadOperation::SaveRead,
    ];

    /// Position in [`LoadOperation::ALL`].
    ///
    /// ```
    /// use chaos_runner::spec::LoadOperation;
    /// assert_eq!(LoadOperation::ALL[LoadOperation::Join.index()], LoadOperation::Join);
    /// ```
    pub fn index(self) -> usize {
        self as usize
    }

    /// The name as written (`saveWrite`).
    ///
    /// ```
    /// assert_eq!(chaos_runner::spec::LoadOperation::PollTicket.name(), "pollTicket");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            LoadOperation::Queue => "queue",
            LoadOperation::PollTicket => "pollTicket",
            LoadOperation::Join => "join",
            LoadOperation::Leave => "leave",
            LoadOperation::Sessions => "sessions",
            LoadOperation::SaveWrite => "saveWrite",
            LoadOperation::SaveRead => "saveRead",
        }
    }
}

/// A check over the load generator's client-side SLIs: `sli <breachWhen> threshold` over
/// the last `window` is the bad state.
///
/// ```
/// let c: chaos_runner::spec::LoadCheck = serde_json::from_value(serde_json::json!(
///     {"sli": "errorRate", "window": "10s", "breachWhen": ">", "threshold": 0.01})).unwrap();
/// assert_eq!(c.sli, chaos_runner::spec::LoadSli::ErrorRate);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadCheck {
    /// Which SLI.
    pub sli: LoadSli,
    /// Look-back window, in whole 1 s slices (1s to 5m; default 10s).
    #[serde(default = "default_load_window", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub window: Duration,
    /// Only this operation (not with `matchmakingSuccess` or `saveSuccess`).
    #[serde(default)]
    pub operation: Option<LoadOperation>,
    /// The comparison that means "breached".
    pub breach_when: Comparison,
    /// The threshold compared with (a share for availability and error rate, ms for
    /// latencies).
    pub threshold: f64,
    /// What a window without any request means.
    #[serde(default)]
    pub on_empty: OnEmpty,
}

fn default_load_window() -> Duration {
    Duration::from_secs(10)
}

/// A service of `spec.setup`: exactly one of `postgres` (built in) or `command`.
///
/// ```
/// let s: chaos_runner::spec::SetupService = serde_json::from_value(serde_json::json!(
///     {"name": "web", "command": ["python3", "-m", "http.server", "18081"], "readyPort": 18081})).unwrap();
/// assert_eq!(s.ready_timeout, std::time::Duration::from_secs(120));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetupService {
    /// Lowercase letters, digits and dashes, 1 to 63 characters.
    pub name: String,
    /// A PostgreSQL server in a temporary directory.
    #[serde(default)]
    pub postgres: Option<PostgresSetup>,
    /// An argument vector (no shell), started in the service's temporary directory
    /// unless `cwd` says otherwise; `CHAOS_SETUP_DIR` holds that directory.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// Extra environment variables of `command`.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory of `command`.
    #[serde(default)]
    pub cwd: Option<String>,
    /// `command` is ready once a GET of this URL answers 2xx.
    #[serde(default)]
    pub ready_http: Option<String>,
    /// `command` is ready once this local TCP port accepts connections; the runner
    /// refuses to start when the port is already in use.
    #[serde(default)]
    pub ready_port: Option<u16>,
    /// How long the service may take to become ready (1s to 30m).
    #[serde(default = "default_setup_ready_timeout", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub ready_timeout: Duration,
}

fn default_setup_ready_timeout() -> Duration {
    Duration::from_secs(120)
}

/// A PostgreSQL server the runner creates (`initdb` in a temporary directory), starts on
/// `127.0.0.1:port` and gives an empty `database` (user `postgres`, trust auth).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PostgresSetup {
    /// TCP port on 127.0.0.1; the runner refuses to start when it is in use.
    pub port: u16,
    /// Database created for the run.
    pub database: String,
    /// Major version (`/usr/lib/postgresql/<version>/bin`); the newest installed when
    /// absent.
    #[serde(default)]
    pub version: Option<u32>,
}
