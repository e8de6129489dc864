//! A relay that forwards inside the kernel: both sockets of a connection go into an eBPF
//! `SOCKHASH`, and a `sk_skb` verdict program redirects every arriving segment to the
//! other socket's send path, so no proxy thread wakes up or copies anything. This is the
//! ceiling of what an eBPF-accelerated fault proxy could reach on this machine, measured
//! beside the others so the 0.8x-of-direct target (docs/BENCHMARKS.md) can be judged against it.
//!
//! It is a bench reference, not a proxy: it forwards no half-close (the client's FIN tears
//! the pair down, which the bench's echo and sink protocols allow) and has no toxics. It needs
//! `CAP_BPF` and `CAP_NET_ADMIN` (root) and a kernel with `CONFIG_BPF_STREAM_PARSER`.
//!
//! The program is sixteen hand-assembled instructions (no compiler for the BPF target is
//! needed): look up the receiving socket's cookie in a `HASH` map of pairs and redirect
//! the segment to the peer socket by its cookie; no pair means pass.

use std::io::{self, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

/// `bpf(2)` commands, map and program types and the attach point (`linux/bpf.h`).
const BPF_MAP_CREATE: i32 = 0;
const BPF_MAP_UPDATE_ELEM: i32 = 2;
const BPF_PROG_LOAD: i32 = 5;
const BPF_PROG_ATTACH: i32 = 8;
const MAP_TYPE_HASH: u32 = 1;
const MAP_TYPE_SOCKHASH: u32 = 18;
const PROG_TYPE_SK_SKB: u32 = 14;
const ATTACH_SK_SKB_VERDICT: u32 = 38;
/// Helper function ids.
const HELPER_MAP_LOOKUP_ELEM: i32 = 1;
const HELPER_GET_SOCKET_COOKIE: i32 = 46;
const HELPER_SK_REDIRECT_HASH: i32 = 72;
/// `SO_COOKIE` (not in every libc release).
const SO_COOKIE: libc::c_int = 57;
/// Most connections the maps hold.
const MAX_SOCKETS: u32 = 4096;

/// One BPF instruction, as the kernel lays it out.
#[repr(C)]
#[derive(Clone, Copy)]
struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: dst | (src << 4),
        off,
        imm,
    }
}

/// `dst = src` (64-bit).
fn mov(dst: u8, src: u8) -> Insn {
    insn(0xbf, dst, src, 0, 0)
}
/// `dst = imm`.
fn mov_imm(dst: u8, imm: i32) -> Insn {
    insn(0xb7, dst, 0, 0, imm)
}
fn call(helper: i32) -> Insn {
    insn(0x85, 0, 0, 0, helper)
}
fn exit() -> Insn {
    insn(0x95, 0, 0, 0, 0)
}
/// `dst = map` (a 64-bit immediate naming the map by its descriptor: two slots).
fn load_map(dst: u8, map: &OwnedFd) -> [Insn; 2] {
    [insn(0x18, dst, 1, 0, map.as_raw_fd()), insn(0, 0, 0, 0, 0)]
}

/// The verdict program: see the module docs.
fn program(pairs: &OwnedFd, sockets: &OwnedFd) -> Vec<Insn> {
    let mut p = vec![
        mov(6, 1),                      // r6 = skb
        call(HELPER_GET_SOCKET_COOKIE), // r0 = cookie of the receiving socket
        insn(0x7b, 10, 0, -8, 0),       // *(u64 *)(fp - 8) = r0
    ];
    p.extend(load_map(1, pairs));
    p.extend([
        mov(2, 10),
        insn(0x07, 2, 0, 0, -8),      // r2 = fp - 8 (the key)
        call(HELPER_MAP_LOOKUP_ELEM), // r0 = &peer cookie, or null
        insn(0x15, 0, 0, 7, 0),       // null: jump to pass (7 slots on)
        mov(3, 0),                    // key = the peer's cookie
    ]);
    p.extend(load_map(2, sockets));
    p.extend([
        mov(1, 6),
        mov_imm(4, 0),
        call(HELPER_SK_REDIRECT_HASH),
        exit(),
        mov_imm(0, 1), // pass: SK_PASS
        exit(),
    ]);
    p
}

/// A `bpf(2)` call with the attribute block `attr`.
fn bpf(cmd: i32, attr: &mut [u8; 128]) -> io::Result<i64> {
    // SAFETY: `attr` is a zeroed 128-byte block laid out for `cmd`; the pointers written
    // into it outlive the call.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len() as u32) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn put32(attr: &mut [u8; 128], at: usize, v: u32) {
    attr[at..at + 4].copy_from_slice(&v.to_ne_bytes());
}

fn put64(attr: &mut [u8; 128], at: usize, v: u64) {
    attr[at..at + 8].copy_from_slice(&v.to_ne_bytes());
}

fn owned(fd: i64) -> OwnedFd {
    // SAFETY: `fd` was just returned by bpf(2) and belongs to nobody else.
    unsafe { OwnedFd::from_raw_fd(fd as RawFd) }
}

fn map_create(kind: u32, key: u32, value: u32) -> io::Result<OwnedFd> {
    let mut attr = [0u8; 128];
    put32(&mut attr, 0, kind);
    put32(&mut attr, 4, key);
    put32(&mut attr, 8, value);
    put32(&mut attr, 12, MAX_SOCKETS);
    bpf(BPF_MAP_CREATE, &mut attr).map(owned)
}

fn map_update(map: &OwnedFd, key: &u64, value: &[u64]) -> io::Result<()> {
    let mut attr = [0u8; 128];
    put32(&mut attr, 0, map.as_raw_fd() as u32);
    put64(&mut attr, 8, key as *const u64 as u64);
    put64(&mut attr, 16, value.as_ptr() as u64);
    bpf(BPF_MAP_UPDATE_ELEM, &mut attr).map(drop)
}

fn cookie(socket: &TcpStream) -> io::Result<u64> {
    let mut cookie = 0u64;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: a u64 out-parameter of the right length for SO_COOKIE.
    let r = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_COOKIE,
            (&mut cookie as *mut u64).cast(),
            &mut len,
        )
    };
    if r == 0 {
        Ok(cookie)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The loaded program and its two maps (freed with the last descriptor).
struct Redirect {
    pairs: OwnedFd,
    sockets: OwnedFd,
    _program: OwnedFd,
}

impl Redirect {
    fn load() -> io::Result<Redirect> {
        let pairs = map_create(MAP_TYPE_HASH, 8, 8)?;
        let sockets = map_create(MAP_TYPE_SOCKHASH, 8, 8)?;
        let code = program(&pairs, &sockets);
        let license = b"GPL\0";
        let mut log = vec![0u8; 64 * 1024];
        let mut attr = [0u8; 128];
        put32(&mut attr, 0, PROG_TYPE_SK_SKB);
        put32(&mut attr, 4, code.len() as u32);
        put64(&mut attr, 8, code.as_ptr() as u64);
        put64(&mut attr, 16, license.as_ptr() as u64);
        put32(&mut attr, 24, 1);
        put32(&mut attr, 28, log.len() as u32);
        put64(&mut attr, 32, log.as_mut_ptr() as u64);
        let program = bpf(BPF_PROG_LOAD, &mut attr).map(owned).map_err(|e| {
            let text = String::from_utf8_lossy(&log);
            io::Error::new(e.kind(), format!("{e}: {}", text.trim_end_matches('\0')))
        })?;
        let mut attr = [0u8; 128];
        put32(&mut attr, 0, sockets.as_raw_fd() as u32);
        put32(&mut attr, 4, program.as_raw_fd() as u32);
        put32(&mut attr, 8, ATTACH_SK_SKB_VERDICT);
        bpf(BPF_PROG_ATTACH, &mut attr)?;
        Ok(Redirect {
            pairs,
            sockets,
            _program: program,
        })
    }

    /// Puts both sockets in the maps: from then on the kernel forwards between them.
    fn join(&self, a: &TcpStream, b: &TcpStream) -> io::Result<()> {
        let (ca, cb) = (cookie(a)?, cookie(b)?);
        map_update(&self.pairs, &ca, &[cb])?;
        map_update(&self.pairs, &cb, &[ca])?;
        map_update(&self.sockets, &ca, &[a.as_raw_fd() as u64])?;
        map_update(&self.sockets, &cb, &[b.as_raw_fd() as u64])
    }
}

/// Blocks until `socket` ends: a read that returns 0 or fails. Reads that find nothing
/// (the segment was redirected) are retried.
fn wait_end(mut socket: &TcpStream) {
    let mut buf = [0u8; 64];
    loop {
        match socket.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {} // a segment the program passed: none is expected
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// Starts the in-kernel relay to `upstream`, or says why this machine cannot run it.
pub fn start(upstream: SocketAddr) -> Result<SocketAddr, String> {
    let redirect =
        Arc::new(Redirect::load().map_err(|e| format!("cannot load the sk_skb program: {e}"))?);
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(upstream) else {
                continue;
            };
            for s in [&client, &server] {
                let _ = s.set_nodelay(true);
            }
            if let Err(e) = redirect.join(&client, &server) {
                eprintln!("kernel relay: cannot add the sockets to the map: {e}");
                continue;
            }
            // Closing a socket removes it from the map. A FIN is not forwarded, so the
            // client's end (the bench's clients always close first) ends the pair.
            std::thread::spawn(move || {
                wait_end(&client);
                drop((client, server));
            });
        }
    });
    Ok(addr)
}
