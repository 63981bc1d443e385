use aiomp::remote;

#[remote]
struct Job {
    id: u64,
}

fn main() {}
