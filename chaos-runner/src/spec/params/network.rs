//! Parameters and selectors of the kernel network faults: `net-loss` and `net-partition`
//! (nftables), `net-bandwidth` (tc `tbf`) and `net-delay` (tc `netem`).
//!
//! The `network` selector is parsed here into typed values ([`NetMatch`]): addresses as
//! [`ipnet`] networks, ports as `u16` ranges, names checked against a strict character
//! set. The fault backends build rulesets from those values only.

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};
use std::time::Duration;

use super::{only, CheckParams, Problems};
use crate::spec::model::{
    FaultType, NetDirection, NetProtocol, NetworkSelector, PortItem, Selector,
};

/// `net-loss` parameters.
///
/// ```
/// let p: chaos_runner::spec::NetLossParams = serde_json::from_value(serde_json::json!({"percent": 30})).unwrap();
/// assert_eq!(p.percent, 30);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetLossParams {
    /// Share of matching packets dropped, in percent (1 to 100).
    pub percent: u8,
}

impl CheckParams for NetLossParams {
    fn check(&self, at: &str, problems: &mut Problems) {
        problems.check(
            (1..=100).contains(&self.percent),
            format!("{at}.percent"),
            "must be a percentage between 1 and 100",
        );
    }
}

/// What a partition does with matching packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PartitionAction {
    /// Silently drop: connections time out.
    #[default]
    Drop,
    /// Reject: TCP gets a reset, other protocols an ICMP port-unreachable (connections are
    /// refused at once).
    Reject,
}

/// `net-partition` parameters.
///
/// ```
/// let p: chaos_runner::spec::NetPartitionParams = serde_json::from_value(serde_json::json!({})).unwrap();
/// assert_eq!(p.action, chaos_runner::spec::PartitionAction::Drop);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetPartitionParams {
    /// `drop` (the default) or `reject`.
    #[serde(default)]
    pub action: PartitionAction,
}

impl CheckParams for NetPartitionParams {
    fn check(&self, _at: &str, _problems: &mut Problems) {}
}

fn default_latency() -> Duration {
    Duration::from_millis(50)
}

/// `net-bandwidth` parameters (tc `tbf` on the interface's egress).
///
/// ```
/// let p: chaos_runner::spec::NetBandwidthParams = serde_json::from_value(serde_json::json!({"rateKbit": 1000})).unwrap();
/// assert_eq!(p.burst(), 3200);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetBandwidthParams {
    /// The rate in kilobit/s (8 to 100,000,000).
    pub rate_kbit: u32,
    /// Bucket size in bytes (1,600 to 64 MiB); default: 20 ms worth of the rate, at least
    /// 3,200.
    #[serde(default)]
    pub burst_bytes: Option<u32>,
    /// Longest a packet may wait in the queue before it is dropped (1 ms to 10 s; default
    /// 50 ms).
    #[serde(default = "default_latency", with = "humantime_serde")]
    pub latency: Duration,
    /// Replace a root qdisc someone else installed (refused by default).
    #[serde(default)]
    pub replace_existing_qdisc: bool,
}

impl NetBandwidthParams {
    /// The bucket size in bytes: as given, else 20 ms of the rate (at least 3,200).
    pub fn burst(&self) -> u32 {
        self.burst_bytes
            .unwrap_or_else(|| (u64::from(self.rate_kbit) * 1000 / 8 / 50).max(3200) as u32)
    }
}

impl CheckParams for NetBandwidthParams {
    fn check(&self, at: &str, problems: &mut Problems) {
        problems.check(
            (8..=100_000_000).contains(&self.rate_kbit),
            format!("{at}.rateKbit"),
            "must be between 8 and 100000000 (kbit/s)",
        );
        if let Some(b) = self.burst_bytes {
            problems.check(
                (1600..=64 << 20).contains(&b),
                format!("{at}.burstBytes"),
                "must be between 1600 and 67108864",
            );
        }
        problems.check(
            self.latency >= Duration::from_millis(1) && self.latency <= Duration::from_secs(10),
            format!("{at}.latency"),
            "must be between 1ms and 10s",
        );
    }
}

/// `net-delay` parameters (tc `netem` on the interface's egress).
///
/// ```
/// let p: chaos_runner::spec::NetDelayParams = serde_json::from_value(serde_json::json!({"delay": "100ms"})).unwrap();
/// assert_eq!(p.delay, std::time::Duration::from_millis(100));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetDelayParams {
    /// Added delay (1 ms to 60 s).
    #[serde(with = "humantime_serde")]
    pub delay: Duration,
    /// Random variation around the delay (at most the delay; default none).
    #[serde(default, with = "humantime_serde")]
    pub jitter: Duration,
    /// Share of packets also dropped, in percent (0 to 100; default 0).
    #[serde(default)]
    pub loss_percent: f64,
    /// Replace a root qdisc someone else installed (refused by default).
    #[serde(default)]
    pub replace_existing_qdisc: bool,
}

impl CheckParams for NetDelayParams {
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
        problems.check(
            self.loss_percent.is_finite() && (0.0..=100.0).contains(&self.loss_percent),
            format!("{at}.lossPercent"),
            "must be a percentage between 0 and 100",
        );
    }
}

/// A `network` selector parsed into typed values.
///
/// ```
/// use chaos_runner::spec::{params::network::resolve, NetworkSelector, PortItem};
/// let sel = NetworkSelector { netns: Some("game".into()), addresses: vec!["10.0.0.0/8".into()],
///     ports: vec![PortItem::Range("8000-8010".into())], ..Default::default() };
/// let m = resolve(&sel).unwrap();
/// assert_eq!(m.ports, vec![(8000, 8010)]);
/// assert_eq!(m.v4[0].to_string(), "10.0.0.0/8");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetMatch {
    /// The named namespace, or `None` for the host's.
    pub netns: Option<String>,
    /// The interface, if any.
    pub interface: Option<String>,
    /// IPv4 peers.
    pub v4: Vec<Ipv4Net>,
    /// IPv6 peers.
    pub v6: Vec<Ipv6Net>,
    /// Inclusive port ranges.
    pub ports: Vec<(u16, u16)>,
    /// Protocol.
    pub protocol: NetProtocol,
    /// Direction.
    pub direction: NetDirection,
    /// The all-traffic opt-in.
    pub allow_all_traffic: bool,
}

/// Whether `name` is a safe network namespace name: 1 to 64 of `A-Z a-z 0-9 _ . -`, not
/// starting with `.` or `-`.
///
/// ```
/// use chaos_runner::spec::params::network::is_netns_name;
/// assert!(is_netns_name("chaos-demo"));
/// assert!(!is_netns_name("../etc") && !is_netns_name("a b") && !is_netns_name(""));
/// ```
pub fn is_netns_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && !name.starts_with('.')
        && !name.starts_with('-')
}

/// Whether `name` is a safe interface name: 1 to 15 of `A-Z a-z 0-9 _ . -`, not starting
/// with `.` or `-`.
///
/// ```
/// use chaos_runner::spec::params::network::is_interface_name;
/// assert!(is_interface_name("veth0"));
/// assert!(!is_interface_name("a-very-long-interface") && !is_interface_name("eth0;x"));
/// ```
pub fn is_interface_name(name: &str) -> bool {
    (1..=15).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && !name.starts_with('.')
        && !name.starts_with('-')
}

/// Parses a port or a range `a-b` (1 to 65535, `a <= b`).
fn parse_port(item: &PortItem) -> Option<(u16, u16)> {
    let one = |text: &str| -> Option<u16> {
        let text = text.trim();
        if text.is_empty() || !text.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        text.parse::<u16>().ok().filter(|p| *p >= 1)
    };
    match item {
        PortItem::One(n) => u16::try_from(*n).ok().filter(|p| *p >= 1).map(|p| (p, p)),
        PortItem::Range(text) => match text.split_once('-') {
            None => one(text).map(|p| (p, p)),
            Some((a, b)) => {
                let (a, b) = (one(a)?, one(b)?);
                (a <= b).then_some((a, b))
            }
        },
    }
}

/// An entry of `addresses` that is not an address or a network.
#[derive(Debug, thiserror::Error)]
enum AddressError {
    /// Neither an address nor a CIDR network.
    #[error("must be an IP address or a network in CIDR form")]
    NotAnAddress(#[source] ipnet::AddrParseError),
    /// A network with host bits set; the network it would be read as.
    #[error("has host bits set (did you mean `{0}`?)")]
    HostBits(IpNet),
}

/// Parses an address (`10.0.0.7`, `::1`) or a network (`10.0.0.0/8`); host bits in a
/// network are refused so `10.0.0.7/8` is not silently read as all of `10/8`.
fn parse_address(text: &str) -> Result<IpNet, AddressError> {
    if let Ok(ip) = text.parse::<std::net::IpAddr>() {
        return Ok(IpNet::from(ip));
    }
    let net: IpNet = text.parse().map_err(AddressError::NotAnAddress)?;
    if net.trunc() != net {
        return Err(AddressError::HostBits(net.trunc()));
    }
    Ok(net)
}

/// Parses and checks a `network` selector; every problem comes back as
/// `(field inside the selector, message)`.
pub fn resolve(sel: &NetworkSelector) -> Result<NetMatch, Vec<(String, String)>> {
    let mut problems = Vec::new();
    let mut m = NetMatch {
        netns: sel.netns.clone(),
        interface: sel.interface.clone(),
        protocol: sel.protocol,
        direction: sel.direction,
        allow_all_traffic: sel.allow_all_traffic,
        ..NetMatch::default()
    };
    if let Some(ns) = &sel.netns {
        if !is_netns_name(ns) {
            problems.push((
                "netns".to_owned(),
                "must be 1-64 letters, digits, `_`, `.` or `-` (a name from `ip netns list`)"
                    .to_owned(),
            ));
        }
    }
    if let Some(i) = &sel.interface {
        if !is_interface_name(i) {
            problems.push((
                "interface".to_owned(),
                "must be an interface name: 1-15 letters, digits, `_`, `.` or `-`".to_owned(),
            ));
        }
    }
    if sel.addresses.len() > 256 {
        problems.push(("addresses".to_owned(), "at most 256 entries".to_owned()));
    }
    for (i, text) in sel.addresses.iter().enumerate() {
        match parse_address(text) {
            Ok(IpNet::V4(n)) => m.v4.push(n),
            Ok(IpNet::V6(n)) => m.v6.push(n),
            Err(e) => problems.push((format!("addresses[{i}]"), e.to_string())),
        }
    }
    if sel.ports.len() > 256 {
        problems.push(("ports".to_owned(), "at most 256 entries".to_owned()));
    }
    for (i, item) in sel.ports.iter().enumerate() {
        match parse_port(item) {
            Some(range) => m.ports.push(range),
            None => problems.push((
                format!("ports[{i}]"),
                "must be a port (1-65535) or a range `first-last` with first <= last".to_owned(),
            )),
        }
    }
    if problems.is_empty() {
        Ok(m)
    } else {
        Err(problems)
    }
}

/// Whether `net` covers the loopback address of its family.
fn covers_loopback(m: &NetMatch) -> bool {
    m.v4.iter()
        .any(|n| n.contains(&std::net::Ipv4Addr::LOCALHOST))
        || m.v6
            .iter()
            .any(|n| n.contains(&std::net::Ipv6Addr::LOCALHOST))
}

/// Checks the selector of a `net-*` fault: a `network` part, typed values, and the
/// opt-ins for dangerous matches.
pub(super) fn check_network_selector(
    fault_type: FaultType,
    selector: &Selector,
    at: &str,
    problems: &mut Problems,
) {
    only(selector, at, &["network"], problems);
    let Some(sel) = &selector.network else {
        problems.check(
            false,
            at.to_owned(),
            "needs a `network` selector (netns, addresses, ports, ...)",
        );
        return;
    };
    let here = format!("{at}.network");
    let m = match resolve(sel) {
        Ok(m) => m,
        Err(found) => {
            for (field, message) in found {
                problems.check(false, format!("{here}.{field}"), message);
            }
            return;
        }
    };
    match fault_type {
        FaultType::NetBandwidth | FaultType::NetDelay => {
            problems.check(
                m.interface.is_some(),
                format!("{here}.interface"),
                "is required: tc shapes one interface's egress",
            );
            for (part, present) in [
                ("addresses", !sel.addresses.is_empty()),
                ("ports", !sel.ports.is_empty()),
                ("protocol", sel.protocol != NetProtocol::All),
                ("direction", sel.direction != NetDirection::Both),
            ] {
                problems.check(
                    !present,
                    format!("{here}.{part}"),
                    "not used by tc faults: they shape all egress traffic of the interface",
                );
            }
            problems.check(
                m.netns.is_some() || m.allow_all_traffic,
                here.clone(),
                "shaping an interface of the host's own namespace slows all its traffic: \
                 give `netns`, or set `allowAllTraffic: true`",
            );
        }
        _ => {
            let empty = m.v4.is_empty() && m.v6.is_empty() && m.ports.is_empty();
            problems.check(
                !empty || m.allow_all_traffic,
                here.clone(),
                "matches all traffic (no addresses and no ports): list addresses or ports, \
                 or set `allowAllTraffic: true`",
            );
            if fault_type == FaultType::NetPartition
                && m.netns.is_none()
                && !m.allow_all_traffic
                && m.ports.is_empty()
            {
                problems.check(
                    !covers_loopback(&m),
                    here.clone(),
                    "partitions the host's loopback (every local service): narrow it with \
                     `ports`, use a `netns`, or set `allowAllTraffic: true`",
                );
            }
        }
    }
}
