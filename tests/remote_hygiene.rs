//! The macros expand to absolute paths only: they work under
//! `#![no_implicit_prelude]` and with `aiomp` renamed (tarpc's
//! `tests/proc_macro_hygene.rs`).
#![no_implicit_prelude]

extern crate aiomp as renamed_aiomp;
extern crate std;

use std::string::String;
use std::vec::Vec;

#[derive(Debug, ::serde::Serialize, ::serde::Deserialize)]
struct Item {
    name: String,
    sizes: Vec<u32>,
}

#[renamed_aiomp::remote(crate = "renamed_aiomp")]
async fn total(item: Item, extra: u32) -> u32 {
    let mut sum = extra;
    for size in item.sizes {
        sum += size;
    }
    sum
}

#[renamed_aiomp::remote(crate = "renamed_aiomp", id = "hygiene::name_of")]
fn name_of(item: Item) -> String {
    item.name
}

#[renamed_aiomp::remote(crate = "renamed_aiomp")]
fn unit() {}

mod nested {
    #[::renamed_aiomp::remote(crate = "::renamed_aiomp")]
    pub(crate) fn nested(value: ::std::option::Option<u8>) -> ::std::result::Result<u8, ::std::string::String> {
        value.ok_or_else(|| ::std::borrow::ToOwned::to_owned("none"))
    }
}

#[test]
fn callable_locally() {
    let item = Item {
        name: std::borrow::ToOwned::to_owned("box"),
        sizes: std::vec![1, 2],
    };
    std::assert_eq!(name_of(item), "box");
    unit();
    std::assert_eq!(nested::nested(std::option::Option::Some(3)), std::result::Result::Ok(3));
}

#[renamed_aiomp::test(crate = "renamed_aiomp")]
async fn async_test_under_no_implicit_prelude() {
    let item = Item {
        name: String::new(),
        sizes: std::vec![1, 2, 3],
    };
    std::assert_eq!(total(item, 4).await, 10);
}
