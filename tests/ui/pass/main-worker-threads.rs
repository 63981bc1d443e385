#[aiomp::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let metrics = tokio::runtime::Handle::current().metrics();
    assert_eq!(metrics.num_workers(), 2);
}
