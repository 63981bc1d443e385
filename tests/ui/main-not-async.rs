#[aiomp::main]
fn main() {}
