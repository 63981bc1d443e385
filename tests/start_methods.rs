//! What differs between the start methods: what a child inherits, fork
//! under a busy multi-threaded parent, the global setting, and the fork
//! server's lifetime.

use std::future::IntoFuture;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aiomp::{Pool, StartMethod, Worker, remote};
use futures_util::StreamExt;

/// Set in the parent before children start: a forked child sees it, a
/// spawned one (or one forked from the fork server) does not.
static MARK: AtomicU64 = AtomicU64::new(0);

#[remote]
async fn mark_and_parent() -> (u64, u32) {
    (MARK.load(Ordering::SeqCst), std::os::unix::process::parent_id())
}

#[remote]
async fn double(x: u64) -> u64 {
    x * 2
}

#[aiomp::test]
async fn each_method_starts_the_child_it_promises() {
    MARK.store(7, Ordering::SeqCst);
    let me = std::process::id();
    let (mark, parent) = Worker::new(mark_and_parent)
        .start_method(StartMethod::Spawn)
        .await
        .unwrap();
    assert_eq!((mark, parent), (0, me), "spawn: a fresh process, our child");
    let (mark, parent) = Worker::new(mark_and_parent)
        .start_method(StartMethod::Fork)
        .await
        .unwrap();
    assert_eq!((mark, parent), (7, me), "fork: a copy of us, our child");
    let (mark, parent) = Worker::new(mark_and_parent)
        .start_method(StartMethod::Forkserver)
        .await
        .unwrap();
    assert_eq!(mark, 0, "forkserver: forked from a fresh server, not from us");
    assert_eq!(parent, me, "forkserver: forked by the server as our own child");
    assert_eq!(aiomp_suite::forkservers_of(me).len(), 1, "forkserver: one server");
}

#[aiomp::test]
async fn the_global_start_method_is_honoured_and_none_restores_spawn() {
    // The only test in this binary that relies on the global setting.
    aiomp::set_start_method(Some(StartMethod::Fork));
    MARK.store(7, Ordering::SeqCst);
    let (mark, _) = Worker::new(mark_and_parent).await.unwrap();
    assert_eq!(mark, 7, "the global fork setting was not used");
    let pool = Pool::builder().processes(1).build().await.unwrap();
    assert_eq!(pool.apply(mark_and_parent, ()).await.unwrap().0, 7);
    aiomp::set_start_method(None);
    assert_eq!(aiomp::get_start_method(), StartMethod::Spawn);
    let (mark, _) = Worker::new(mark_and_parent).await.unwrap();
    assert_eq!(mark, 0);
}

/// Keeps `threads` threads busy allocating, locking and printing nothing.
fn busy_threads(threads: usize, stop: &'static std::sync::atomic::AtomicBool) -> Vec<std::thread::JoinHandle<()>> {
    static SHARED: std::sync::Mutex<Vec<u64>> = std::sync::Mutex::new(Vec::new());
    (0..threads)
        .map(|i| {
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let mut local: Vec<u64> = (0..256).map(|x| x * i as u64).collect();
                    local.sort_unstable();
                    let mut shared = SHARED.lock().unwrap();
                    shared.push(local[0]);
                    if shared.len() > 1024 {
                        shared.clear();
                    }
                }
            })
        })
        .collect()
}

#[aiomp::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_fork_cycles_under_a_busy_multithreaded_parent_do_not_hang() {
    static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let busy = busy_threads(3, &STOP);
    // Busy runtime tasks too, on the runtime's other threads.
    let spinners: Vec<_> = (0..4)
        .map(|_| {
            tokio::spawn(async {
                loop {
                    let v: Vec<u8> = vec![1; 4096];
                    std::hint::black_box(v);
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    let pool = Pool::builder()
        .processes(2)
        .max_tasks_per_child(1)
        .start_method(StartMethod::Fork)
        .build()
        .await
        .unwrap();
    let started = Instant::now();
    let results: Vec<u64> = tokio::time::timeout(
        Duration::from_secs(300),
        IntoFuture::into_future(pool.map(double, 0..1000u64)),
    )
    .await
    .expect("1,000 fork cycles hung")
    .unwrap();
    eprintln!("1,000 fork cycles in {:?}", started.elapsed());
    assert_eq!(results, (0..1000).map(|x| x * 2).collect::<Vec<_>>());
    STOP.store(true, Ordering::Relaxed);
    for spinner in spinners {
        spinner.abort();
    }
    for thread in busy {
        thread.join().unwrap();
    }
}

#[aiomp::test]
async fn one_fork_server_serves_every_forkserver_start() {
    let me = std::process::id();
    let pool = Pool::builder()
        .processes(2)
        .start_method(StartMethod::Forkserver)
        .build()
        .await
        .unwrap();
    let other = Pool::builder()
        .processes(1)
        .start_method(StartMethod::Forkserver)
        .build()
        .await
        .unwrap();
    let servers = aiomp_suite::forkservers_of(me);
    assert_eq!(servers.len(), 1, "one fork server per parent, got {servers:?}");
    let results: Vec<aiomp::Result<u64>> = pool.map(double, 0..100u64).collect().await;
    assert!(results.into_iter().all(|r| r.is_ok()));
    assert_eq!(other.apply(double, (4,)).await.unwrap(), 8);
}

/// Runs `pool_then_wait` with `method`, SIGKILLs it once its pool is up, and
/// returns the processes it had started that are still running 2 s later.
fn survivors_of_a_killed_parent(method: &str) -> Vec<u32> {
    survivors_of_a_killed_parent_with(method, &[], false)
}

/// [`survivors_of_a_killed_parent`], with `env` set for the parent, and
/// with one worker spinning on the CPU when it is killed if `busy`.
fn survivors_of_a_killed_parent_with(method: &str, env: &[(&str, &str)], busy: bool) -> Vec<u32> {
    let mut parent = Command::new(env!("CARGO_BIN_EXE_pool_then_wait"))
        .arg(method)
        .args(busy.then_some("busy"))
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(parent.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    let pids: Vec<u32> = line
        .strip_prefix("pids ")
        .expect(&line)
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    // Two workers; for forkserver, the server and its spare too.
    let expected = if method == "forkserver" { 4 } else { 2 };
    assert_eq!(pids.len(), expected, "{line}");
    if busy {
        let mut spinning = String::new();
        std::io::BufRead::read_line(&mut stdout, &mut spinning).unwrap();
        assert_eq!(spinning, "spinning\n");
    }
    parent.kill().unwrap();
    parent.wait().unwrap();
    aiomp_suite::wait_all_exited(&pids, Duration::from_secs(2))
}

#[test]
fn workers_exit_within_two_seconds_of_a_killed_spawn_parent() {
    assert_eq!(survivors_of_a_killed_parent("spawn"), Vec::<u32>::new());
}

#[test]
fn workers_exit_within_two_seconds_of_a_killed_fork_parent() {
    assert_eq!(survivors_of_a_killed_parent("fork"), Vec::<u32>::new());
}

#[test]
fn workers_and_the_fork_server_exit_within_two_seconds_of_a_killed_parent() {
    assert_eq!(survivors_of_a_killed_parent("forkserver"), Vec::<u32>::new());
}

/// A fork server preloaded by `init` was forked by the main thread: its
/// workers leave the watch to the kernel's parent-death signal.
#[test]
fn workers_of_a_preloaded_fork_server_exit_within_two_seconds_of_a_killed_parent() {
    let env = [(aiomp::START_METHOD_ENV, "forkserver")];
    assert_eq!(
        survivors_of_a_killed_parent_with("forkserver", &env, false),
        Vec::<u32>::new()
    );
}

/// A worker busy on the CPU never reads its channel's EOF: only the watch
/// on the parent ends it, whichever way it watches.
#[test]
fn a_worker_spinning_on_the_cpu_exits_within_two_seconds_of_a_killed_parent() {
    let preloaded = [(aiomp::START_METHOD_ENV, "forkserver")];
    for (method, env) in [
        ("spawn", &[][..]),
        ("fork", &[]),
        ("forkserver", &[]),
        ("forkserver", &preloaded),
    ] {
        let survivors = survivors_of_a_killed_parent_with(method, env, true);
        assert_eq!(survivors, Vec::<u32>::new(), "{method} {env:?}");
    }
}
