//! Parameters and selector checks of the Kubernetes faults: pod kill, network partition
//! and database partition.

use serde::{Deserialize, Serialize};
use std::time::Duration;

use super::{only, CheckParams, Problems};
use crate::spec::model::{PodMode, Selector};

/// Namespaces no experiment touches unless it lists them in
/// `allowProtectedNamespaces`.
pub const PROTECTED_NAMESPACES: &[&str] = &["kube-system", "kube-public", "kube-node-lease"];

/// `pod-kill` parameters.
///
/// ```
/// let p: chaos_runner::spec::PodKillParams =
///     serde_json::from_value(serde_json::json!({"gracePeriod": "5s", "waitReady": true})).unwrap();
/// assert_eq!(p.grace_period, Some(std::time::Duration::from_secs(5)));
/// assert!(!p.evict);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PodKillParams {
    /// Grace period of the deletion (0s to 1h; the pod's own when absent).
    #[serde(default, with = "humantime_serde")]
    pub grace_period: Option<Duration>,
    /// Evict through the Eviction subresource (respects PodDisruptionBudgets) instead of
    /// deleting.
    #[serde(default)]
    pub evict: bool,
    /// Wait until the owner's replacements are Ready, and report how long that took.
    #[serde(default)]
    pub wait_ready: bool,
    /// How long replacements may take to become Ready (1s to 1h, default 5m).
    #[serde(default = "five_minutes", with = "humantime_serde")]
    pub ready_timeout: Duration,
}

fn five_minutes() -> Duration {
    Duration::from_secs(300)
}

impl CheckParams for PodKillParams {
    fn check(&self, at: &str, problems: &mut Problems) {
        if let Some(g) = self.grace_period {
            problems.check(
                g <= Duration::from_secs(3600),
                format!("{at}.gracePeriod"),
                "must be between 0s and 1h",
            );
        }
        problems.check(
            self.ready_timeout >= Duration::from_secs(1)
                && self.ready_timeout <= Duration::from_secs(3600),
            format!("{at}.readyTimeout"),
            "must be between 1s and 1h",
        );
    }
}

/// Which traffic a NetworkPolicy partition cuts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyDirection {
    /// Traffic into the picked pods.
    Ingress,
    /// Traffic out of the picked pods.
    Egress,
    /// Both (the default).
    #[default]
    Both,
}

/// `network-partition` parameters.
///
/// ```
/// let p: chaos_runner::spec::NetworkPartitionParams =
///     serde_json::from_value(serde_json::json!({"direction": "ingress"})).unwrap();
/// assert_eq!(p.direction, chaos_runner::spec::PolicyDirection::Ingress);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NetworkPartitionParams {
    /// `ingress`, `egress` or `both` (the default).
    #[serde(default)]
    pub direction: PolicyDirection,
}

impl CheckParams for NetworkPartitionParams {
    fn check(&self, _at: &str, _problems: &mut Problems) {}
}

/// `db-partition` parameters: the picked pods can no longer reach `port` (on `cidr`
/// when given, anywhere otherwise); the rest of their egress stays open.
///
/// ```
/// let p: chaos_runner::spec::DbPartitionParams =
///     serde_json::from_value(serde_json::json!({"port": 5432, "cidr": "10.0.3.0/24"})).unwrap();
/// assert_eq!(p.port, 5432);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DbPartitionParams {
    /// The database's TCP port (1 to 65535).
    pub port: u16,
    /// The database's network (`10.0.3.7/32`); every address when absent.
    #[serde(default)]
    pub cidr: Option<String>,
}

impl CheckParams for DbPartitionParams {
    fn check(&self, at: &str, problems: &mut Problems) {
        problems.check(self.port != 0, format!("{at}.port"), "must be 1 to 65535");
        if let Some(cidr) = &self.cidr {
            let ok = cidr
                .parse::<ipnet::IpNet>()
                .is_ok_and(|net| net.trunc() == net);
            problems.check(
                ok,
                format!("{at}.cidr"),
                "must be a network in CIDR form with no host bits (`10.0.3.0/24`)",
            );
        }
    }
}

/// A DNS-1123 label: lowercase letters, digits and dashes, 1 to 63 characters.
pub(crate) fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// A label value: up to 63 of `[A-Za-z0-9._-]`, starting and ending alphanumeric (or
/// empty).
fn is_label_value(v: &str) -> bool {
    v.is_empty()
        || (v.len() <= 63
            && v.bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
            && v.bytes().next().is_some_and(|c| c.is_ascii_alphanumeric())
            && v.bytes().last().is_some_and(|c| c.is_ascii_alphanumeric()))
}

/// A label key: an optional DNS prefix and `/`, then a name as a label value (not empty).
fn is_label_key(k: &str) -> bool {
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    let prefix_ok =
        prefix.is_none_or(|p| !p.is_empty() && p.len() <= 253 && p.split('.').all(is_dns_label));
    prefix_ok && !name.is_empty() && is_label_value(name)
}

/// A field selector as the API server takes it: `path=value` or `path!=value` terms
/// joined by commas, with no characters outside `[A-Za-z0-9._/-]` in paths and values.
fn is_field_selector(f: &str) -> bool {
    let safe = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-' | b'/'))
    };
    !f.is_empty()
        && f.split(',').all(|term| {
            let (path, value) = match term.split_once("!=") {
                Some(pair) => pair,
                None => match term.split_once("==") {
                    Some(pair) => pair,
                    None => match term.split_once('=') {
                        Some(pair) => pair,
                        None => return false,
                    },
                },
            };
            safe(path) && (value.is_empty() || safe(value))
        })
}

/// Kubernetes faults need a `pods` selector and nothing else: a namespace (protected
/// ones only when listed), a non-empty label or field selector (unless
/// `allowEmptySelector`), and a mode with a sensible `value`.
pub(super) fn check_pod_selector(selector: &Selector, at: &str, problems: &mut Problems) {
    only(selector, at, &["pods"], problems);
    let Some(p) = &selector.pods else {
        problems.check(
            false,
            format!("{at}.pods"),
            "Kubernetes faults need a `pods` selector (namespace, labelSelector, mode)",
        );
        return;
    };
    let here = format!("{at}.pods");
    check_namespace(&p.namespace, &p.allow_protected_namespaces, &here, problems);
    problems.check(
        !p.label_selector.is_empty() || p.field_selector.is_some() || p.allow_empty_selector,
        format!("{here}.labelSelector"),
        "is empty: that selects every pod of the namespace; set `allowEmptySelector: true` to mean it",
    );
    for (k, v) in &p.label_selector {
        problems.check(
            is_label_key(k),
            format!("{here}.labelSelector.{k}"),
            "is not a valid label key",
        );
        problems.check(
            is_label_value(v),
            format!("{here}.labelSelector.{k}"),
            "is not a valid label value (up to 63 of A-Z a-z 0-9 . _ -)",
        );
    }
    if let Some(f) = &p.field_selector {
        problems.check(
            is_field_selector(f),
            format!("{here}.fieldSelector"),
            "must be `path=value` or `path!=value` terms joined by commas",
        );
    }
    match p.mode {
        PodMode::One | PodMode::All => {
            problems.check(
                p.value.is_none(),
                format!("{here}.value"),
                "modes `one` and `all` take no `value`",
            );
        }
        PodMode::Fixed => {
            problems.check(
                p.value.is_some_and(|v| (1..=10_000).contains(&v)),
                format!("{here}.value"),
                "mode `fixed` needs a pod count from 1 to 10000",
            );
        }
        PodMode::FixedPercent | PodMode::RandomMaxPercent => {
            problems.check(
                p.value.is_some_and(|v| (1..=100).contains(&v)),
                format!("{here}.value"),
                "this mode needs a percentage from 1 to 100",
            );
        }
    }
    problems.check(
        (1..=100).contains(&p.max_percent),
        format!("{here}.maxPercent"),
        "must be a percentage from 1 to 100",
    );
}

/// A namespace name, not protected unless listed in `allowed`.
fn check_namespace(namespace: &str, allowed: &[String], here: &str, problems: &mut Problems) {
    problems.check(
        is_dns_label(namespace),
        format!("{here}.namespace"),
        "must be a namespace name (1-63 lowercase letters, digits or dashes)",
    );
    problems.check(
        !PROTECTED_NAMESPACES.contains(&namespace) || allowed.iter().any(|a| a == namespace),
        format!("{here}.namespace"),
        format!("`{namespace}` is protected; list it in `allowProtectedNamespaces` to target it"),
    );
    for (i, ns) in allowed.iter().enumerate() {
        problems.check(
            is_dns_label(ns),
            format!("{here}.allowProtectedNamespaces[{i}]"),
            "must be a namespace name",
        );
    }
}

/// The database faults (`postgres-*`, `redis-*`) on Kubernetes need a `service` selector
/// (the database's Service) and nothing else; `proxy` is the local backend's.
pub(super) fn check_service_selector(selector: &Selector, at: &str, problems: &mut Problems) {
    problems.check(
        selector.proxy.is_none(),
        format!("{at}.proxy"),
        "`proxy` is the local backend's; on Kubernetes give `service: {namespace, name, port}` \
         (the database's Service, which the runner fronts with a proxy Deployment)",
    );
    for (part, present) in selector.parts() {
        problems.check(
            !present || matches!(part, "service" | "proxy"),
            format!("{at}.{part}"),
            "not used by this fault type (it takes: service)",
        );
    }
    let Some(s) = &selector.service else {
        problems.check(
            false,
            format!("{at}.service"),
            "database faults on Kubernetes need `service: {namespace, name, port}` (the \
             database's Service)",
        );
        return;
    };
    let here = format!("{at}.service");
    check_namespace(&s.namespace, &s.allow_protected_namespaces, &here, problems);
    problems.check(
        is_dns_label(&s.name) && s.name.starts_with(|c: char| c.is_ascii_lowercase()),
        format!("{here}.name"),
        "must be a Service name (1-63 lowercase letters, digits or dashes, starting with a letter)",
    );
    problems.check(
        s.port != Some(0),
        format!("{here}.port"),
        "must be 1 to 65535",
    );
    problems.check(
        super::pod_helper::is_image(&s.proxy_image),
        format!("{here}.proxyImage"),
        "must be an image reference (`registry/name:tag` or `name@sha256:...`)",
    );
    problems.check(
        s.ready_timeout >= Duration::from_secs(1) && s.ready_timeout <= Duration::from_secs(600),
        format!("{here}.readyTimeout"),
        "must be between 1s and 10m",
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_and_field_syntax() {
        assert!(is_label_key("app"));
        assert!(is_label_key("app.kubernetes.io/name"));
        assert!(!is_label_key("a b"));
        assert!(!is_label_key("/x"));
        assert!(is_label_value("game-server"));
        assert!(!is_label_value("-x"));
        assert!(is_field_selector("status.phase=Running,spec.nodeName!=n1"));
        assert!(!is_field_selector("status.phase"));
        assert!(!is_field_selector("a=b&c=d"));
    }
}
