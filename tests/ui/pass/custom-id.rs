use aiomp::remote;

#[remote(id = "math::double_v2")]
async fn double(x: u64) -> u64 {
    x * 2
}

#[remote(id = "math::triple", crate = "aiomp")]
fn triple(x: u64) -> u64 {
    x * 3
}

fn main() {
    let _future = double(1);
    assert_eq!(triple(2), 6);
}
