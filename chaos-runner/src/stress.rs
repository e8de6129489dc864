//! `chaos-runner stress cpu`: the CPU hog's own process. It asks the kernel to kill it when
//! its parent (the runner) dies, and it exits by itself when its duration is up.

use std::time::{Duration, Instant};

/// Burns CPU: `workers` threads, each busy `load` percent of every 100 ms, for `duration`.
/// Returns when the time is up.
pub fn cpu(workers: u32, load: u8, duration: Duration) {
    die_with_parent();
    let deadline = Instant::now() + duration;
    let slice = Duration::from_millis(100);
    let busy = slice * u32::from(load.min(100)) / 100;
    for _ in 0..workers {
        std::thread::spawn(move || {
            let mut spin: u64 = 0;
            while Instant::now() < deadline {
                let start = Instant::now();
                while start.elapsed() < busy {
                    spin = std::hint::black_box(
                        spin.wrapping_mul(6364136223846793005).wrapping_add(1),
                    );
                }
                let rest = slice.saturating_sub(start.elapsed());
                if !rest.is_zero() {
                    std::thread::sleep(
                        rest.min(deadline.saturating_duration_since(Instant::now())),
                    );
                }
            }
        });
    }
    std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
}

/// Parent-death signal: SIGKILL this process when the thread that started it exits. If
/// the parent is already gone (we were re-parented), exit now.
fn die_with_parent() {
    // SAFETY: prctl(PR_SET_PDEATHSIG) and getppid() take no pointers.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
        if libc::getppid() == 1 {
            std::process::exit(0);
        }
    }
}
