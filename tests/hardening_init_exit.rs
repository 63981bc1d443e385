//! An initializer that exits the worker (`std::process::exit(3)`) at every
//! start: `build()` fails within seconds, after its few retries, with an
//! error naming the exit status, and leaves no worker behind.

use std::time::{Duration, Instant};

use aiomp::{Pool, StartMethod, remote};

#[remote]
fn exit_three() {
    std::process::exit(3);
}

async fn build_fails_naming_the_status(method: StartMethod) {
    let started = Instant::now();
    let built = tokio::time::timeout(
        Duration::from_secs(60),
        Pool::builder()
            .processes(2)
            .start_method(method)
            .initializer(exit_three, ())
            .build(),
    )
    .await
    .expect("build() must fail, not hang");
    let elapsed = started.elapsed();
    let error = built.expect_err("every worker exits in its initializer");
    let message = error.to_string();
    eprintln!("{method}: build() failed in {elapsed:?}: {message}");
    assert!(
        message.contains("exit code 3"),
        "{method}: the error must name the exit status: {message}"
    );
    assert!(
        elapsed < Duration::from_secs(20),
        "{method}: build() took {elapsed:?} to fail"
    );
    // Nothing is left but (for forkserver) the fork server and its spare.
    let me = std::process::id();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut servers = aiomp_suite::forkservers_of(me);
        servers.extend(aiomp_suite::spares_of(me));
        let left: Vec<u32> = aiomp_suite::children_of(me)
            .into_iter()
            .filter(|pid| !servers.contains(pid))
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{method}: children left after the failed build: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[aiomp::test]
async fn spawn_build_fails_when_the_initializer_exits() {
    build_fails_naming_the_status(StartMethod::Spawn).await;
}

#[aiomp::test]
async fn fork_build_fails_when_the_initializer_exits() {
    build_fails_naming_the_status(StartMethod::Fork).await;
}

#[aiomp::test]
async fn forkserver_build_fails_when_the_initializer_exits() {
    build_fails_naming_the_status(StartMethod::Forkserver).await;
}
