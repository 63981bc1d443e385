use aiomp::remote;

#[remote(id = double)]
fn a(x: u64) -> u64 {
    x
}

#[remote(id = "")]
fn b(x: u64) -> u64 {
    x
}

#[remote(id)]
fn c(x: u64) -> u64 {
    x
}

#[remote(id = "one", id = "two")]
fn d(x: u64) -> u64 {
    x
}

#[remote(crate = "not a path")]
fn e(x: u64) -> u64 {
    x
}

fn main() {}
