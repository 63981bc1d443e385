//! The table of `#[remote]` functions, collected with `inventory`.
//!
//! Each `#[remote]` item submits one [`Registration`]. The table is built the
//! first time it is needed (never before `main`), sorted by ID so that both
//! ends of a channel number the functions the same way, and fingerprinted so
//! that a child built from a different binary is refused at the handshake.

use std::any::TypeId;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::Context;

use crate::error::Error;

/// The rest of a call that did not complete at its first poll: it yields
/// the encoded return value.
// Not public API. Used by generated code.
#[doc(hidden)]
#[allow(unreachable_pub)]
pub type Pending = Pin<Box<dyn Future<Output = Result<crate::chunk::Encoded, InvokeError>> + Send>>;

/// How a call went at its first poll.
// Not public API. Used by generated code.
#[doc(hidden)]
#[allow(unreachable_pub, missing_debug_implementations)]
pub enum Started {
    /// It completed: its encoded return value was appended to the output.
    Done(Result<(), InvokeError>),
    /// It is waiting; poll the rest to completion.
    Pending(Pending),
}

/// Decodes the arguments, starts the function (polling it once with the
/// context) and, if it completed, appends its encoded return value to the
/// output buffer.
// Not public API. Used by generated code.
#[doc(hidden)]
#[allow(unreachable_pub)]
pub type Invoker = fn(&[u8], &mut Context<'_>, &mut crate::chunk::Encoded) -> Started;

/// Why an invocation failed before or after the function itself ran.
#[derive(Debug)]
#[doc(hidden)]
pub enum InvokeError {
    /// The arguments did not decode into the function's parameter types.
    DecodeArguments(postcard::Error),
    /// The return value could not be encoded.
    EncodeResult(postcard::Error),
}

impl std::fmt::Display for InvokeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InvokeError::DecodeArguments(e) => write!(f, "could not decode the arguments: {e}"),
            InvokeError::EncodeResult(e) => write!(f, "could not encode the return value: {e}"),
        }
    }
}

/// One `#[remote]` function, as submitted by the macro.
// Not public API. Used by generated code.
#[doc(hidden)]
#[derive(Debug)]
pub struct Registration {
    id: &'static str,
    signature: &'static str,
    type_id: fn() -> TypeId,
    invoke: Invoker,
}

impl Registration {
    // Not public API. Used by generated code.
    #[doc(hidden)]
    pub const fn new(id: &'static str, signature: &'static str, type_id: fn() -> TypeId, invoke: Invoker) -> Self {
        Registration {
            id,
            signature,
            type_id,
            invoke,
        }
    }
}

inventory::collect!(Registration);

/// A function's place in the sorted table; what crosses the wire.
pub(crate) type FunctionIndex = u32;

/// The lookup tables built from every [`Registration`] in the binary.
#[derive(Debug)]
pub(crate) struct Registry {
    entries: Vec<&'static Registration>,
    by_type: HashMap<TypeId, FunctionIndex>,
    fingerprint: u64,
}

impl Registry {
    /// The registry of this binary, built on first use.
    pub(crate) fn get() -> Result<&'static Registry, Error> {
        static REGISTRY: OnceLock<Result<Registry, String>> = OnceLock::new();
        REGISTRY
            .get_or_init(|| Registry::build(inventory::iter::<Registration>.into_iter()))
            .as_ref()
            .map_err(|id| Error::DuplicateFunction { id: id.clone() })
    }

    fn build(items: impl Iterator<Item = &'static Registration>) -> Result<Registry, String> {
        let mut entries: Vec<&'static Registration> = items.collect();
        entries.sort_by_key(|r| r.id);
        if let Some(pair) = entries.windows(2).find(|w| w[0].id == w[1].id) {
            return Err(pair[0].id.to_owned());
        }
        let by_type = entries
            .iter()
            .enumerate()
            .map(|(i, r)| ((r.type_id)(), i as FunctionIndex))
            .collect();
        let fingerprint = fingerprint(&entries);
        Ok(Registry {
            entries,
            by_type,
            fingerprint,
        })
    }

    /// The index of the function whose item type is `F`.
    pub(crate) fn index_of<F: 'static>(&self) -> Result<FunctionIndex, Error> {
        self.by_type
            .get(&TypeId::of::<F>())
            .copied()
            .ok_or(Error::NotRegistered {
                function: std::any::type_name::<F>(),
            })
    }

    /// The stable ID of the function at `index`.
    pub(crate) fn id(&self, index: FunctionIndex) -> Option<&'static str> {
        self.entries.get(index as usize).map(|r| r.id)
    }

    /// The invoker of the function at `index`.
    pub(crate) fn invoker(&self, index: FunctionIndex) -> Option<Invoker> {
        self.entries.get(index as usize).map(|r| r.invoke)
    }

    /// A hash of every ID and signature, equal only for the same set of functions.
    pub(crate) fn fingerprint(&self) -> u64 {
        self.fingerprint
    }
}

/// FNV-1a over the sorted IDs and signatures: stable across builds and platforms.
fn fingerprint(entries: &[&'static Registration]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0100_0000_01b3;
    let mut hash = OFFSET;
    for entry in entries {
        for byte in entry.id.bytes().chain([0]).chain(entry.signature.bytes()).chain([0]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(PRIME);
        }
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    fn never(_: &[u8], _: &mut Context<'_>, _: &mut crate::chunk::Encoded) -> Started {
        Started::Done(Ok(()))
    }

    static A: Registration = Registration::new("m::a", "() -> ()", TypeId::of::<u8>, never);
    static B: Registration = Registration::new("m::b", "() -> ()", TypeId::of::<u16>, never);
    static B2: Registration = Registration::new("m::b", "(u8) -> ()", TypeId::of::<u32>, never);

    #[test]
    fn sorted_and_indexed_by_type() {
        let registry = Registry::build([&B, &A].into_iter()).unwrap();
        assert_eq!(registry.id(0), Some("m::a"));
        assert_eq!(registry.by_type[&TypeId::of::<u16>()], 1);
    }

    #[test]
    fn duplicate_ids_are_reported_by_name() {
        assert_eq!(Registry::build([&A, &B, &B2].into_iter()).unwrap_err(), "m::b");
    }

    #[test]
    fn fingerprint_covers_signatures() {
        let one = Registry::build([&A, &B].into_iter()).unwrap();
        let other = Registry::build([&A, &B2].into_iter()).unwrap();
        assert_ne!(one.fingerprint(), other.fingerprint());
    }
}
