//! The fork server's spare: a worker forked ahead of need takes the next
//! request; one that died before a request came is reaped, and the request
//! is served all the same (its own test binary: the server is per process).

use std::time::Duration;

use aiomp::{StartMethod, Worker, remote};

#[remote]
async fn pid() -> u32 {
    std::process::id()
}

/// Starts a one-shot forkserver worker; its pid.
async fn one_shot() -> u32 {
    Worker::new(pid).start_method(StartMethod::Forkserver).await.unwrap()
}

/// The one spare of this process's fork server, once it is there.
fn the_spare() -> u32 {
    let spares = aiomp_suite::settled_spares_of(std::process::id());
    let [spare] = spares[..] else {
        panic!("expected one spare, found {spares:?}");
    };
    spare
}

#[aiomp::test]
async fn the_spare_takes_the_next_request_and_a_dead_one_is_reaped() {
    let first = one_shot().await;
    let spare = the_spare();
    assert_ne!(spare, first);
    // The request goes to the waiting spare.
    assert_eq!(one_shot().await, spare);

    // A spare killed while it waits: the next request is served by a worker
    // forked for it, and the dead spare, our child, is reaped.
    let doomed = the_spare();
    // SAFETY: kill takes plain integers.
    assert_eq!(unsafe { libc::kill(doomed as i32, libc::SIGKILL) }, 0);
    assert!(aiomp_suite::wait_all_exited(&[doomed], Duration::from_secs(10)).is_empty());
    let served = one_shot().await;
    assert_ne!(served, doomed);
    assert!(
        !std::path::Path::new(&format!("/proc/{doomed}")).exists(),
        "the dead spare {doomed} was left a zombie"
    );
    // And a new spare waits again.
    let next = the_spare();
    assert!(![first, spare, doomed, served].contains(&next));
    assert_eq!(one_shot().await, next);
}
