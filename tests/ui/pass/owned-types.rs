use std::borrow::Cow;
use std::collections::HashMap;

use aiomp::remote;

// `'static` data is owned: `Cow<'static, str>` deserializes without borrowing.
#[remote]
fn label(name: Cow<'static, str>, counts: HashMap<String, Vec<u32>>) -> Cow<'static, str> {
    if counts.is_empty() {
        name
    } else {
        Cow::Owned(format!("{name}*"))
    }
}

// A function that is `const` can be remote too.
#[remote]
const fn square(x: u64) -> u64 {
    x * x
}

fn main() {
    assert_eq!(label(Cow::Borrowed("a"), HashMap::new()), "a");
    assert_eq!(square(3), 9);
}
