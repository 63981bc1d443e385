use aiomp::remote;

#[remote]
async fn answer() -> u64 {
    42
}

#[remote]
fn nothing() {}

#[remote]
async fn nothing_async() {}

fn main() {
    let _future = answer();
    nothing();
    let _future = nothing_async();
}
