//! What the SLO tests run: `chaos-runner slo test`, and the real `promtool` (Debian's
//! `prometheus` package), found or skipped (a failure under `CI=true`), each asserted to
//! pass with its output shown otherwise.

use std::path::Path;
use std::process::{Command, Output};

/// `promtool`, or `None` (skip) outside CI when it is missing.
pub fn promtool() -> Option<&'static str> {
    let found = Command::new("promtool")
        .arg("--version")
        .output()
        .map(|_| ())
        .map_err(|e| format!("promtool not found ({e})"));
    super::servers::require(found).then_some("promtool")
}

/// What a command printed, stdout then stderr.
pub fn said(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// Runs `promtool ARGS` in `dir` and asserts it passed, showing what it said otherwise.
pub fn promtool_passes(promtool: &str, dir: &Path, args: &[&str]) {
    let out = Command::new(promtool)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "promtool {args:?}: {}", said(&out));
}

/// Runs `chaos-runner slo test FILE --dir DIR`, asserts it passed, and returns its stdout
/// (the count of tests and the `not tested:` lines).
pub fn slo_test(file: &Path, dir: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_chaos-runner"))
        .args(["slo", "test"])
        .arg(file)
        .arg("--dir")
        .arg(dir)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "slo test {}: {}",
        file.display(),
        said(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `chaos-runner slo rules FILE -o OUT` and asserts it passed.
pub fn slo_rules(file: &Path, out: &Path) {
    let run = Command::new(env!("CARGO_BIN_EXE_chaos-runner"))
        .args(["slo", "rules"])
        .arg(file)
        .arg("-o")
        .arg(out)
        .output()
        .unwrap();
    assert_eq!(
        run.status.code(),
        Some(0),
        "slo rules {}: {}",
        file.display(),
        said(&run)
    );
}
