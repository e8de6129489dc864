//! The admin API's database fault rules (`/proxies/{p}/dbfaults`, and `dbfaults` in a
//! proxy's JSON) turned into [`Rule`]s and back: a rule is given as a fault type and the
//! same attributes an experiment's `parameters` take for it, checked by the same code.

use std::time::Instant;

use super::params::{DbFaultType, DbParams};
use super::{Protocol, Rule, RuleEntry, RuleSetting, RuleSource};
use crate::db_rules::{DbFaultInput, DbFaultView};
use crate::ApiError;

fn names(types: &[DbFaultType]) -> String {
    types
        .iter()
        .map(|t| t.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The rule and its setting for `input` on a proxy speaking `protocol`; a 400 naming the
/// field when anything is wrong.
///
/// ```
/// use fault_proxy::dbproto::{admin::rule_from_input, Protocol};
/// use fault_proxy::db_rules::DbFaultInput;
/// let input: DbFaultInput = serde_json::from_value(serde_json::json!({
///     "name": "slow", "type": "postgres-latency", "attributes": {"pattern": ".", "delay": "5ms"}})).unwrap();
/// let (rule, setting) = rule_from_input(Protocol::Postgres, &input).unwrap();
/// assert_eq!(rule.name(), "slow");
/// assert!(setting.expires_at.is_none());
/// let err = rule_from_input(Protocol::Redis, &input).unwrap_err();
/// assert!(err.message.contains("redis-latency"), "{}", err.message);
/// ```
pub fn rule_from_input(
    protocol: Protocol,
    input: &DbFaultInput,
) -> Result<(Rule, RuleSetting), ApiError> {
    input
        .check()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let allowed: Vec<DbFaultType> = DbFaultType::ALL
        .into_iter()
        .filter(|t| t.protocol() == protocol)
        .collect();
    let fault_type = DbFaultType::from_name(&input.fault_type)
        .filter(|t| allowed.contains(t))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "type: `{}` is not a fault type of this {} proxy; one of {}",
                input.fault_type,
                protocol.name(),
                names(&allowed)
            ))
        })?;
    let params = DbParams::parse(fault_type, input.attributes.clone()).map_err(|e| {
        let first = e.problems.first();
        ApiError::bad_request(format!(
            "{}: {}",
            first.map_or_else(|| "attributes".to_owned(), |p| p.at("attributes")),
            first.map_or("", |p| p.message.as_str())
        ))
    })?;
    let rule = params
        .rule(&input.name)
        .map_err(|e| ApiError::bad_request(format!("attributes: {e}")))?;
    let setting = RuleSetting {
        expires_at: input.expires_in.map(|after| Instant::now() + after),
        source: Some(RuleSource {
            fault_type: input.fault_type.clone(),
            attributes: input.attributes.clone(),
        }),
    };
    Ok((rule, setting))
}

/// How the API shows a rule in force (a rule a run set inside the runner has no type and
/// shows its pattern and rate).
pub fn view(entry: &RuleEntry) -> DbFaultView {
    let (fault_type, attributes) = match &entry.setting.source {
        Some(source) => (source.fault_type.clone(), source.attributes.clone()),
        None => (
            String::new(),
            serde_json::json!({ "pattern": entry.rule.pattern(), "rate": entry.rule.rate() }),
        ),
    };
    DbFaultView {
        name: entry.rule.name().to_owned(),
        fault_type,
        attributes,
        expires_in_ms: entry
            .setting
            .expires_at
            .map(|at| at.saturating_duration_since(Instant::now()).as_millis() as u64),
        hits: entry.hits,
    }
}
