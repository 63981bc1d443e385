//! `Json<T>`: the escape hatch for values postcard cannot carry.

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

use serde::de::{self, DeserializeOwned, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Carries a `T` across the process boundary as JSON, for the types postcard
/// cannot encode: `#[serde(flatten)]`, untagged enums, `skip_serializing_if`,
/// `serde_json::Value`. The JSON travels as one byte string inside postcard,
/// so it costs JSON's size and speed for that value only.
///
/// ```
/// use aiomp::Json;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, PartialEq, Serialize, Deserialize)]
/// struct Page {
///     url: String,
///     #[serde(flatten)]
///     extra: std::collections::BTreeMap<String, u32>,
/// }
///
/// #[aiomp::remote]
/// async fn visit(page: Json<Page>) -> Json<Page> {
///     page
/// }
///
/// let page = Page { url: "/".into(), extra: [("hits".into(), 3)].into() };
/// let bytes = postcard::to_stdvec(&Json(&page)).unwrap();
/// let back: Json<Page> = postcard::from_bytes(&bytes).unwrap();
/// assert_eq!(back.into_inner(), page);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Json<T>(pub T);

impl<T> Json<T> {
    /// The wrapped value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> Deref for Json<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for Json<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

impl<T> From<T> for Json<T> {
    fn from(value: T) -> Json<T> {
        Json(value)
    }
}

impl<T: Serialize> Serialize for Json<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let json = serde_json::to_vec(&self.0).map_err(serde::ser::Error::custom)?;
        serializer.serialize_bytes(&json)
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Json<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Json<T>, D::Error> {
        deserializer.deserialize_bytes(JsonVisitor(PhantomData))
    }
}

struct JsonVisitor<T>(PhantomData<fn() -> T>);

impl<T: DeserializeOwned> Visitor<'_> for JsonVisitor<T> {
    type Value = Json<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON document as bytes")
    }

    fn visit_bytes<E: de::Error>(self, json: &[u8]) -> Result<Json<T>, E> {
        serde_json::from_slice(json).map(Json).map_err(E::custom)
    }
}
