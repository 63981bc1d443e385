use std::rc::Rc;

use aiomp::remote;

struct Plain {
    value: u64,
}

#[remote]
async fn takes_plain(plain: Plain) -> u64 {
    plain.value
}

#[remote]
fn takes_rc(shared: Rc<u8>) -> u8 {
    *shared
}

#[remote]
fn returns_plain(value: u64) -> Plain {
    Plain { value }
}

fn main() {}
