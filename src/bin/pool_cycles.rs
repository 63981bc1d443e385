//! Creates and drops a pool (two workers, the start method named in its
//! first argument) as many times as its second argument says, under a
//! seccomp filter that kills any process of the tree (this one, its workers,
//! the fork server) the moment it calls `bind` or `listen`: a run that ends
//! normally proves aiomp never bound or listened on a socket, abstract or
//! not. It prints what the tests compare:
//!
//! ```text
//! fds <before any pool> <after one warm-up cycle> <after the cycles>
//! left open: [<what each fd opened since the start and still open refers to>]
//! survivors <workers still running 2 s after their pool was dropped>
//! children <children of this process at the end, but for spares>
//! forkservers <the fork servers among them>
//! spares <the fork servers' spares, workers forked ahead of need>
//! zombies <children that exited and were never reaped>
//! ```
//!
//! `pool_cycles --bind-check` installs the same filter and then binds an
//! abstract socket: the tests expect it to die of SIGSYS, which shows the
//! filter works.

use std::time::{Duration, Instant};

use aiomp::{Pool, StartMethod};

#[aiomp::remote]
async fn double(x: u64) -> u64 {
    x * 2
}

/// A seccomp filter that kills the process on `bind` or `listen`.
#[allow(unsafe_code)]
mod no_bind {
    use std::ffi::{c_int, c_long, c_ulong};

    unsafe extern "C" {
        fn prctl(option: c_int, arg2: c_ulong, arg3: c_ulong, arg4: c_ulong, arg5: c_ulong) -> c_int;
        fn syscall(number: c_long, ...) -> c_long;
    }

    #[repr(C)]
    struct SockFilter {
        code: u16,
        jt: u8,
        jf: u8,
        k: u32,
    }

    #[repr(C)]
    struct SockFprog {
        len: u16,
        filter: *const SockFilter,
    }

    #[cfg(target_arch = "x86_64")]
    const ARCH: (u32, c_long, u32, u32) = (0xC000_003E, 317, 49, 50); // AUDIT_ARCH_X86_64, seccomp, bind, listen
    #[cfg(target_arch = "aarch64")]
    const ARCH: (u32, c_long, u32, u32) = (0xC000_00B7, 277, 200, 201); // AUDIT_ARCH_AARCH64, seccomp, bind, listen

    const PR_SET_NO_NEW_PRIVS: c_int = 38;
    const SECCOMP_SET_MODE_FILTER: c_ulong = 1;
    const SECCOMP_FILTER_FLAG_TSYNC: c_ulong = 1;
    const BPF_LD_W_ABS: u16 = 0x20;
    const BPF_JEQ_K: u16 = 0x15;
    const BPF_RET_K: u16 = 0x06;
    const SECCOMP_RET_KILL_PROCESS: u32 = 0x8000_0000;
    const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;

    /// Installs the filter on every thread of this process; every process
    /// it starts afterwards (fork or exec) inherits it.
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    pub(crate) fn install() -> std::io::Result<()> {
        let (arch, seccomp, bind, listen) = ARCH;
        let op = |code, jt, jf, k| SockFilter { code, jt, jf, k };
        let program = [
            op(BPF_LD_W_ABS, 0, 0, 4), // seccomp_data.arch
            op(BPF_JEQ_K, 0, 3, arch),
            op(BPF_LD_W_ABS, 0, 0, 0), // seccomp_data.nr
            op(BPF_JEQ_K, 2, 0, bind),
            op(BPF_JEQ_K, 1, 0, listen),
            op(BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW),
            op(BPF_RET_K, 0, 0, SECCOMP_RET_KILL_PROCESS),
        ];
        let fprog = SockFprog {
            len: program.len() as u16,
            filter: program.as_ptr(),
        };
        // SAFETY: prctl with integer arguments only.
        if unsafe { prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fprog` points at `program`, both alive for the call; the
        // kernel copies the filter.
        let ret = unsafe {
            syscall(
                seccomp,
                SECCOMP_SET_MODE_FILTER,
                SECCOMP_FILTER_FLAG_TSYNC,
                &raw const fprog,
            )
        };
        match ret {
            0 => Ok(()),
            -1 => Err(std::io::Error::last_os_error()),
            thread => Err(std::io::Error::other(format!(
                "thread {thread} could not be synchronised"
            ))),
        }
    }

    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    pub(crate) fn install() -> std::io::Result<()> {
        Err(std::io::Error::other("no seccomp filter for this architecture"))
    }
}

/// What each open fd of this process refers to, by fd number.
fn fd_targets() -> std::collections::BTreeMap<u32, String> {
    let listing = format!("/proc/{}/fd", std::process::id());
    let mut fds = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir("/proc/self/fd").expect("/proc/self/fd").flatten() {
        if let (Ok(fd), Ok(target)) = (
            entry.file_name().to_string_lossy().parse(),
            std::fs::read_link(entry.path()),
        ) {
            let target = target.to_string_lossy().into_owned();
            // Not the listing's own fd.
            if target != listing {
                fds.insert(fd, target);
            }
        }
    }
    fds
}

/// This process's fds once the runtime has finished closing what dropped
/// pools released (a link's tasks close their ends as they wind down): the
/// set once it has not changed for 200 ms, or after 5 s.
async fn settled_fds() -> std::collections::BTreeMap<u32, String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = fd_targets();
    let mut stable_since = Instant::now();
    while Instant::now() < deadline && stable_since.elapsed() < Duration::from_millis(200) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = fd_targets();
        if now != last {
            last = now;
            stable_since = Instant::now();
        }
    }
    last
}

/// Builds a pool, runs one task on it, drops it; returns its worker pids.
async fn cycle(method: StartMethod) -> Vec<u32> {
    let pool = Pool::builder()
        .processes(2)
        .start_method(method)
        .build()
        .await
        .expect("build");
    assert_eq!(pool.apply(double, (21,)).await.expect("apply"), 42);
    let pids = pool.worker_pids();
    drop(pool);
    pids
}

fn list(pids: &[u32]) -> String {
    pids.iter().map(u32::to_string).collect::<Vec<_>>().join(" ")
}

fn main() {
    aiomp::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = no_bind::install() {
        eprintln!("could not install the seccomp filter: {e}");
        std::process::exit(2);
    }
    if args.first().map(String::as_str) == Some("--bind-check") {
        use std::os::linux::net::SocketAddrExt;
        let address = std::os::unix::net::SocketAddr::from_abstract_name(b"aiomp-bind-check").expect("name");
        let bound = std::os::unix::net::UnixListener::bind_addr(&address);
        println!("bind returned {bound:?}: the filter did not stop it");
        std::process::exit(1);
    }
    let method = match args.first().map(String::as_str) {
        Some("fork") => StartMethod::Fork,
        Some("forkserver") => StartMethod::Forkserver,
        _ => StartMethod::Spawn,
    };
    let cycles: usize = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(100);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let me = std::process::id();
        let before = fd_targets();
        // One warm-up cycle: the fork server starts on first use and stays.
        let mut workers = cycle(method).await;
        let warm = settled_fds().await;
        for _ in 0..cycles {
            workers.extend(cycle(method).await);
        }
        let survivors = aiomp_suite::wait_all_exited(&workers, Duration::from_secs(2));
        let deadline = Instant::now() + Duration::from_secs(10);
        let forkservers = aiomp_suite::forkservers_of(me);
        let spares = aiomp_suite::spares_of(me);
        let others = || {
            let mut children = aiomp_suite::children_of(me);
            children.retain(|pid| !spares.contains(pid));
            children
        };
        while others().len() > forkservers.len() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let after = settled_fds().await;
        let children = others();
        let zombies: Vec<u32> = aiomp_suite::children_of(me)
            .into_iter()
            .filter(|&pid| aiomp_suite::has_exited(pid))
            .collect();
        let left: Vec<&String> = after
            .iter()
            .filter(|&(fd, target)| before.get(fd) != Some(target))
            .map(|(_, target)| target)
            .collect();
        println!("fds {} {} {}", before.len(), warm.len(), after.len());
        println!("left open: {left:?}");
        println!("survivors {}", list(&survivors));
        println!("children {}", list(&children));
        println!("forkservers {}", list(&forkservers));
        println!("spares {}", list(&spares));
        println!("zombies {}", list(&zombies));
    });
}
