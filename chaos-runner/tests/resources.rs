//! Resource faults against the real kernel: the memory hog's resident memory, its cgroup
//! v1 limit enforced (peak usage <= limit), the CPU hog's cgroup quota measured, the disk
//! fill's file, its `bytes` or `percentOfFree` share (checked against statvfs before) and
//! safety floor (on a tmpfs of known size), revert removing everything, the stress
//! children ending by themselves (expiry, parent death), and `recover` deleting a fill
//! file and removing cgroups after runner and children were SIGKILLed.
//!
//! Needs root (cgroups, tmpfs mounts) and the cgroup v1 cpu, cpuacct and memory
//! controllers.

use crate::support;

use bytesize::ByteSize;
use chaos_runner::faults::local::cpu_hog::CpuHog;
use chaos_runner::faults::local::disk_fill::{allocated_bytes, space, DiskFill};
use chaos_runner::faults::local::memory_hog::{rss_bytes, MemoryHog};
use chaos_runner::faults::{Fault, FaultRecord};
use chaos_runner::spec::{CpuHogParams, DiskFillParams, MemoryHogParams};
use chaos_runner::sys::cgroup;
use chaos_runner::sys::proc;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use support::{wait_for, TempDir};

const MIB: u64 = 1 << 20;

fn exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_chaos-runner"))
}

fn measured(m: &[(String, String)], key: &str) -> Option<u64> {
    m.iter()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| v.parse().ok())
}

fn memory(bytes: u64, limit: Option<u64>) -> MemoryHogParams {
    MemoryHogParams {
        bytes: ByteSize::b(bytes),
        touch: true,
        cgroup: limit.is_some(),
        memory_limit: limit.map(ByteSize::b),
    }
}

/// A tmpfs of `size` bytes mounted on a fresh directory, unmounted on drop: a filesystem
/// whose free space nothing else changes.
struct Tmpfs {
    dir: TempDir,
}

impl Tmpfs {
    fn mount(size: u64) -> Tmpfs {
        let dir = TempDir::new("tmpfs");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "mounting a tmpfs needs root");
        Tmpfs { dir }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn disk(path: &Path, bytes: Option<u64>, min_free: u64, pct: f64) -> DiskFillParams {
    DiskFillParams {
        path: path.display().to_string(),
        bytes: bytes.map(ByteSize::b),
        percent_of_free: None,
        min_free_bytes: ByteSize::b(min_free),
        safety_floor_percent: pct,
    }
}

#[test]
fn memory_hog_is_resident_and_revert_frees_it() {
    let mut hog = MemoryHog::new(
        "mem",
        "run-mem",
        memory(64 * MIB, None),
        Duration::from_secs(60),
        exe(),
    );
    let FaultRecord::MemoryHog {
        pid, start_ticks, ..
    } = hog.inject().unwrap()
    else {
        panic!("not a memory hog record")
    };
    let rss = rss_bytes(pid).unwrap();
    assert!(rss >= 64 * MIB, "resident {rss} bytes");
    assert!(hog.verify_reverted().is_err());
    hog.revert().unwrap();
    hog.verify_reverted().unwrap();
    assert!(!proc::is_running(pid, start_ticks));
}

#[test]
fn memory_hog_in_a_cgroup_stays_within_its_limit() {
    // Under the limit: resident, accounted in its cgroup.
    let mut under = MemoryHog::new(
        "mem-under",
        "run-cg",
        memory(32 * MIB, Some(64 * MIB)),
        Duration::from_secs(60),
        exe(),
    );
    let FaultRecord::MemoryHog { pid, cgroups, .. } = under.inject().unwrap() else {
        panic!("not a memory hog record")
    };
    assert_eq!(cgroups.len(), 1);
    let procs = std::fs::read_to_string(cgroups[0].join("cgroup.procs")).unwrap();
    assert!(procs.lines().any(|l| l == pid.to_string()), "{procs}");
    let usage: u64 = std::fs::read_to_string(cgroups[0].join("memory.usage_in_bytes"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!((32 * MIB..=64 * MIB).contains(&usage), "usage {usage}");
    assert!(rss_bytes(pid).unwrap() >= 32 * MIB);
    under.revert().unwrap();
    under.verify_reverted().unwrap();
    assert!(!cgroups[0].exists(), "cgroup left behind");

    // Over the limit: the kernel holds it to the limit (OOM kill inside its cgroup).
    let mut over = MemoryHog::new(
        "mem-over",
        "run-cg",
        memory(128 * MIB, Some(32 * MIB)),
        Duration::from_secs(60),
        exe(),
    );
    let FaultRecord::MemoryHog { cgroups, .. } = over.inject().unwrap() else {
        panic!("not a memory hog record")
    };
    let peak = over.max_usage_bytes().unwrap();
    assert!(peak <= 32 * MIB, "peak {peak} above the 32 MiB limit");
    assert!(
        peak >= 16 * MIB,
        "peak {peak}: the hog never got near its limit"
    );
    wait_for(Duration::from_secs(10), "the OOM kill", || {
        over.exit_status().is_some()
    });
    over.revert().unwrap();
    over.verify_reverted().unwrap();
    let m = over.measurements();
    assert!(measured(&m, "cgroup_max_usage_bytes").unwrap() <= 32 * MIB);
    assert!(measured(&m, "cgroup_limit_hits").unwrap() > 0);
    assert!(!cgroups[0].exists());
}

#[test]
fn cpu_hog_in_a_cgroup_is_held_to_its_quota_and_measured() {
    let mut hog = CpuHog::new(
        "cpu-quota",
        "run-cpu-cg",
        CpuHogParams {
            workers: 2,
            load: 100,
            cgroup: true,
            cpu_quota_percent: Some(20),
        },
        Duration::from_secs(60),
        exe(),
    );
    let FaultRecord::CpuHog { cgroups, .. } = hog.inject().unwrap() else {
        panic!("not a cpu hog record")
    };
    assert!(!cgroups.is_empty());
    let quota = std::fs::read_to_string(
        cgroup::mount_point(cgroup::Controller::Cpu)
            .unwrap()
            .join("chaos-runner/run-cpu-cg-cpu-quota/cpu.cfs_quota_us"),
    )
    .unwrap();
    assert_eq!(quota.trim(), "20000");
    let start = Instant::now();
    let first = hog.cpu_usage_ns().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let used = hog.cpu_usage_ns().unwrap() - first;
    let wall = start.elapsed().as_nanos() as u64;
    // Two spinning threads would use 2 CPUs; the quota allows 0.2 (plus one period's
    // slack).
    assert!(
        used <= wall / 5 + 100_000_000,
        "used {used} ns in {wall} ns"
    );
    assert!(used > 0);
    hog.revert().unwrap();
    hog.verify_reverted().unwrap();
    assert!(measured(&hog.measurements(), "cpu_time_ms").is_none()); // a float
    assert!(hog
        .measurements()
        .iter()
        .any(|(k, v)| k == "cpu_time_ms" && v.parse::<f64>().unwrap() > 0.0));
    for dir in cgroups {
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
}

#[test]
fn disk_fill_allocates_its_file_and_revert_deletes_it() {
    let fs = Tmpfs::mount(64 * MIB);
    let mut fill = DiskFill::new(
        "fill",
        "run-disk",
        disk(fs.path(), Some(16 * MIB), 8 * MIB, 0.0),
        Duration::from_secs(60),
        exe(),
    );
    let FaultRecord::DiskFill { file, .. } = fill.inject().unwrap() else {
        panic!("not a disk fill record")
    };
    assert_eq!(file, fill.file());
    assert!(allocated_bytes(&file).unwrap() >= 16 * MIB);
    let (free, _) = space(fs.path()).unwrap();
    assert!(free <= 48 * MIB, "free {free}");
    fill.revert().unwrap();
    fill.verify_reverted().unwrap();
    assert!(!file.exists());
    assert!(space(fs.path()).unwrap().0 >= 63 * MIB);
}

fn disk_percent(path: &Path, percent: u8, min_free: u64, pct: f64) -> DiskFillParams {
    DiskFillParams {
        bytes: None,
        percent_of_free: Some(percent),
        ..disk(path, None, min_free, pct)
    }
}

/// `|a - b|` is within `tolerance`.
fn near(a: u64, b: u64, tolerance: u64) -> bool {
    a.abs_diff(b) <= tolerance
}

#[test]
fn disk_fill_by_percent_of_free_takes_that_share_and_revert_gives_it_back() {
    let fs = Tmpfs::mount(64 * MIB);
    // A file already there: free space is not the filesystem's size.
    std::fs::write(fs.path().join("existing"), vec![1u8; (8 * MIB) as usize]).unwrap();
    let (free_before, total) = space(fs.path()).unwrap();
    assert!(free_before < total);
    let mut fill = DiskFill::new(
        "percent",
        "run-percent",
        disk_percent(fs.path(), 50, 4 * MIB, 0.0),
        Duration::from_secs(60),
        exe(),
    );
    let FaultRecord::DiskFill { file, .. } = fill.inject().unwrap() else {
        panic!("not a disk fill record")
    };
    let wanted = free_before / 2;
    let tolerance = 64 << 10; // a few pages of rounding
    let m = fill.measurements();
    assert_eq!(measured(&m, "free_bytes_before"), Some(free_before));
    assert!(near(
        measured(&m, "requested_bytes").unwrap(),
        wanted,
        tolerance
    ));
    assert!(near(measured(&m, "fill_bytes").unwrap(), wanted, tolerance));
    assert!(!m.iter().any(|(k, _)| k == "clamped"), "{m:?}");
    // What the file really takes, and what statvfs sees gone, is that half.
    let allocated = allocated_bytes(&file).unwrap();
    assert!(
        near(allocated, wanted, tolerance),
        "allocated {allocated}, wanted {wanted}"
    );
    let (free_during, _) = space(fs.path()).unwrap();
    assert!(
        near(free_before - free_during, wanted, tolerance),
        "free {free_before} -> {free_during}, wanted {wanted} taken"
    );
    assert!(free_during >= 4 * MIB);
    fill.revert().unwrap();
    fill.verify_reverted().unwrap();
    assert!(!file.exists());
    assert!(near(space(fs.path()).unwrap().0, free_before, tolerance));
}

#[test]
fn disk_fill_by_percent_of_free_stops_at_the_safety_floor() {
    let fs = Tmpfs::mount(64 * MIB);
    let (free_before, total) = space(fs.path()).unwrap();
    // 90% of ~64 MiB would leave ~6.4 MiB; the floor is the larger of 20 MiB and 25% of
    // the filesystem (16 MiB): the fill stops at 20 MiB free.
    let floor = 20 * MIB;
    assert!(total / 4 < floor);
    let mut fill = DiskFill::new(
        "percent-floor",
        "run-percent",
        disk_percent(fs.path(), 90, floor, 25.0),
        Duration::from_secs(60),
        exe(),
    );
    let FaultRecord::DiskFill { file, .. } = fill.inject().unwrap() else {
        panic!("not a disk fill record")
    };
    let m = fill.measurements();
    assert_eq!(measured(&m, "floor_bytes"), Some(floor));
    assert!(near(
        measured(&m, "requested_bytes").unwrap(),
        free_before / 10 * 9,
        64 << 10
    ));
    assert_eq!(measured(&m, "fill_bytes"), Some(free_before - floor));
    assert!(m.iter().any(|(k, _)| k == "clamped"), "{m:?}");
    let (free, _) = space(fs.path()).unwrap();
    assert!(free >= floor, "free {free} below the floor {floor}");
    assert!(
        free <= floor + MIB,
        "free {free}: clamped far more than needed"
    );
    fill.revert().unwrap();
    fill.verify_reverted().unwrap();
    assert!(!file.exists());
    assert_eq!(std::fs::read_dir(fs.path()).unwrap().count(), 0);
}

#[test]
fn disk_fill_never_goes_past_the_safety_floor() {
    let fs = Tmpfs::mount(64 * MIB);
    // Asks for 1 GiB; the floor is the larger of 24 MiB and 25% (16 MiB): ~40 MiB fit.
    let mut fill = DiskFill::new(
        "floor",
        "run-floor",
        disk(fs.path(), Some(1 << 30), 24 * MIB, 25.0),
        Duration::from_secs(60),
        exe(),
    );
    fill.inject().unwrap();
    let m = fill.measurements();
    assert_eq!(measured(&m, "floor_bytes"), Some(24 * MIB));
    assert!(m.iter().any(|(k, _)| k == "clamped"));
    let (free, _) = space(fs.path()).unwrap();
    assert!(free >= 24 * MIB, "free {free} below the floor");
    assert!(
        free <= 25 * MIB,
        "free {free}: clamped far more than needed"
    );
    fill.revert().unwrap();
    fill.verify_reverted().unwrap();

    // At the floor already: refused, nothing created.
    let mut refused = DiskFill::new(
        "refused",
        "run-floor",
        disk(fs.path(), Some(MIB), 64 * MIB, 5.0),
        Duration::from_secs(60),
        exe(),
    );
    let err = refused.inject().unwrap_err().to_string();
    assert!(err.contains("safety floor"), "{err}");
    assert!(!refused.file().exists());
    assert_eq!(std::fs::read_dir(fs.path()).unwrap().count(), 0);
}

#[test]
fn stress_children_stop_by_themselves_when_their_time_is_up() {
    let fs = Tmpfs::mount(32 * MIB);
    let mut fill = DiskFill::new(
        "expire",
        "run-expire",
        disk(fs.path(), Some(4 * MIB), MIB, 0.0),
        Duration::from_secs(1),
        exe(),
    );
    let FaultRecord::DiskFill {
        pid: fill_pid,
        start_ticks: fill_ticks,
        file,
    } = fill.inject().unwrap()
    else {
        panic!("not a disk fill record")
    };
    // Looked at before the memory hog starts: the fill's one second is already running.
    assert!(file.exists());
    let mut hog = MemoryHog::new(
        "expire",
        "run-expire-mem",
        memory(8 * MIB, None),
        Duration::from_secs(1),
        exe(),
    );
    let FaultRecord::MemoryHog {
        pid: hog_pid,
        start_ticks: hog_ticks,
        ..
    } = hog.inject().unwrap()
    else {
        panic!("not a memory hog record")
    };
    let start = Instant::now();
    // Not reaped by us: exited children are zombies, which `is_running` does not count.
    // They end on their own a second in; the bound only tells "ended" from "never" on a
    // busy machine.
    wait_for(Duration::from_secs(20), "both children to end", || {
        !proc::is_running(fill_pid, fill_ticks) && !proc::is_running(hog_pid, hog_ticks)
    });
    eprintln!(
        "the stress children ended {:?} after the check started",
        start.elapsed()
    );
    assert!(!file.exists(), "the filler did not delete its file");
    fill.revert().unwrap();
    hog.revert().unwrap();
}

fn crash_experiment(dir: &Path, fill_dir: &Path) -> PathBuf {
    let path = dir.join("crash.yaml");
    std::fs::write(
        &path,
        format!(
            "apiVersion: chaos.game-resilience.dev/v1\nkind: Experiment\nmetadata: {{ name: res-crash }}\nspec:\n  target: {{ backend: local }}\n  faults:\n    - name: crash-fill\n      type: disk-fill\n      selector: {{ host: localhost }}\n      parameters: {{ path: {}, bytes: 8 MiB, minFreeBytes: 1 MiB, safetyFloorPercent: 0 }}\n      duration: 60s\n    - name: crash-mem\n      type: memory-hog\n      selector: {{ host: localhost }}\n      parameters: {{ bytes: 16 MiB, cgroup: true, memoryLimit: 64 MiB }}\n      duration: 60s\n  abortWhen:\n    - name: never\n      host: {{ metric: load1, breachWhen: \">\", threshold: 100000 }}\n  report: {{ dir: {} }}\n",
            fill_dir.display(),
            dir.join("reports").display()
        ),
    )
    .unwrap();
    path
}

fn children(kind: &str, fault: &str) -> Vec<u32> {
    proc::pids()
        .into_iter()
        .filter(|pid| {
            proc::cmdline(*pid).is_some_and(|a| {
                a.get(2).is_some_and(|k| k == kind)
                    && proc::flag_value(&a, "--fault") == Some(fault)
            }) && proc::stat(*pid).is_some_and(|(s, _)| s != 'Z')
        })
        .collect()
}

fn fill_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".chaos-fill-")
        })
        .collect()
}

fn mem_cgroups() -> Vec<PathBuf> {
    let parent = cgroup::mount_point(cgroup::Controller::Memory)
        .unwrap()
        .join("chaos-runner");
    std::fs::read_dir(parent)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_dir() && p.to_string_lossy().contains("res-crash-"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_sigkilled_runner_takes_its_children_down_and_recover_cleans_the_rest() {
    let dir = TempDir::new("res-crash");
    let fs = Tmpfs::mount(64 * MIB);
    let exp = crash_experiment(dir.path(), fs.path());
    let state = dir.path().join("state");

    // 1. Only the runner is SIGKILLed: the filler gets SIGTERM from the kernel and deletes
    //    its file, the hog gets SIGKILL; only the cgroup is left, and recover removes it.
    let mut runner = support::start_run(&exp, &state);
    wait_for(Duration::from_secs(20), "both faults", || {
        fill_files(fs.path()).len() == 1 && !children("memory", "crash-mem").is_empty()
    });
    assert_eq!(mem_cgroups().len(), 1);
    runner.kill().unwrap();
    runner.wait().unwrap();
    wait_for(
        Duration::from_secs(5),
        "the children to die with it",
        || children("disk", "crash-fill").is_empty() && children("memory", "crash-mem").is_empty(),
    );
    wait_for(
        Duration::from_secs(5),
        "the filler to delete its file",
        || fill_files(fs.path()).is_empty(),
    );
    let recover = || {
        let out = Command::new(exe())
            .args(["--output", "json", "recover", "--state-dir"])
            .arg(&state)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    recover();
    assert!(mem_cgroups().is_empty(), "recover left {:?}", mem_cgroups());

    // 2. The filler is SIGKILLed too (no handler runs): its file stays until recover
    //    deletes it by the journaled path.
    let mut runner = support::start_run(&exp, &state);
    wait_for(Duration::from_secs(20), "both faults", || {
        fill_files(fs.path()).len() == 1 && !children("memory", "crash-mem").is_empty()
    });
    for pid in children("disk", "crash-fill") {
        proc::signal(pid, libc::SIGKILL);
    }
    runner.kill().unwrap();
    runner.wait().unwrap();
    wait_for(Duration::from_secs(5), "the children to be gone", || {
        children("disk", "crash-fill").is_empty() && children("memory", "crash-mem").is_empty()
    });
    assert_eq!(
        fill_files(fs.path()).len(),
        1,
        "the file should still be there"
    );
    assert_eq!(mem_cgroups().len(), 1);
    recover();
    assert!(
        fill_files(fs.path()).is_empty(),
        "recover left the fill file"
    );
    assert!(mem_cgroups().is_empty());
    assert!(space(fs.path()).unwrap().0 >= 63 * MIB);
}

#[test]
fn revert_from_journal_removes_a_dead_hogs_cgroup() {
    // The record alone is enough: kill the hog, remove its cgroup.
    let mut hog = MemoryHog::new(
        "journal-mem",
        "run-journal",
        memory(8 * MIB, Some(64 * MIB)),
        Duration::from_secs(60),
        exe(),
    );
    let record = hog.inject().unwrap();
    let FaultRecord::MemoryHog {
        pid,
        start_ticks,
        ref cgroups,
    } = record
    else {
        panic!("not a memory hog record")
    };
    assert!(cgroups[0].exists());
    chaos_runner::faults::revert_from_journal("run-journal", "journal-mem", Some(&record)).unwrap();
    assert!(!proc::is_running(pid, start_ticks));
    assert!(!cgroups[0].exists());
    hog.revert().unwrap();
    hog.verify_reverted().unwrap();
}

#[test]
fn a_torn_journal_is_swept_by_run_and_fault_name() {
    // The runner died between journaling the intent and the record: recover finds the
    // children by command line, the fill file by the filler's `--path`, the cgroup by
    // run and fault name.
    let fs = Tmpfs::mount(32 * MIB);
    let mut fill = DiskFill::new(
        "torn",
        "run-torn",
        disk(fs.path(), Some(4 * MIB), MIB, 0.0),
        Duration::from_secs(60),
        exe(),
    );
    let FaultRecord::DiskFill { file, .. } = fill.inject().unwrap() else {
        panic!("not a disk fill record")
    };
    let mut hog = MemoryHog::new(
        "torn",
        "run-torn",
        memory(8 * MIB, Some(64 * MIB)),
        Duration::from_secs(60),
        exe(),
    );
    let FaultRecord::MemoryHog { cgroups, .. } = hog.inject().unwrap() else {
        panic!("not a memory hog record")
    };
    assert!(file.exists() && cgroups[0].exists());
    chaos_runner::faults::revert_from_journal("run-torn", "torn", None).unwrap();
    assert!(!file.exists(), "sweep left the fill file");
    assert!(!cgroups[0].exists(), "sweep left the cgroup");
    assert!(proc::stress_children("run-torn", "torn").is_empty());
    fill.revert().unwrap();
    hog.revert().unwrap();
    fill.verify_reverted().unwrap();
    hog.verify_reverted().unwrap();
}

#[test]
fn a_fill_file_journaled_with_the_intent_is_deleted_after_runner_and_filler_both_die() {
    // The intent carries the planned record (the file's path, no child yet). The filler is
    // SIGKILLed, so no handler deletes its file, and the runner never wrote the `injected`
    // record: recover reverts from the planned record alone.
    let fs = Tmpfs::mount(32 * MIB);
    let mut fill = DiskFill::new(
        "planned",
        "run-planned",
        disk(fs.path(), Some(4 * MIB), MIB, 0.0),
        Duration::from_secs(60),
        exe(),
    );
    let planned = fill
        .planned_record()
        .expect("a disk fill journals its file first");
    let FaultRecord::DiskFill { pid: 0, file, .. } = &planned else {
        panic!("the planned record has no child yet: {planned:?}")
    };
    let FaultRecord::DiskFill { pid, .. } = fill.inject().unwrap() else {
        panic!("not a disk fill record")
    };
    assert!(file.exists());
    proc::signal(pid, libc::SIGKILL);
    assert!(proc::wait_until(Duration::from_secs(5), || {
        proc::stress_children("run-planned", "planned").is_empty()
    }));
    assert!(file.exists(), "a SIGKILLed filler cannot delete its file");
    chaos_runner::faults::revert_from_journal("run-planned", "planned", Some(&planned)).unwrap();
    assert!(!file.exists(), "recover left the fill file");
    fill.revert().unwrap();
    fill.verify_reverted().unwrap();
}
