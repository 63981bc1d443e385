use aiomp::remote;

#[remote]
async fn total(values: impl IntoIterator<Item = u64>) -> u64 {
    values.into_iter().sum()
}

#[remote]
fn evens(limit: u64) -> impl Iterator<Item = u64> {
    (0..limit).filter(|n| n % 2 == 0)
}

fn main() {}
