//! The admin API's form of protocol fault rules on a `protocol: postgres|redis` proxy
//! (`/proxies/{proxy}/dbfaults`, and `dbfaults` in a proxy's JSON at creation).
//!
//! The proxy module only carries these; the relays that speak the protocol (registered as
//! a [`crate::RelayProvider`]) parse and apply them, so the shapes here know nothing of
//! PostgreSQL or Redis: a fault type, its attributes (the same fields as the experiment's
//! `parameters` for that type) and an optional expiry.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The longest `expiresIn` accepted (a rule meant to outlive a day is a mistake).
pub const MAX_EXPIRY: Duration = Duration::from_secs(24 * 3600);

/// A rule's name or expiry cannot be taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DbFaultInputError {
    /// The name is empty, too long, or has characters other than `A-Za-z0-9-_.`.
    #[error("name: {0:?} must be 1-200 characters of A-Z, a-z, 0-9, `-`, `_`, `.`")]
    Name(String),
    /// The expiry is zero or longer than [`MAX_EXPIRY`].
    #[error("expiresIn: must be more than 0 and at most 24h")]
    Expiry,
}

/// A protocol fault rule as the API takes it.
///
/// ```
/// use fault_proxy::db_rules::DbFaultInput;
/// let rule: DbFaultInput = serde_json::from_value(serde_json::json!({
///     "name": "slow-saves", "type": "postgres-latency",
///     "attributes": {"pattern": "^UPDATE", "delay": "300ms"}, "expiresIn": "90s",
/// })).unwrap();
/// assert_eq!(rule.expires_in, Some(std::time::Duration::from_secs(90)));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DbFaultInput {
    /// Unique per proxy; setting a rule of an existing name replaces it.
    pub name: String,
    /// A database fault type: `postgres-error`, `postgres-latency`, `postgres-reset`,
    /// `postgres-refuse`, `redis-error`, `redis-latency`.
    #[serde(rename = "type")]
    pub fault_type: String,
    /// The fault's parameters, as in an experiment's `parameters` for that type.
    #[serde(default = "empty_object")]
    pub attributes: serde_json::Value,
    /// How long the rule stays in force (humantime, e.g. `90s`; at most 24h). Without
    /// it the rule stays until deleted.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub expires_in: Option<Duration>,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

impl DbFaultInput {
    /// Checks what does not depend on the protocol: a usable name and expiry.
    ///
    /// ```
    /// use fault_proxy::db_rules::DbFaultInput;
    /// let mut rule = DbFaultInput { name: "x".into(), fault_type: "postgres-reset".into(),
    ///     attributes: serde_json::json!({"pattern": "."}), expires_in: None };
    /// assert!(rule.check().is_ok());
    /// rule.expires_in = Some(std::time::Duration::ZERO);
    /// assert!(rule.check().unwrap_err().to_string().contains("expiresIn"));
    /// ```
    pub fn check(&self) -> Result<(), DbFaultInputError> {
        if self.name.is_empty()
            || self.name.len() > 200
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(DbFaultInputError::Name(self.name.clone()));
        }
        if let Some(expiry) = self.expires_in {
            if expiry.is_zero() || expiry > MAX_EXPIRY {
                return Err(DbFaultInputError::Expiry);
            }
        }
        Ok(())
    }
}

/// A protocol fault rule as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DbFaultView {
    /// Its name.
    pub name: String,
    /// Its fault type (empty for a rule a run set inside the runner).
    #[serde(rename = "type")]
    pub fault_type: String,
    /// Its attributes as given.
    pub attributes: serde_json::Value,
    /// Milliseconds until it expires (`None`: until deleted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_ms: Option<u64>,
    /// How many times it fired.
    pub hits: u64,
}
