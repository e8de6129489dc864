//! `net-loss` and `net-partition`: an nftables `inet` table owned by the run
//! (`chaos_<run id>_<fault>`) with input, output and forward chains at priority -100 (ahead
//! of `filter`), dropping a random share of matching packets (`numgen random mod 100 < N`)
//! or all of them (drop, or reject: TCP reset / ICMP port-unreachable; with reject, TCP
//! resets themselves pass, so the resets the table sends reach the socket).
//!
//! The ruleset is built as nftables JSON from typed values ([`NetMatch`]) and fed to
//! `nft -j -f -` on stdin; no user text is ever pasted into a command. Revert deletes the
//! table and verifies by listing tables. Kernel rules do not expire, so a watchdog child
//! (`chaos-runner stress expire-net`) deletes the table when the fault's time is up or
//! when the runner dies; `recover` deletes tables of dead runs from the journal.

use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

use super::netcmd::{self, NetCmdError, NetSelectorError, WatchTarget, Watchdog};
use crate::faults::{Fault, FaultError, FaultRecord};
use crate::spec::params::network::NetMatch;
use crate::spec::{NetDirection, NetProtocol};

/// What happens to matching packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Drop this percentage at random.
    Loss(u8),
    /// Drop all.
    Drop,
    /// Reject all (TCP reset, else ICMP port-unreachable).
    Reject,
}

/// The table a run's fault owns: `chaos_<run id>_<fault>`, every character outside
/// `[A-Za-z0-9]` turned into `_`.
///
/// ```
/// use chaos_runner::faults::local::nftables::table_name;
/// assert_eq!(table_name("exp-1700000000000-0a1b", "cut-db"), "chaos_exp_1700000000000_0a1b_cut_db");
/// ```
pub fn table_name(run_id: &str, fault: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect()
    };
    format!("chaos_{}_{}", clean(run_id), clean(fault))
}

#[derive(Clone, Copy)]
enum Side {
    Egress,
    Ingress,
}

fn matches(left: Value, right: Value) -> Value {
    json!({ "match": { "op": "==", "left": left, "right": right } })
}

/// The nftables JSON document that creates `table` with the rules for `m` and `action`.
///
/// ```
/// use chaos_runner::faults::local::nftables::{ruleset, Action};
/// use chaos_runner::spec::params::network::NetMatch;
/// let m = NetMatch { ports: vec![(7777, 7777)], ..Default::default() };
/// let doc = ruleset("chaos_t", &m, Action::Loss(30));
/// let text = doc.to_string();
/// assert!(text.contains("\"numgen\"") && text.contains("7777"));
/// ```
pub fn ruleset(table: &str, m: &NetMatch, action: Action) -> Value {
    let mut commands = vec![json!({ "add": { "table": { "family": "inet", "name": table } } })];
    for (chain, hook) in [
        ("input", "input"),
        ("output", "output"),
        ("forward", "forward"),
    ] {
        commands.push(json!({ "add": { "chain": {
            "family": "inet", "table": table, "name": chain,
            "type": "filter", "hook": hook, "prio": -100, "policy": "accept"
        } } }));
    }
    if action == Action::Reject {
        // The resets this table sends travel back through its own chains (from the peer's
        // address, on the matched port): let TCP resets pass so they reach the socket.
        for chain in ["input", "output", "forward"] {
            commands.push(json!({ "add": { "rule": {
                "family": "inet", "table": table, "chain": chain, "expr": [
                    { "match": { "op": "==", "left": { "meta": { "key": "l4proto" } }, "right": "tcp" } },
                    { "match": { "op": "in", "left": { "payload": { "protocol": "tcp", "field": "flags" } }, "right": "rst" } },
                    { "accept": null }
                ]
            } } }));
        }
    }
    let sides: &[Side] = match m.direction {
        NetDirection::Egress => &[Side::Egress],
        NetDirection::Ingress => &[Side::Ingress],
        NetDirection::Both => &[Side::Egress, Side::Ingress],
    };
    for side in sides {
        let (chains, addr_field, iface_key): (&[&str], &str, &str) = match side {
            Side::Egress => (&["output", "forward"], "daddr", "oifname"),
            Side::Ingress => (&["input", "forward"], "saddr", "iifname"),
        };
        for chain in chains {
            for expr in rule_exprs(m, action, addr_field, iface_key) {
                commands.push(json!({ "add": { "rule": {
                    "family": "inet", "table": table, "chain": chain, "expr": expr
                } } }));
            }
        }
    }
    json!({ "nftables": commands })
}

/// The expression lists of the rules of one chain side.
fn rule_exprs(m: &NetMatch, action: Action, addr_field: &str, iface_key: &str) -> Vec<Vec<Value>> {
    let mut addr_matches: Vec<Option<Value>> = Vec::new();
    if m.v4.is_empty() && m.v6.is_empty() {
        addr_matches.push(None);
    }
    if !m.v4.is_empty() {
        let set: Vec<Value> = m
            .v4
            .iter()
            .map(|n| {
                if n.prefix_len() == 32 {
                    json!(n.addr().to_string())
                } else {
                    json!({ "prefix": { "addr": n.network().to_string(), "len": n.prefix_len() } })
                }
            })
            .collect();
        addr_matches.push(Some(matches(
            json!({ "payload": { "protocol": "ip", "field": addr_field } }),
            json!({ "set": set }),
        )));
    }
    if !m.v6.is_empty() {
        let set: Vec<Value> = m
            .v6
            .iter()
            .map(|n| {
                if n.prefix_len() == 128 {
                    json!(n.addr().to_string())
                } else {
                    json!({ "prefix": { "addr": n.network().to_string(), "len": n.prefix_len() } })
                }
            })
            .collect();
        addr_matches.push(Some(matches(
            json!({ "payload": { "protocol": "ip6", "field": addr_field } }),
            json!({ "set": set }),
        )));
    }
    let port_set: Vec<Value> = m
        .ports
        .iter()
        .map(|(a, b)| {
            if a == b {
                json!(a)
            } else {
                json!({ "range": [a, b] })
            }
        })
        .collect();
    let port_matches: Vec<Option<Value>> = if m.ports.is_empty() {
        vec![None]
    } else {
        ["dport", "sport"]
            .iter()
            .map(|field| {
                Some(matches(
                    json!({ "payload": { "protocol": "th", "field": field } }),
                    json!({ "set": port_set }),
                ))
            })
            .collect()
    };
    let l4 = |right: Value| matches(json!({ "meta": { "key": "l4proto" } }), right);
    let proto = match (m.protocol, m.ports.is_empty()) {
        (NetProtocol::Tcp, _) => Some(l4(json!("tcp"))),
        (NetProtocol::Udp, _) => Some(l4(json!("udp"))),
        (NetProtocol::All, false) => Some(l4(json!({ "set": ["tcp", "udp"] }))),
        (NetProtocol::All, true) => None,
    };
    let iface = m
        .interface
        .as_ref()
        .map(|i| matches(json!({ "meta": { "key": iface_key } }), json!(i)));
    // Verdict tails: each becomes one rule (reject: TCP reset first, then ICMP).
    let tails: Vec<Vec<Value>> = match action {
        Action::Loss(percent) => vec![vec![
            json!({ "match": { "op": "<", "left": { "numgen": { "mode": "random", "mod": 100, "offset": 0 } }, "right": percent } }),
            json!({ "drop": null }),
        ]],
        Action::Drop => vec![vec![json!({ "drop": null })]],
        Action::Reject => {
            let mut t = Vec::new();
            if m.protocol != NetProtocol::Udp {
                t.push(vec![
                    l4(json!("tcp")),
                    json!({ "reject": { "type": "tcp reset" } }),
                ]);
            }
            if m.protocol != NetProtocol::Tcp {
                t.push(vec![
                    json!({ "reject": { "type": "icmpx", "expr": "port-unreachable" } }),
                ]);
            }
            t
        }
    };
    let mut rules = Vec::new();
    for addr in &addr_matches {
        for port in &port_matches {
            for tail in &tails {
                let mut expr = Vec::new();
                expr.extend(iface.clone());
                expr.extend(proto.clone());
                expr.extend(addr.clone());
                expr.extend(port.clone());
                expr.extend(tail.iter().cloned());
                rules.push(expr);
            }
        }
    }
    rules
}

/// `m` in words, from its typed values (`netns game, peers 10.0.0.2, ports 7777, tcp, both ways`).
///
/// ```
/// use chaos_runner::faults::local::nftables::describe_match;
/// use chaos_runner::spec::params::network::NetMatch;
/// let m = NetMatch { ports: vec![(8000, 8010)], ..Default::default() };
/// assert_eq!(describe_match(&m), "netns (host), any peer, ports 8000-8010, all protocols, both ways");
/// ```
pub fn describe_match(m: &NetMatch) -> String {
    let peers: Vec<String> =
        m.v4.iter()
            .map(ToString::to_string)
            .chain(m.v6.iter().map(ToString::to_string))
            .collect();
    let ports: Vec<String> = m
        .ports
        .iter()
        .map(|(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect();
    let mut parts = vec![format!("netns {}", m.netns.as_deref().unwrap_or("(host)"))];
    if let Some(i) = &m.interface {
        parts.push(format!("interface {i}"));
    }
    parts.push(if peers.is_empty() {
        "any peer".to_owned()
    } else {
        format!("peers {}", peers.join(" "))
    });
    parts.push(if ports.is_empty() {
        "any port".to_owned()
    } else {
        format!("ports {}", ports.join(" "))
    });
    parts.push(
        match m.protocol {
            NetProtocol::Tcp => "tcp",
            NetProtocol::Udp => "udp",
            NetProtocol::All => "all protocols",
        }
        .to_owned(),
    );
    parts.push(
        match m.direction {
            NetDirection::Ingress => "ingress",
            NetDirection::Egress => "egress",
            NetDirection::Both => "both ways",
        }
        .to_owned(),
    );
    parts.join(", ")
}

/// The `inet` tables in `netns`.
pub fn tables(netns: Option<&str>) -> Result<Vec<String>, NetCmdError> {
    let out = netcmd::run(netns, "nft", &["-j", "list", "tables", "inet"], None)?;
    let doc: Value = serde_json::from_slice(&out).map_err(|e| NetCmdError::Failed {
        program: "nft -j list tables".into(),
        stderr: format!("unreadable JSON: {e}"),
    })?;
    Ok(doc["nftables"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i["table"]["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default())
}

/// Deletes `table` from `netns` if it is there, then checks it is gone. A namespace that
/// no longer exists took the table with it.
pub fn delete_table(netns: Option<&str>, table: &str) -> Result<(), NetCmdError> {
    let present = match tables(netns) {
        Ok(t) => t.iter().any(|t| t == table),
        Err(NetCmdError::NoNetns(_)) => return Ok(()),
        Err(e) => return Err(e),
    };
    if present {
        let doc = json!({ "nftables": [ { "delete": { "table": { "family": "inet", "name": table } } } ] });
        if let Err(e) = netcmd::run(
            netns,
            "nft",
            &["-j", "-f", "-"],
            Some(doc.to_string().as_bytes()),
        ) {
            tracing::warn!(table, error = %e, "nft delete table failed; checking whether it is gone");
        }
    }
    match tables(netns) {
        Ok(t) if t.iter().any(|t| t == table) => Err(NetCmdError::Failed {
            program: "nft delete table".into(),
            stderr: format!("table inet {table} is still there"),
        }),
        Ok(_) | Err(NetCmdError::NoNetns(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Deletes `table` wherever it is: the host's namespace and every named one (used when the
/// journal holds only the intent). Without `nft` installed there is nothing to delete.
pub fn sweep(table: &str) -> Result<(), NetCmdError> {
    let mut spaces: Vec<Option<String>> = vec![None];
    spaces.extend(netcmd::netns_list().into_iter().map(Some));
    for ns in &spaces {
        match delete_table(ns.as_deref(), table) {
            Ok(()) | Err(NetCmdError::Missing { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A `net-loss` or `net-partition` fault.
#[derive(Debug)]
pub struct NetFilter {
    name: String,
    table: String,
    matching: Result<NetMatch, NetSelectorError>,
    action: Action,
    duration: Duration,
    exe: PathBuf,
    watchdog: Option<Watchdog>,
    injected: bool,
}

impl NetFilter {
    /// A fault dropping/rejecting what `matching` selects, for at most `duration`; the
    /// watchdog runs from `exe` (this runner). `matching` is an error when the selector
    /// could not be resolved (injection then fails with it).
    pub fn new(
        name: &str,
        run_id: &str,
        matching: Result<NetMatch, NetSelectorError>,
        action: Action,
        duration: Duration,
        exe: PathBuf,
    ) -> NetFilter {
        NetFilter {
            name: name.to_owned(),
            table: table_name(run_id, name),
            matching,
            action,
            duration,
            exe,
            watchdog: None,
            injected: false,
        }
    }

    /// The table this fault owns.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The watchdog's process id while the fault is live.
    pub fn watchdog_pid(&self) -> Option<u32> {
        self.watchdog.as_ref().map(Watchdog::pid)
    }

    fn netns(&self) -> Option<&str> {
        self.matching.as_ref().ok().and_then(|m| m.netns.as_deref())
    }

    fn error(&self, inject: bool, reason: impl Into<String>) -> FaultError {
        let (fault, reason) = (self.name.clone(), reason.into());
        if inject {
            FaultError::Inject { fault, reason }
        } else {
            FaultError::Revert { fault, reason }
        }
    }
}

impl Fault for NetFilter {
    fn name(&self) -> &str {
        &self.name
    }

    fn describe(&self) -> String {
        let what = match self.action {
            Action::Loss(p) => format!("net-loss: drop {p}% of"),
            Action::Drop => "net-partition: drop".to_owned(),
            Action::Reject => "net-partition: reject".to_owned(),
        };
        let scope = match &self.matching {
            Ok(m) => describe_match(m),
            Err(e) => format!("invalid selector: {e}"),
        };
        format!(
            "{what} matching packets ({scope}) with nftables table inet {} for at most {}",
            self.table,
            humantime::format_duration(Duration::from_millis(self.duration.as_millis() as u64))
        )
    }

    fn inject(&mut self) -> Result<FaultRecord, FaultError> {
        let m = self
            .matching
            .clone()
            .map_err(|e| self.error(true, e.to_string()))?;
        let netns = m.netns.as_deref();
        let doc = ruleset(&self.table, &m, self.action);
        tracing::info!(table = %self.table, netns = ?netns, "adding nftables table");
        netcmd::run(
            netns,
            "nft",
            &["-j", "-f", "-"],
            Some(doc.to_string().as_bytes()),
        )
        .map_err(|e| self.error(true, e.to_string()))?;
        self.injected = true;
        let watchdog = Watchdog::start(
            &self.exe,
            netns,
            &WatchTarget::Table(self.table.clone()),
            self.duration,
        );
        match watchdog {
            Ok(w) => self.watchdog = Some(w),
            Err(e) => {
                // No expiry without a watchdog: take the rules out again.
                let _ = delete_table(netns, &self.table);
                return Err(self.error(true, format!("cannot start the expiry watchdog: {e}")));
            }
        }
        Ok(FaultRecord::NetTable {
            netns: m.netns.clone(),
            table: self.table.clone(),
        })
    }

    fn revert(&mut self) -> Result<(), FaultError> {
        if let Some(w) = self.watchdog.take() {
            w.stop();
        }
        if !self.injected {
            return Ok(());
        }
        delete_table(self.netns(), &self.table).map_err(|e| self.error(false, e.to_string()))?;
        self.injected = false;
        Ok(())
    }

    fn verify_reverted(&self) -> Result<(), FaultError> {
        match tables(self.netns()) {
            Ok(t) if t.contains(&self.table) => {
                Err(self.error(false, format!("table inet {} is still there", self.table)))
            }
            Ok(_) | Err(NetCmdError::NoNetns(_)) => Ok(()),
            // Nothing was ever added without nft.
            Err(NetCmdError::Missing { .. }) if !self.injected => Ok(()),
            Err(e) => Err(self.error(false, e.to_string())),
        }
    }
}

/// Deletes the table of a journaled fault (used by `recover`).
pub fn revert_record(name: &str, netns: Option<&str>, table: &str) -> Result<(), FaultError> {
    delete_table(netns, table).map_err(|e| FaultError::Revert {
        fault: name.to_owned(),
        reason: e.to_string(),
    })
}
