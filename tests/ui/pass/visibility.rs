use aiomp::remote;

#[remote]
pub(crate) async fn shared(x: u64) -> u64 {
    x
}

#[remote]
pub fn public(x: u64) -> u64 {
    x
}

/// Attributes and docs stay on the function.
#[remote]
#[inline]
#[must_use]
fn documented(x: u64) -> u64 {
    x
}

fn main() {
    let _future = shared(1);
    assert_eq!(public(2) + documented(3), 5);
}
