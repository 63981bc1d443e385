#[aiomp::main]
async fn run() {}

fn main() {}
