use aiomp::remote;

#[remote]
extern "C" fn callback(x: u64) -> u64 {
    x
}

fn main() {}
