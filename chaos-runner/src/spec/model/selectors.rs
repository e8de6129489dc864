//! What a fault hits (`spec.faults[].selector`): processes, network traffic, proxies,
//! pods and Services.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

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
