//! A TCP fault proxy with toxiproxy's toxics (plus `loss` and `down`), its
//! toxiproxy-v2-compatible HTTP admin API, and PostgreSQL/Redis protocol-aware faults.
//!
//! It runs inside a program (a chaos experiment's run adds typed [`Toxic`]s to its own
//! proxies) or on its own as a server driven over HTTP by toxiproxy's clients
//! (`chaos-runner proxy` is one such server). JSON only exists at that HTTP edge
//! ([`api`]); everything else takes typed values.
//!
//! - [`ProxyRegistry`]: the proxies and their toxics; every method is synchronous (short
//!   lock, no await), so sync fault code and the async API both call it.
//! - [`server`]: runs a registry (and optionally the API) on its own thread and runtime.
//! - [`toxics`]: the typed toxics and their checks.
//! - [`api`]: the HTTP admin API, `/metrics`, and the toxiproxy JSON forms of toxics.
//! - [`db_rules`]: database fault rules as the API takes and shows them.
//! - [`dbproto`]: the PostgreSQL and Redis relays that fail, delay or cut single
//!   statements and commands, and the typed parameters of those faults.
//! - [`metrics`]: the Prometheus metrics.
//! - [`busy_poll`]: the pass-through's short spin after each exchange (no wake-up per
//!   hop); the relay itself (`pipe`, `splice`) is internal.
//!
//! Protocol-aware relays plug in through [`ProtocolRelay`]: a proxy whose `protocol` is
//! not `tcp` hands each connection to the relay registered for it with
//! [`ProxyRegistry::set_relay`] ([`dbproto::DbRelays::register`] registers PostgreSQL and
//! Redis).
//!
//! ```
//! use fault_proxy::server::ProxyServer;
//! use fault_proxy::toxics::{Stream, Toxic, ToxicKind};
//! use fault_proxy::ProxyInput;
//! use std::time::Duration;
//!
//! // A proxy server without the HTTP API, and one proxy on a free port.
//! let server = ProxyServer::start(None).unwrap();
//! let proxy = server.registry().create(ProxyInput {
//!     name: Some("db".into()), listen: Some("127.0.0.1:0".into()),
//!     upstream: Some("127.0.0.1:5432".into()), ..Default::default()
//! }).unwrap();
//! assert!(proxy.listen.starts_with("127.0.0.1:"));
//!
//! // 100 ms more on every reply, removed again after a minute.
//! let latency = ToxicKind::Latency { latency: Duration::from_millis(100), jitter: Duration::ZERO };
//! let toxic = Toxic::new("slow", latency).with_stream(Stream::Downstream);
//! server.registry().add_toxic("db", toxic).unwrap();
//! server.registry().expire_toxic("db", "slow", Duration::from_secs(60));
//! assert_eq!(server.registry().toxics("db").unwrap()[0].name, "slow");
//! ```

#![warn(missing_docs)]

pub mod api;
pub mod busy_poll;
pub mod db_rules;
pub mod dbproto;
mod error;
pub mod metrics;
mod pipe;
mod registry;
mod relay_threads;
pub mod server;
mod splice;
pub mod toxics;

pub use error::ApiError;
pub use registry::{
    Protocol, ProtocolRelay, ProxyInput, ProxyRegistry, ProxyView, RelayFuture, RelayProvider,
};
pub use toxics::{Stream, Toxic, ToxicError, ToxicKind};
