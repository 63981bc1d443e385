// Tests default to the current-thread runtime, as with #[tokio::test].
#[aiomp::test(worker_threads = 2)]
async fn threads_without_flavor() {}

fn main() {}
