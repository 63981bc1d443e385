use aiomp::remote;

#[remote]
#[allow(clippy::too_many_arguments)]
async fn many(
    a: u8,
    b: u16,
    c: u32,
    d: u64,
    e: String,
    f: Vec<u8>,
    g: Option<i64>,
    h: (bool, char),
    i: [u8; 4],
) -> usize {
    usize::from(a)
        + usize::from(b)
        + c as usize
        + d as usize
        + e.len()
        + f.len()
        + g.map_or(0, |g| g as usize)
        + usize::from(h.0)
        + i.len()
}

// Any irrefutable pattern can bind an argument.
#[remote]
fn patterns((x, y): (u64, u64), _: String, mut z: u64, [first, ..]: [u8; 2]) -> u64 {
    z += x * y + u64::from(first);
    z
}

fn main() {
    let _future = many(1, 2, 3, 4, String::new(), Vec::new(), None, (true, 'x'), [0; 4]);
    assert_eq!(patterns((2, 3), String::new(), 1, [4, 5]), 11);
}
