//! Values postcard cannot carry fail only their own call, with an error that
//! names the function and the cause; `Json<T>` carries them.

use std::collections::BTreeMap;

use aiomp::{Error, Json, Pool, remote};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Flattened {
    name: String,
    #[serde(flatten)]
    extra: BTreeMap<String, u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
enum Untagged {
    Number(u32),
    Text(String),
}

#[remote]
async fn takes_flattened(value: Flattened) -> String {
    value.name
}

#[remote]
async fn returns_untagged() -> Untagged {
    Untagged::Text("hello".into())
}

#[remote]
async fn returns_json_value() -> serde_json::Value {
    serde_json::json!({ "a": [1, 2, 3] })
}

#[remote]
async fn echo_flattened(value: Json<Flattened>) -> Json<Flattened> {
    value
}

#[remote]
async fn echo_value(value: Json<serde_json::Value>) -> Json<serde_json::Value> {
    value
}

#[remote]
async fn double(x: u64) -> u64 {
    x * 2
}

fn flattened() -> Flattened {
    Flattened {
        name: "page".into(),
        extra: [("hits".to_owned(), 3)].into(),
    }
}

fn assert_codec_error(error: &Error, function: &str, cause: &str) {
    match error {
        Error::Codec { function: f, .. } => assert_eq!(f, function, "{error}"),
        other => panic!("expected a codec error naming {function}, got {other:?}"),
    }
    assert!(error.to_string().contains(cause), "{error}");
}

#[aiomp::test]
async fn unencodable_values_fail_only_their_call() {
    let pool = Pool::builder().processes(1).build().await.unwrap();
    let error = pool.apply(takes_flattened, (flattened(),)).await.unwrap_err();
    assert_codec_error(&error, "codec_limits::takes_flattened", "encode the arguments");

    // Encoded fine in the worker, but postcard cannot decode it back.
    let error = pool.apply(returns_untagged, ()).await.unwrap_err();
    assert_codec_error(&error, "codec_limits::returns_untagged", "decode the result");
    let error = pool.apply(returns_json_value, ()).await.unwrap_err();
    assert_codec_error(&error, "codec_limits::returns_json_value", "");

    // Nothing else was affected: the same worker still serves.
    assert_eq!(pool.apply(double, (21,)).await.unwrap(), 42);
    assert_eq!(pool.stats().restarts, 0);
}

#[aiomp::test]
async fn json_carries_what_postcard_cannot() {
    let pool = Pool::builder().processes(1).build().await.unwrap();
    let back = pool.apply(echo_flattened, (Json(flattened()),)).await.unwrap();
    assert_eq!(back.into_inner(), flattened());
    let value = serde_json::json!({ "nested": { "list": [1, "two", null] } });
    let back = pool.apply(echo_value, (Json(value.clone()),)).await.unwrap();
    assert_eq!(back.0, value);
}
