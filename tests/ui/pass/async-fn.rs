use aiomp::remote;

#[remote]
async fn double(x: u64) -> u64 {
    x * 2
}

fn main() {
    let _future = double(21);
}
