//! Readings of this machine from `/proc`: CPU busy share between checks, memory in use,
//! load average. They let an experiment guard the host with no Prometheus at all.

use std::time::Duration;

use crate::spec::HostMetric;

/// A host metric could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// A file under `/proc` could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `/proc/stat` has no line for all CPUs.
    #[error("/proc/stat has no cpu line")]
    NoCpuLine,
    /// `/proc/meminfo` lacks a field.
    #[error("no {0}")]
    NoMeminfo(&'static str),
    /// `/proc/loadavg` does not start with a number.
    #[error("unreadable /proc/loadavg")]
    Loadavg,
}

fn read(path: &'static str) -> Result<String, HostError> {
    std::fs::read_to_string(path).map_err(|source| HostError::Read { path, source })
}

/// Reads host metrics; remembers the previous CPU sample so each reading covers the time
/// since the previous check.
#[derive(Debug, Clone, Default)]
pub struct HostReader {
    last_cpu: Option<(u64, u64, std::time::Instant)>,
}

/// (busy, total) jiffies of all CPUs from `/proc/stat`.
fn cpu_jiffies() -> Result<(u64, u64), HostError> {
    let stat = read("/proc/stat")?;
    let line = stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .ok_or(HostError::NoCpuLine)?;
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
    pub async fn read(&mut self, metric: HostMetric) -> Result<f64, HostError> {
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
                let text = read("/proc/meminfo")?;
                let total = meminfo("MemTotal:", &text).ok_or(HostError::NoMeminfo("MemTotal"))?;
                let available =
                    meminfo("MemAvailable:", &text).ok_or(HostError::NoMeminfo("MemAvailable"))?;
                Ok((1.0 - available / total.max(1.0)) * 100.0)
            }
            HostMetric::Load1 => read("/proc/loadavg")?
                .split_whitespace()
                .next()
                .and_then(|v| v.parse().ok())
                .ok_or(HostError::Loadavg),
        }
    }
}

/// The examples of this module's documentation, tested here (the module is internal).
#[cfg(test)]
mod examples {
    #[test]
    fn read_example_0() {
        use crate::spec::HostMetric;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut reader = crate::watch::host::HostReader::default();
        let used = rt
            .block_on(reader.read(HostMetric::MemoryUsedPercent))
            .unwrap();
        assert!((0.0..=100.0).contains(&used));
    }
}
