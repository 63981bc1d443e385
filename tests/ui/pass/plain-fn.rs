use aiomp::remote;

#[remote]
fn crunch(n: u64) -> u64 {
    (0..n).map(|i| i * i % 7).sum()
}

fn main() {
    assert_eq!(crunch(3), 5);
}
