//! Parameters of the protocol-aware database faults (`postgres-*`, `redis-*`), which act
//! on the run's own proxy with `protocol: postgres` or `protocol: redis`.
//!
//! The parameter types and their checks are the fault proxy's
//! ([`fault_proxy::dbproto::params`]): its admin API takes the same fields as a rule's
//! `attributes`. This module reports their problems under the experiment's field paths
//! and checks the selector.

pub use fault_proxy::dbproto::params::{
    DbParams, PgSeverity, PostgresErrorParams, PostgresLatencyParams, PostgresRefuseParams,
    PostgresResetParams, RedisErrorParams, RedisLatencyParams,
};

use fault_proxy::dbproto::params::ParamChecks;

use super::{only, CheckParams, Problems};
use crate::spec::model::{FaultType, ProxyProtocol, Selector};

macro_rules! check_params {
    ($($ty:ty),*) => {
        $(impl CheckParams for $ty {
            fn check(&self, at: &str, problems: &mut Problems) {
                for problem in self.problems() {
                    problems.check(false, problem.at(at), problem.message);
                }
            }
        })*
    };
}

check_params!(
    PostgresErrorParams,
    PostgresLatencyParams,
    PostgresResetParams,
    PostgresRefuseParams,
    RedisErrorParams,
    RedisLatencyParams
);

impl From<fault_proxy::dbproto::Protocol> for ProxyProtocol {
    fn from(protocol: fault_proxy::dbproto::Protocol) -> ProxyProtocol {
        match protocol {
            fault_proxy::dbproto::Protocol::Postgres => ProxyProtocol::Postgres,
            fault_proxy::dbproto::Protocol::Redis => ProxyProtocol::Redis,
        }
    }
}

impl From<ProxyProtocol> for fault_proxy::Protocol {
    fn from(protocol: ProxyProtocol) -> fault_proxy::Protocol {
        match protocol {
            ProxyProtocol::Tcp => fault_proxy::Protocol::Tcp,
            ProxyProtocol::Postgres => fault_proxy::Protocol::Postgres,
            ProxyProtocol::Redis => fault_proxy::Protocol::Redis,
        }
    }
}

/// Parses the parameters of db fault type `fault_type`.
pub(super) fn parse(
    fault_type: FaultType,
    at: &str,
    value: serde_json::Value,
    problems: &mut Problems,
) -> Option<DbParams> {
    use super::typed;
    match fault_type {
        FaultType::PostgresError => {
            typed(fault_type, at, value, problems).map(DbParams::PostgresError)
        }
        FaultType::PostgresLatency => {
            typed(fault_type, at, value, problems).map(DbParams::PostgresLatency)
        }
        FaultType::PostgresReset => {
            typed(fault_type, at, value, problems).map(DbParams::PostgresReset)
        }
        FaultType::PostgresRefuse => {
            typed(fault_type, at, value, problems).map(DbParams::PostgresRefuse)
        }
        FaultType::RedisError => typed(fault_type, at, value, problems).map(DbParams::RedisError),
        FaultType::RedisLatency => {
            typed(fault_type, at, value, problems).map(DbParams::RedisLatency)
        }
        _ => None,
    }
}

/// Database faults on the local backend act on the run's own proxy, which must speak
/// their protocol (`proxy: {listen, upstream, protocol: postgres|redis}`), or on a proxy
/// of a running `chaos-runner proxy` (`proxy: {name, api}`).
pub(super) fn check_db_selector(
    fault_type: FaultType,
    selector: &Selector,
    at: &str,
    problems: &mut Problems,
) {
    let want = match fault_type {
        FaultType::RedisError | FaultType::RedisLatency => ProxyProtocol::Redis,
        _ => ProxyProtocol::Postgres,
    };
    let word = match want {
        ProxyProtocol::Redis => "redis",
        _ => "postgres",
    };
    problems.check(
        selector.service.is_none(),
        format!("{at}.service"),
        format!(
            "`service` is the kubernetes backend's; on the local backend give \
             `proxy: {{listen, upstream, protocol: {word}}}`"
        ),
    );
    let Some(p) = &selector.proxy else {
        only(selector, at, &["proxy", "service"], problems);
        problems.check(
            false,
            at.to_owned(),
            format!(
                "needs `proxy: {{listen, upstream, protocol: {word}}}` (the run's own proxy) \
                 or `proxy: {{name, api}}` (a `protocol: {word}` proxy of a running \
                 `chaos-runner proxy`)"
            ),
        );
        return;
    };
    super::proxy::check_proxy_selector(selector, at, problems);
    if p.name.is_some() || p.api.is_some() {
        // A running proxy server's proxy: its protocol is checked against the server
        // before the run touches anything (preflight).
        return;
    }
    problems.check(
        p.protocol == Some(want),
        format!("{at}.proxy.protocol"),
        format!("must be `{word}` for {}", fault_type.name()),
    );
}
