//! The proxy's Prometheus metrics: bytes per proxy and direction, connections open and
//! total, toxics active per proxy.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Labels `proxy` and `direction`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirectionLabels {
    /// Proxy name.
    pub proxy: String,
    /// `upstream` or `downstream`.
    pub direction: String,
}

/// Label `proxy`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProxyLabels {
    /// Proxy name.
    pub proxy: String,
}

/// Every metric the proxy exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Bytes relayed (`chaos_proxy_bytes_total{proxy,direction}`).
    pub bytes: Family<DirectionLabels, Counter>,
    /// Connections open now (`chaos_proxy_connections_open{proxy}`).
    pub open: Family<ProxyLabels, Gauge>,
    /// Connections accepted (`chaos_proxy_connections_total{proxy}`).
    pub accepted: Family<ProxyLabels, Counter>,
    /// Toxics on the proxy (`chaos_proxy_toxics_active{proxy}`).
    pub toxics: Family<ProxyLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers every metric under the `chaos_proxy` prefix.
    ///
    /// ```
    /// let m = fault_proxy::metrics::Metrics::new();
    /// m.bytes_of("db", "upstream").inc_by(3);
    /// assert!(m.encode().contains(r#"chaos_proxy_bytes_total{proxy="db",direction="upstream"} 3"#));
    /// ```
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("chaos_proxy");
        let bytes = Family::<DirectionLabels, Counter>::default();
        let open = Family::<ProxyLabels, Gauge>::default();
        let accepted = Family::<ProxyLabels, Counter>::default();
        let toxics = Family::<ProxyLabels, Gauge>::default();
        registry.register("bytes", "Bytes relayed", bytes.clone());
        registry.register("connections_open", "Connections open now", open.clone());
        registry.register("connections", "Connections accepted", accepted.clone());
        registry.register("toxics_active", "Toxics on the proxy", toxics.clone());
        Metrics {
            registry,
            bytes,
            open,
            accepted,
            toxics,
        }
    }

    /// The metrics in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    /// The byte counter of `proxy` in `direction` (shared: increments show in `/metrics`).
    pub fn bytes_of(&self, proxy: &str, direction: &str) -> Counter {
        self.bytes
            .get_or_create(&DirectionLabels {
                proxy: proxy.to_owned(),
                direction: direction.to_owned(),
            })
            .clone()
    }

    /// The labels of `proxy`.
    pub fn labels(proxy: &str) -> ProxyLabels {
        ProxyLabels {
            proxy: proxy.to_owned(),
        }
    }
}
