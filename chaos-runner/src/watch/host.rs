//! Readings of this machine from `/proc`: CPU busy share between checks, memory in use,
//! load average. They let an experiment guard the host with no Prometheus at all.

use std::time::Duration;

use crate::spec::HostMetric;

/// Reads host metrics; remembers the previous CPU sample so each reading covers the time
/// since the previous check.
#[derive(Debug, Clone, Default)]
pub struct HostReader {
    last_cpu: Option<(u64, u64, std::time::Instant)>,
}

/// (busy, total) jiffies of all CPUs from `/proc/stat`.
fn cpu_jiffies() -> Result<(u64, u64), String> {
    let stat = std::fs::read_to_string("/proc/stat").map_err(|e| format!("/proc/stat: {e}"))?;
    let line = stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .ok_or("/proc/stat has no cpu line")?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let total: u64 = fields.iter().sum();
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    Ok((total.saturating_sub(idle), total))
}

fn meminfo(key: &str, text: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

impl HostReader {
    /// Reads `metric`. A CPU reading covers the time since the previous one, or samples
    /// over 200 ms when there is none from the last two seconds.
    pub async fn read(&mut self, metric: HostMetric) -> Result<f64, String> {
        match metric {
            HostMetric::CpuBusyPercent => {
                let before = match self.last_cpu {
                    Some((busy, total, at)) if at.elapsed() < Duration::from_secs(2) => {
                        (busy, total)
                    }
                    _ => {
                        let first = cpu_jiffies()?;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        first
                    }
                };
                let now = cpu_jiffies()?;
                self.last_cpu = Some((now.0, now.1, std::time::Instant::now()));
                let busy = now.0.saturating_sub(before.0) as f64;
                let total = now.1.saturating_sub(before.1) as f64;
                Ok(if total > 0.0 {
                    busy * 100.0 / total
                } else {
                    0.0
                })
            }
            HostMetric::MemoryUsedPercent => {
                let text = std::fs::read_to_string("/proc/meminfo")
                    .map_err(|e| format!("/proc/meminfo: {e}"))?;
                let total = meminfo("MemTotal:", &text).ok_or("no MemTotal")?;
                let available = meminfo("MemAvailable:", &text).ok_or("no MemAvailable")?;
                Ok((1.0 - available / total.max(1.0)) * 100.0)
            }
            HostMetric::Load1 => std::fs::read_to_string("/proc/loadavg")
                .map_err(|e| format!("/proc/loadavg: {e}"))?
                .split_whitespace()
                .next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| "unreadable /proc/loadavg".to_owned()),
        }
    }
}
