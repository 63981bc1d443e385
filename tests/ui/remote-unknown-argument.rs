use aiomp::remote;

#[remote(name = "double")]
async fn double(x: u64) -> u64 {
    x * 2
}

#[remote(blocking)]
fn triple(x: u64) -> u64 {
    x * 3
}

fn main() {}
