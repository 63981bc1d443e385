// Outside `cargo test` a #[test] function is left out, so this only checks that
// the attribute expands; `tests/remote_hygiene.rs` runs #[aiomp::test] for real.

#[aiomp::test]
async fn default_flavor() {
    tokio::task::yield_now().await;
}

#[aiomp::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_thread() -> Result<(), String> {
    Ok(())
}

/// Other attributes stay.
#[aiomp::test]
#[ignore = "slow"]
#[should_panic(expected = "boom")]
async fn with_attributes() {
    panic!("boom");
}

fn main() {}
