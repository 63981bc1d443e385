use aiomp::remote;

#[remote]
async fn first<T: serde::Serialize>(items: Vec<T>) -> usize {
    items.len()
}

#[remote]
fn borrowed<'a>(text: String) -> String {
    text
}

#[remote]
fn sized<const N: usize>(bytes: Vec<u8>) -> usize {
    bytes.len() + N
}

fn main() {}
