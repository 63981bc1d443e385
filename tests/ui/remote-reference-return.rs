use aiomp::remote;

#[remote]
fn name() -> &'static str {
    "static"
}

#[remote]
fn header() -> Option<&'static [u8]> {
    None
}

fn main() {}
