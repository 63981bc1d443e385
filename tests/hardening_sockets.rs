//! Only our own children get in. aiomp binds no socket: every channel is one
//! end of a socketpair that the child inherited, and the parent sends a
//! random token first. These tests show it from the outside:
//!
//! - with a pool of each start method running, every socket of the parent,
//!   the workers and the fork server is an unnamed Unix socket (no path, no
//!   abstract `@name`), none listens, and none is an inet socket: there is
//!   nothing to connect to;
//! - 100 create/drop cycles of a pool (each start method) run under a
//!   seccomp filter that kills any process of the tree that calls `bind` or
//!   `listen` (so none ever does), and leave no socket files or temporary
//!   directories, no extra open fds in the parent (beyond the fork server's
//!   channel), and no child process or zombie (but the fork server);
//! - as root: another local user, created for the test, cannot read a
//!   worker's token (`/proc/PID/environ`), list or open its fds, or copy
//!   them with `pidfd_getfd`, and finds no address for any of our sockets.
//!
//! A process of the same user that reaches a worker's channel without the
//! token is refused: `child_refuses_a_parent_with_the_wrong_token` in
//! `tests/transport_hostile_peer.rs` covers it.

use std::collections::{BTreeSet, HashMap};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use aiomp::{Pool, StartMethod, Worker, remote};

#[remote]
async fn double(x: u64) -> u64 {
    x * 2
}

/// One line of `/proc/net/unix`.
#[derive(Debug, Clone)]
struct UnixSocket {
    flags: u32,
    /// The bound address: a path, or `@name` in the abstract namespace.
    address: Option<String>,
}

/// `__SO_ACCEPTCON` in the Flags column: a listening socket.
const LISTENING: u32 = 0x0001_0000;

/// Every Unix socket in this network namespace, by inode.
fn unix_sockets() -> HashMap<u64, UnixSocket> {
    let table = std::fs::read_to_string("/proc/net/unix").unwrap();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let inode = fields.get(6)?.parse().ok()?;
            let flags = u32::from_str_radix(fields.get(3)?, 16).ok()?;
            let address = fields.get(7).map(|path| (*path).to_owned());
            Some((inode, UnixSocket { flags, address }))
        })
        .collect()
}

/// The inodes of every inet socket (TCP, UDP, v4 and v6) in this namespace.
fn inet_sockets() -> BTreeSet<u64> {
    let mut inodes = BTreeSet::new();
    for table in ["tcp", "tcp6", "udp", "udp6"] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/net/{table}")) else {
            continue;
        };
        for line in text.lines().skip(1) {
            if let Some(Ok(inode)) = line.split_whitespace().nth(9).map(str::parse) {
                inodes.insert(inode);
            }
        }
    }
    inodes
}

/// The (fd, inode) of each socket process `pid` holds.
fn sockets_of(pid: u32) -> Vec<(u32, u64)> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return found;
    };
    for entry in entries.flatten() {
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        let target = target.to_string_lossy();
        let inode = target.strip_prefix("socket:[").and_then(|rest| rest.strip_suffix(']'));
        if let (Ok(fd), Some(Ok(inode))) = (entry.file_name().to_string_lossy().parse(), inode.map(str::parse)) {
            found.push((fd, inode));
        }
    }
    found
}

async fn pool(method: StartMethod, processes: usize) -> Pool {
    let pool = Pool::builder()
        .processes(processes)
        .start_method(method)
        .build()
        .await
        .unwrap();
    assert_eq!(pool.apply(double, (21,)).await.unwrap(), 42);
    pool
}

#[aiomp::test]
async fn no_socket_of_a_pool_has_an_address_or_listens() {
    let me = std::process::id();
    let pools = [
        pool(StartMethod::Spawn, 2).await,
        pool(StartMethod::Fork, 2).await,
        pool(StartMethod::Forkserver, 2).await,
    ];
    let servers = aiomp_suite::forkservers_of(me);
    assert_eq!(servers.len(), 1, "one fork server: {servers:?}");
    // A lone start leaves a spare waiting (a pool's start does not).
    let one_shot = Worker::with_args(double, (1,)).start_method(StartMethod::Forkserver);
    assert_eq!(one_shot.await.unwrap(), 2);
    let spares = aiomp_suite::settled_spares_of(me);
    assert_eq!(spares.len(), 1, "one spare: {spares:?}");
    let mut processes = vec![("parent", me), ("fork server", servers[0]), ("spare", spares[0])];
    for (pool, method) in pools.iter().zip(["spawn", "fork", "forkserver"]) {
        for pid in pool.worker_pids() {
            processes.push((method, pid));
        }
    }
    let unix = unix_sockets();
    let inet = inet_sockets();
    for &(role, pid) in &processes {
        let sockets = sockets_of(pid);
        let ours: Vec<&UnixSocket> = sockets.iter().filter_map(|(_, inode)| unix.get(inode)).collect();
        eprintln!(
            "{role} {pid}: {} sockets, {} of them Unix: {ours:?}",
            sockets.len(),
            ours.len()
        );
        // Not vacuous: each process holds at least its channel.
        let least = if role == "parent" { 2 * 3 + 1 } else { 1 };
        assert!(
            ours.len() >= least,
            "{role} {pid}: only {} Unix sockets: {sockets:?}",
            ours.len()
        );
        for (fd, inode) in &sockets {
            assert!(!inet.contains(inode), "{role} {pid}: fd {fd} is an inet socket");
            if let Some(socket) = unix.get(inode) {
                assert_eq!(
                    socket.address, None,
                    "{role} {pid}: fd {fd} is bound to an address, something could connect to it"
                );
                assert_eq!(socket.flags & LISTENING, 0, "{role} {pid}: fd {fd} listens");
            }
        }
    }
    // Nothing of ours is bound anywhere in the namespace, abstract names included.
    let ours: BTreeSet<u64> = processes
        .iter()
        .flat_map(|&(_, pid)| sockets_of(pid).into_iter().map(|(_, inode)| inode))
        .collect();
    let named: Vec<String> = unix_sockets()
        .into_iter()
        .filter(|(inode, _)| ours.contains(inode))
        .filter_map(|(_, socket)| socket.address)
        .collect();
    assert!(named.is_empty(), "bound addresses of ours: {named:?}");
}

/// The entries of `dir` that are sockets or directories, by name.
fn sockets_and_directories(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_socket() || kind.is_dir()))
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect()
}

/// A directory of our own, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str, mode: u32) -> TempDir {
        let path = std::env::temp_dir().join(format!("aiomp-hardening-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Waits (bounded) for a started command and collects its output.
fn output_within(mut command: Command, timeout: Duration) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + timeout;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "{command:?} ran past {timeout:?}; stdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// The value of the line of `stdout` that starts with `key `.
fn field<'a>(stdout: &'a str, key: &str) -> &'a str {
    stdout
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key:?} line in:\n{stdout}"))
        .trim()
}

/// Runs `pool_cycles` (100 create/drop cycles with `method`, under the
/// no-bind seccomp filter) with a private temporary directory, and checks
/// what it leaves behind.
fn hundred_cycles_leave_nothing_behind(method: &str) {
    let system_tmp = PathBuf::from("/tmp");
    let before = sockets_and_directories(&system_tmp);
    let private = TempDir::new(&format!("tmp-{method}"), 0o700);
    let mut command = Command::new(env!("CARGO_BIN_EXE_pool_cycles"));
    command
        .args([method, "100"])
        .env("TMPDIR", &private.0)
        .env("XDG_RUNTIME_DIR", &private.0);
    let output = output_within(command, Duration::from_secs(300));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("{method}:\n{stdout}");
    assert_ne!(
        output.status.signal(),
        Some(libc::SIGSYS),
        "{method}: a process called bind or listen and was killed by the seccomp filter\n{stderr}"
    );
    assert!(
        output.status.success(),
        "{method}: {:?}\n{stdout}\n{stderr}",
        output.status
    );

    // The parent's fds are back where they started, but for the fork
    // server's channel (one socket, held twice) and its pidfds.
    let fds: Vec<usize> = field(&stdout, "fds ")
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    let left = field(&stdout, "left open:");
    if method == "forkserver" {
        assert!(fds[2] <= fds[0] + 4, "{method}: fds {fds:?}, left open: {left}");
        for kind in left.trim_matches(['[', ']']).split(", ").filter(|k| !k.is_empty()) {
            assert!(
                kind.starts_with("\"socket:[") || kind == "\"anon_inode:[pidfd]\"",
                "{method}: left open: {left}"
            );
        }
    } else {
        assert_eq!(fds[2], fds[0], "{method}: fds {fds:?}, left open: {left}");
    }
    assert_eq!(fds[2], fds[1], "{method}: fds grew over the cycles: {fds:?}");
    assert_eq!(
        field(&stdout, "survivors "),
        "",
        "{method}: workers outlived their pool"
    );
    assert_eq!(field(&stdout, "zombies "), "", "{method}: zombies");
    assert_eq!(
        field(&stdout, "children "),
        field(&stdout, "forkservers "),
        "{method}: children other than the fork server"
    );
    if method == "forkserver" {
        assert_ne!(field(&stdout, "forkservers "), "", "the fork server should still run");
    }
    // A pool's start leaves no spare behind it.
    assert_eq!(field(&stdout, "spares "), "", "{method}: spares");

    // Nothing in the temporary directories.
    let private_entries: Vec<_> = std::fs::read_dir(&private.0).unwrap().flatten().collect();
    assert!(
        private_entries.is_empty(),
        "{method}: left in TMPDIR: {private_entries:?}"
    );
    let new: Vec<String> = sockets_and_directories(&system_tmp)
        .difference(&before)
        .filter(|name| !name.starts_with("aiomp-hardening-")) // this file's own
        .filter(|name| {
            // Other programs on the machine may come and go in /tmp: only a
            // socket, or a directory named after aiomp, is suspect.
            let path = system_tmp.join(name);
            name.contains("aiomp") || std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_socket())
        })
        .cloned()
        .collect();
    assert!(new.is_empty(), "{method}: new in /tmp: {new:?}");
}

#[test]
fn a_hundred_spawn_pools_leave_nothing_behind_and_never_bind() {
    hundred_cycles_leave_nothing_behind("spawn");
}

#[test]
fn a_hundred_fork_pools_leave_nothing_behind_and_never_bind() {
    hundred_cycles_leave_nothing_behind("fork");
}

#[test]
fn a_hundred_forkserver_pools_leave_nothing_behind_and_never_bind() {
    hundred_cycles_leave_nothing_behind("forkserver");
}

/// The seccomp filter `pool_cycles` runs under does stop a bind: without
/// this, the tests above could pass with a filter that does nothing.
#[test]
fn the_no_bind_filter_kills_a_process_that_binds() {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pool_cycles"));
    command.arg("--bind-check");
    let output = output_within(command, Duration::from_secs(60));
    assert_eq!(
        output.status.signal(),
        Some(libc::SIGSYS),
        "{:?}: {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A local user created for the test, deleted on drop (with its group).
struct LocalUser {
    name: String,
    uid: u32,
}

impl LocalUser {
    fn create() -> LocalUser {
        let name = format!("aiomph{}", std::process::id());
        // useradd waits for the user database's lock; a few tries ride out a concurrent one.
        let mut last = None;
        for _ in 0..5 {
            let mut command = Command::new("useradd");
            command.args(["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", &name]);
            let output = output_within(command, Duration::from_secs(60));
            if output.status.success() {
                // From here on, dropping it deletes the user, whatever fails next.
                let mut user = LocalUser {
                    uid: 0,
                    name: name.clone(),
                };
                let mut id = Command::new("id");
                id.args(["-u", &name]);
                let id = output_within(id, Duration::from_secs(30));
                user.uid = String::from_utf8_lossy(&id.stdout).trim().parse().unwrap();
                return user;
            }
            last = Some(String::from_utf8_lossy(&output.stderr).into_owned());
            std::thread::sleep(Duration::from_millis(500));
        }
        panic!("useradd {name} failed: {last:?}");
    }

    /// A command that runs `program` as this user.
    fn command(&self, program: &Path) -> Command {
        let mut command = Command::new("runuser");
        command.args(["-u", &self.name, "--"]).arg(program);
        command
    }
}

impl Drop for LocalUser {
    fn drop(&mut self) {
        let mut command = Command::new("userdel");
        command.arg(&self.name);
        let output = output_within(command, Duration::from_secs(60));
        if !output.status.success() {
            eprintln!(
                "userdel {} failed: {}",
                self.name,
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
}

/// The token in `AIOMP_WORKER=<role>:<fd>:<token>` of process `pid`'s environment.
fn token_of(pid: u32) -> String {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let var = environ
        .split(|&b| b == 0)
        .find_map(|var| var.strip_prefix(b"AIOMP_WORKER="))
        .unwrap_or_else(|| panic!("{pid} has no AIOMP_WORKER"));
    let value = String::from_utf8_lossy(var).into_owned();
    let token = value.rsplit(':').next().unwrap().to_owned();
    assert_eq!(token.len(), 32, "{value}");
    token
}

/// The errno values that mean "not allowed" (`ENOENT` where `/proc` is
/// mounted with `hidepid`, which hides the process altogether).
fn is_refusal(detail: &str) -> bool {
    [libc::EACCES, libc::EPERM, libc::ENOENT]
        .iter()
        .any(|errno| detail == errno.to_string())
}

#[aiomp::test]
async fn another_local_user_cannot_read_the_token_or_reach_a_channel() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "SKIPPED: another_local_user_cannot_read_the_token_or_reach_a_channel needs root \
             (to create a second local user with useradd); this part was not checked"
        );
        println!("SKIPPED: the other-user part of the socket hardening tests (not root)");
        return;
    }
    let me = std::process::id();
    let spawn = pool(StartMethod::Spawn, 1).await;
    let fork = pool(StartMethod::Fork, 1).await;
    let forkserver = pool(StartMethod::Forkserver, 1).await;
    let server = aiomp_suite::forkservers_of(me)[0];
    let targets = [
        ("parent", me),
        ("spawn worker", spawn.worker_pids()[0]),
        ("fork worker", fork.worker_pids()[0]),
        ("forkserver worker", forkserver.worker_pids()[0]),
        ("fork server", server),
    ];
    // As root, the tokens are there to be read: what the outsider must not get.
    let tokens = [token_of(targets[1].1), token_of(server)];

    let mut probes = vec!["uid".to_owned(), "read:/proc/self/environ".to_owned()];
    let mut inodes = BTreeSet::new();
    for &(_, pid) in &targets {
        probes.push(format!("read:/proc/{pid}/environ"));
        probes.push(format!("open:/proc/{pid}/mem"));
        probes.push(format!("list:/proc/{pid}/fd"));
        probes.push(format!("read:/proc/{pid}/cmdline"));
        let sockets = sockets_of(pid);
        assert!(!sockets.is_empty(), "{pid} holds no socket");
        for (fd, inode) in sockets {
            probes.push(format!("open:/proc/{pid}/fd/{fd}"));
            probes.push(format!("getfd:{pid}:{fd}"));
            inodes.insert(inode);
        }
    }
    let unix = unix_sockets();
    probes.extend(
        inodes
            .iter()
            .filter(|inode| unix.contains_key(inode))
            .map(|inode| format!("unix:{inode}")),
    );

    let user = LocalUser::create();
    // The probe, where the other user can run it.
    let dir = TempDir::new("outsider", 0o755);
    let probe = dir.0.join("outsider_probe");
    std::fs::copy(env!("CARGO_BIN_EXE_outsider_probe"), &probe).unwrap();
    std::fs::set_permissions(&probe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut command = user.command(&probe);
    command.args(&probes);
    let output = output_within(command, Duration::from_secs(60));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let results: HashMap<&str, (&str, &str)> = stdout
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, '\t');
            Some((parts.next()?, (parts.next()?, parts.next()?)))
        })
        .collect();
    let result = |probe: &str| -> (&str, &str) {
        *results
            .get(probe)
            .unwrap_or_else(|| panic!("no result for {probe}:\n{stdout}"))
    };

    // It is another user, and its probes work where it has the right.
    assert_eq!(result("uid"), ("ok", user.uid.to_string().as_str()));
    assert_ne!(user.uid, 0);
    assert_eq!(result("read:/proc/self/environ").0, "ok");

    let mut refused = 0;
    for probe in &probes[2..] {
        let (status, detail) = result(probe);
        if probe.starts_with("unix:") {
            // It sees our sockets exist, and that there is no address to connect to.
            assert_eq!((status, detail), ("ok", "-"), "{probe}");
        } else if probe.ends_with("/cmdline") {
            // World-readable, and free of the token.
            assert_eq!(status, "ok", "{probe}");
            for token in &tokens {
                let hex: String = token.bytes().fold(String::new(), |mut out, b| {
                    use std::fmt::Write;
                    let _ = write!(out, "{b:02x}");
                    out
                });
                assert!(!detail.contains(&hex), "{probe} shows a token");
            }
        } else {
            assert!(
                status == "err" && is_refusal(detail),
                "the other user got through: {probe} -> {status} {detail}"
            );
            refused += 1;
        }
    }
    eprintln!(
        "user {} (uid {}) was refused all {refused} attempts on the token and the fds of {targets:?}",
        user.name, user.uid
    );
}
