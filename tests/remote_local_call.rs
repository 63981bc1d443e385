//! `#[remote]` leaves a function callable locally, exactly as written: same
//! name, arguments, return value and visibility.

use std::borrow::Cow;
use std::future::Future;

use aiomp::remote;
use serde::{Deserialize, Serialize};

#[remote]
async fn double(x: u64) -> u64 {
    x * 2
}

#[remote]
fn crunch(n: u64) -> u64 {
    (0..n).map(|i| i * i % 7).sum()
}

#[remote]
async fn nothing() {}

#[remote]
fn unit_plain() {}

#[remote]
fn patterns((a, b): (u64, u64), _: String, mut c: u64) -> u64 {
    c += a * b;
    c
}

#[remote]
async fn checked_div(a: i64, b: i64) -> Result<i64, String> {
    if b == 0 { Err(format!("{a} / 0")) } else { Ok(a / b) }
}

// The expansion's own bindings are named like this; they must not clash.
#[allow(clippy::similar_names)]
#[remote]
fn arg0(arg0: u64, args: u64) -> u64 {
    arg0 + args
}

#[remote]
fn r#type(r#in: u8) -> u8 {
    r#in
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Point {
    x: i32,
    y: i32,
}

#[remote(id = "local_call::swap")]
fn swap(p: Point, label: Cow<'static, str>) -> (Point, String) {
    (Point { x: p.y, y: p.x }, label.into_owned())
}

mod nested {
    pub(crate) mod deeper {
        #[aiomp::remote]
        pub(crate) async fn shout(s: String) -> String {
            s.to_uppercase()
        }
    }
}

// The user's own attributes stay on the function.
#[allow(clippy::too_many_arguments)]
#[remote]
async fn many(
    small: u8,
    medium: u16,
    large: u32,
    huge: u64,
    signed: i8,
    bytes: Vec<u8>,
    text: Option<String>,
    flag: bool,
) -> u64 {
    u64::from(small)
        + u64::from(medium)
        + u64::from(large)
        + huge
        + u64::from(signed.unsigned_abs())
        + bytes.len() as u64
        + text.map_or(0, |t| t.len() as u64)
        + u64::from(flag)
}

fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime")
        .block_on(future)
}

#[test]
fn async_fn_is_called_locally() {
    assert_eq!(block_on(double(21)), 42);
    block_on(nothing());
}

#[test]
fn plain_fn_is_called_locally() {
    assert_eq!(crunch(10), (0..10).map(|i| i * i % 7).sum::<u64>());
    unit_plain();
}

#[test]
fn argument_patterns_are_kept() {
    assert_eq!(patterns((2, 3), String::new(), 1), 7);
}

#[test]
fn result_is_returned_as_written() {
    assert_eq!(block_on(checked_div(7, 2)), Ok(3));
    assert_eq!(block_on(checked_div(7, 0)), Err("7 / 0".to_owned()));
}

#[test]
fn names_that_look_generated_still_work() {
    assert_eq!(arg0(1, 2), 3);
    assert_eq!(r#type(9), 9);
}

#[test]
fn custom_id_and_user_types() {
    let (p, label) = swap(Point { x: 1, y: 2 }, Cow::Borrowed("swapped"));
    assert_eq!(p, Point { x: 2, y: 1 });
    assert_eq!(label, "swapped");
}

#[test]
fn nested_module_keeps_visibility() {
    assert_eq!(block_on(nested::deeper::shout("hi".to_owned())), "HI");
}

#[test]
fn many_arguments() {
    let total = block_on(many(1, 2, 3, 4, -5, vec![0; 6], Some("seven".to_owned()), true));
    assert_eq!(total, 1 + 2 + 3 + 4 + 5 + 6 + 5 + 1);
}
