//! `net-bandwidth` (tc `tbf`) and `net-delay` (tc `netem`): a root qdisc on one interface,
//! installed with a handle derived from the run and the fault (so revert, the watchdog and
//! `recover` only ever delete our own qdisc), removed on revert (the kernel's default root
//! qdisc comes back) and verified with `tc qdisc show dev`.
//!
//! Many kernels (this project's CI machine included) are built without `sch_netem`;
//! [`netem_available`] probes for it in a throwaway network namespace and `net-delay`
//! fails with [`netem_missing_message`] instead of an opaque tc error.

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::netcmd::{self, NetCmdError, NetSelectorError, WatchTarget, Watchdog};
use crate::faults::{Fault, FaultError, FaultRecord};
use crate::spec::{NetBandwidthParams, NetDelayParams};

/// What tc prints when the kernel lacks a qdisc.
const UNKNOWN_KIND: &str = "Specified qdisc kind is unknown";

/// The error text when the kernel has no netem.
///
/// ```
/// assert!(chaos_runner::faults::local::tc::netem_missing_message().contains("sch_netem"));
/// ```
pub fn netem_missing_message() -> String {
    "the kernel has no `netem` qdisc (sch_netem): `net-delay` cannot run on this machine \
     (load the module with `modprobe sch_netem` where allowed, or use a kernel built with \
     CONFIG_NET_SCH_NETEM; the TCP fault proxy can add latency instead)"
        .to_owned()
}

/// The probe for netem could not run.
#[derive(Debug, thiserror::Error)]
pub enum NetemProbeError {
    /// `unshare` could not be run.
    #[error("cannot run `unshare` (util-linux): {0}")]
    Unshare(#[source] std::io::Error),
    /// The probe ran and failed for another reason than a missing netem.
    #[error("cannot probe for netem: {0}")]
    Failed(String),
}

/// Whether this kernel can run netem: tries `tc qdisc add dev lo root netem delay 1ms` in a
/// fresh network namespace (`unshare --net`, or `unshare -Urn` without root), which dies
/// with the probe and touches nothing else. `Err` when the probe itself cannot run.
pub fn netem_available() -> Result<bool, NetemProbeError> {
    let tc_args = [
        "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms",
    ];
    let mut last = String::new();
    for prefix in [&["--net"][..], &["--user", "--map-root-user", "--net"][..]] {
        let out = Command::new("unshare")
            .args(prefix)
            .args(tc_args)
            .stdin(Stdio::null())
            .output()
            .map_err(NetemProbeError::Unshare)?;
        if out.status.success() {
            return Ok(true);
        }
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        if stderr.contains(UNKNOWN_KIND) {
            return Ok(false);
        }
        last = stderr;
    }
    Err(NetemProbeError::Failed(last))
}

/// The handle major number (`<hex>:`) for `run_id`'s fault `name`: FNV-1a folded into
/// 0xc000..=0xcfff, stable so a sweep can recompute it.
///
/// ```
/// let h = chaos_runner::faults::local::tc::handle_for("run-1", "slow");
/// assert!((0xc000..=0xcfff).contains(&h));
/// assert_eq!(h, chaos_runner::faults::local::tc::handle_for("run-1", "slow"));
/// ```
pub fn handle_for(run_id: &str, name: &str) -> u16 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in run_id.bytes().chain([0]).chain(name.bytes()) {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    0xc000 | (hash & 0x0fff) as u16
}

/// The tc arguments of a netem qdisc (after `root handle X:`): `delay` (with `jitter`)
/// when non-zero, `loss` when above zero.
///
/// ```
/// use std::time::Duration;
/// let a = chaos_runner::faults::local::tc::netem_args(Duration::from_millis(100), Duration::ZERO, 5.0);
/// assert_eq!(a, ["netem", "delay", "100000us", "loss", "5%"]);
/// let a = chaos_runner::faults::local::tc::netem_args(Duration::ZERO, Duration::ZERO, 2.5);
/// assert_eq!(a, ["netem", "loss", "2.5%"]);
/// ```
pub fn netem_args(delay: Duration, jitter: Duration, loss_percent: f64) -> Vec<String> {
    let mut a = vec!["netem".to_owned()];
    if !delay.is_zero() {
        a.push("delay".into());
        a.push(format!("{}us", delay.as_micros()));
        if !jitter.is_zero() {
            a.push(format!("{}us", jitter.as_micros()));
        }
    }
    if loss_percent > 0.0 {
        a.push("loss".into());
        a.push(format!("{loss_percent}%"));
    }
    a
}

/// Adds a netem root qdisc with handle `handle` to `interface` in `netns` (refused by
/// the kernel when a root qdisc other than the default is there).
pub fn add_netem(
    netns: Option<&str>,
    interface: &str,
    handle: u16,
    netem: &[String],
) -> Result<(), NetCmdError> {
    let handle = format!("{handle:x}:");
    let mut args: Vec<&str> = vec!["qdisc", "add", "dev", interface, "root", "handle", &handle];
    args.extend(netem.iter().map(String::as_str));
    tc(netns, &args).map(|_| ())
}

/// The root qdisc of `interface` in `netns`: `(kind, handle major)`; the kernel's default
/// root qdisc has handle 0.
pub fn root_qdisc(netns: Option<&str>, interface: &str) -> Result<(String, u16), NetCmdError> {
    let out = tc(netns, &["-j", "qdisc", "show", "dev", interface, "root"])?;
    let doc: Value = serde_json::from_slice(&out).map_err(|e| NetCmdError::Failed {
        program: "tc -j qdisc show".into(),
        stderr: format!("unreadable JSON: {e}"),
    })?;
    let root = doc
        .as_array()
        .and_then(|q| q.iter().find(|q| q["root"] == true).or(q.first()))
        .ok_or_else(|| NetCmdError::Failed {
            program: "tc qdisc show".into(),
            stderr: format!("no root qdisc listed for {interface}"),
        })?;
    let kind = root["kind"].as_str().unwrap_or_default().to_owned();
    let handle = root["handle"]
        .as_str()
        .and_then(|h| h.trim_end_matches(':').split(':').next())
        .and_then(|h| u16::from_str_radix(h, 16).ok())
        .unwrap_or(0);
    Ok((kind, handle))
}

fn tc(netns: Option<&str>, args: &[&str]) -> Result<Vec<u8>, NetCmdError> {
    let mut all = Vec::new();
    if let Some(ns) = netns {
        if !netcmd::netns_exists(ns) {
            return Err(NetCmdError::NoNetns(ns.to_owned()));
        }
        all.extend(["-n", ns]);
    }
    all.extend_from_slice(args);
    netcmd::run(None, "tc", &all, None).map_err(|e| match netns {
        // Deleted while we ran: whatever was in it is gone with it.
        Some(ns) if !netcmd::netns_exists(ns) => NetCmdError::NoNetns(ns.to_owned()),
        _ => e,
    })
}

/// Whether `e` says the namespace or the interface is gone (taking its qdisc with it).
fn device_gone(e: &NetCmdError) -> bool {
    match e {
        NetCmdError::NoNetns(_) => true,
        NetCmdError::Failed { stderr, .. } => {
            stderr.contains("Cannot find device") || stderr.contains("No such device")
        }
        NetCmdError::Missing { .. } => false,
    }
}

/// Deletes the root qdisc of `interface` if its handle is still `handle` (ours), then
/// checks. A vanished namespace or interface took the qdisc with it.
pub fn delete_qdisc(netns: Option<&str>, interface: &str, handle: u16) -> Result<(), NetCmdError> {
    let gone = device_gone;
    match root_qdisc(netns, interface) {
        Ok((_, h)) if h == handle => {
            if let Err(e) = tc(netns, &["qdisc", "del", "dev", interface, "root"]) {
                tracing::warn!(interface, error = %e, "tc qdisc del failed; checking");
            }
        }
        Ok(_) => return Ok(()),
        Err(e) if gone(&e) => return Ok(()),
        Err(e) => return Err(e),
    }
    match root_qdisc(netns, interface) {
        Ok((kind, h)) if h == handle => Err(NetCmdError::Failed {
            program: "tc qdisc del".into(),
            stderr: format!("{kind} qdisc {h:x}: is still the root of {interface}"),
        }),
        Ok(_) => Ok(()),
        Err(e) if gone(&e) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Deletes every root qdisc with `handle`, on any interface of the host's namespace and of
/// every named one (when the journal holds only the intent). Without `tc` there is
/// nothing to delete.
pub fn sweep(handle: u16) -> Result<(), NetCmdError> {
    let mut spaces: Vec<Option<String>> = vec![None];
    spaces.extend(netcmd::netns_list().into_iter().map(Some));
    for ns in &spaces {
        let out = match tc(ns.as_deref(), &["-j", "qdisc", "show"]) {
            Ok(out) => out,
            Err(NetCmdError::Missing { .. } | NetCmdError::NoNetns(_)) => continue,
            Err(e) => return Err(e),
        };
        let doc: Value = serde_json::from_slice(&out).unwrap_or(Value::Null);
        let ours = format!("{handle:x}:");
        for q in doc.as_array().into_iter().flatten() {
            if q["root"] == true && q["handle"].as_str() == Some(ours.as_str()) {
                if let Some(dev) = q["dev"].as_str() {
                    delete_qdisc(ns.as_deref(), dev, handle)?;
                }
            }
        }
    }
    Ok(())
}

/// The tc fault's shaping.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shape {
    /// `tbf`.
    Bandwidth(NetBandwidthParams),
    /// `netem`.
    Delay(NetDelayParams),
}

impl Shape {
    fn replace_existing(&self) -> bool {
        match self {
            Shape::Bandwidth(p) => p.replace_existing_qdisc,
            Shape::Delay(p) => p.replace_existing_qdisc,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Shape::Bandwidth(_) => "tbf",
            Shape::Delay(_) => "netem",
        }
    }

    /// tc arguments after `root handle X:` (all from typed numbers).
    fn args(&self) -> Vec<String> {
        match self {
            Shape::Bandwidth(p) => vec![
                "tbf".into(),
                "rate".into(),
                format!("{}kbit", p.rate_kbit),
                "burst".into(),
                p.burst().to_string(),
                "latency".into(),
                format!("{}us", p.latency.as_micros()),
            ],
            Shape::Delay(p) => netem_args(p.delay, p.jitter, p.loss_percent),
        }
    }
}

/// A `net-bandwidth` or `net-delay` fault.
#[derive(Debug)]
pub struct Qdisc {
    name: String,
    netns: Option<String>,
    interface: Result<String, NetSelectorError>,
    handle: u16,
    shape: Shape,
    duration: Duration,
    exe: PathBuf,
    watchdog: Option<Watchdog>,
    injected: bool,
}

impl Qdisc {
    /// A root qdisc `shape` on `interface` (an error when the selector lacks one) in
    /// `netns`, for at most `duration`; the watchdog runs from `exe`.
    pub fn new(
        name: &str,
        run_id: &str,
        netns: Option<String>,
        interface: Result<String, NetSelectorError>,
        shape: Shape,
        duration: Duration,
        exe: PathBuf,
    ) -> Qdisc {
        Qdisc {
            name: name.to_owned(),
            netns,
            interface,
            handle: handle_for(run_id, name),
            shape,
            duration,
            exe,
            watchdog: None,
            injected: false,
        }
    }

    /// The qdisc handle major number this fault installs.
    pub fn handle(&self) -> u16 {
        self.handle
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

impl Fault for Qdisc {
    fn name(&self) -> &str {
        &self.name
    }

    fn describe(&self) -> String {
        let what = match &self.shape {
            Shape::Bandwidth(p) => format!(
                "net-bandwidth: tbf {} kbit/s (burst {} B, latency {})",
                p.rate_kbit,
                p.burst(),
                humantime::format_duration(p.latency)
            ),
            Shape::Delay(p) => format!(
                "net-delay: netem delay {} jitter {} loss {}%",
                humantime::format_duration(p.delay),
                humantime::format_duration(p.jitter),
                p.loss_percent
            ),
        };
        format!(
            "{what} as root qdisc {:x}: of {} in netns {} for at most {}",
            self.handle,
            self.interface.as_deref().unwrap_or("?"),
            self.netns.as_deref().unwrap_or("(host)"),
            humantime::format_duration(Duration::from_millis(self.duration.as_millis() as u64))
        )
    }

    fn inject(&mut self) -> Result<FaultRecord, FaultError> {
        let interface = self
            .interface
            .clone()
            .map_err(|e| self.error(true, e.to_string()))?;
        let netns = self.netns.clone();
        let ns = netns.as_deref();
        let (kind, current) =
            root_qdisc(ns, &interface).map_err(|e| self.error(true, e.to_string()))?;
        if current != 0 && current != self.handle && !self.shape.replace_existing() {
            return Err(self.error(
                true,
                format!(
                    "{interface} already has a root qdisc ({kind} {current:x}:) that is not the \
                     kernel default; set `replaceExistingQdisc: true` to replace it (revert then \
                     restores the default, not it)"
                ),
            ));
        }
        let handle = format!("{:x}:", self.handle);
        let mut args: Vec<String> = [
            "qdisc", "replace", "dev", &interface, "root", "handle", &handle,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(self.shape.args());
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        tracing::info!(interface, netns = ?ns, kind = self.shape.kind(), "installing root qdisc");
        if let Err(e) = tc(ns, &argv) {
            let text = e.to_string();
            return Err(self.error(
                true,
                if text.contains(UNKNOWN_KIND) && self.shape.kind() == "netem" {
                    format!("{} (tc said: {text})", netem_missing_message())
                } else {
                    text
                },
            ));
        }
        self.injected = true;
        let watchdog = Watchdog::start(
            &self.exe,
            ns,
            &WatchTarget::Qdisc {
                interface: interface.clone(),
                handle: self.handle,
            },
            self.duration,
        );
        match watchdog {
            Ok(w) => self.watchdog = Some(w),
            Err(e) => {
                let _ = delete_qdisc(ns, &interface, self.handle);
                return Err(self.error(true, format!("cannot start the expiry watchdog: {e}")));
            }
        }
        Ok(FaultRecord::NetQdisc {
            netns,
            interface,
            handle: self.handle,
        })
    }

    fn revert(&mut self) -> Result<(), FaultError> {
        if let Some(w) = self.watchdog.take() {
            w.stop();
        }
        let Ok(interface) = self.interface.clone() else {
            return Ok(());
        };
        if !self.injected {
            return Ok(());
        }
        delete_qdisc(self.netns.as_deref(), &interface, self.handle)
            .map_err(|e| self.error(false, e.to_string()))?;
        self.injected = false;
        Ok(())
    }

    /// `net-delay` needs netem: probed before anything is touched.
    fn preflight(&self) -> Result<(), FaultError> {
        if let Shape::Delay(_) = self.shape {
            match netem_available() {
                Ok(true) => {}
                Ok(false) => return Err(self.error(true, netem_missing_message())),
                Err(e) => tracing::warn!(error = %e, "netem probe failed; trying anyway"),
            }
        }
        Ok(())
    }

    fn verify_reverted(&self) -> Result<(), FaultError> {
        let Ok(interface) = &self.interface else {
            return Ok(());
        };
        match root_qdisc(self.netns.as_deref(), interface) {
            Ok((kind, h)) if h == self.handle => Err(self.error(
                false,
                format!("{kind} qdisc {h:x}: is still the root of {interface}"),
            )),
            Ok(_) => Ok(()),
            Err(e) if device_gone(&e) => Ok(()),
            Err(_) if !self.injected => Ok(()),
            Err(e) => Err(self.error(false, e.to_string())),
        }
    }
}

/// Deletes the qdisc of a journaled fault (used by `recover`).
pub fn revert_record(
    name: &str,
    netns: Option<&str>,
    interface: &str,
    handle: u16,
) -> Result<(), FaultError> {
    delete_qdisc(netns, interface, handle).map_err(|e| FaultError::Revert {
        fault: name.to_owned(),
        reason: e.to_string(),
    })
}
