use std::path::Path;

use aiomp::remote;

#[remote]
async fn greet(name: &str) -> String {
    format!("hello {name}")
}

#[remote]
fn sum(values: &[u64]) -> u64 {
    values.iter().sum()
}

#[remote]
fn count(items: &Vec<u64>, path: &Path) -> usize {
    items.len() + path.as_os_str().len()
}

#[remote]
fn push(items: &mut Vec<u64>) {
    items.push(1);
}

#[remote]
fn nested(names: Vec<&'static str>) -> usize {
    names.len()
}

#[remote]
fn label(text: std::borrow::Cow<'_, str>) -> usize {
    text.len()
}

fn main() {}
