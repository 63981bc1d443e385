//! `Buffer`: bytes that cross the process boundary without being copied in
//! user space.
//!
//! Serializing a buffer offers its bytes to aiomp's encoder, which then
//! writes them to the channel from where they lie instead of copying them
//! into the frame. Decoding a buffer from a received frame shares the
//! frame's bytes instead of copying them out. Either way the wire format is
//! serde's plain byte string, so a `Buffer` also works with any other
//! serializer (it is then copied, as any bytes are).

use std::cell::Cell;
use std::fmt;
use std::ops::Deref;

use bytes::Bytes;
use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A buffer at least this long is written from where it lies; a shorter one
/// is copied next to its message (one write either way).
pub(crate) const SPLICE_FROM: usize = 16 * 1024;

/// A buffer at least this long decodes as a share of the frame it arrived
/// in; a shorter one is copied, so that it does not keep a large frame alive.
const SHARE_FROM: usize = 64 * 1024;

thread_local! {
    /// The bytes of the buffer being serialized on this thread, if any.
    static OFFERED: Cell<*const Bytes> = const { Cell::new(std::ptr::null()) };
    /// The received bytes being decoded on this thread, if any.
    static SOURCE: Cell<*const Bytes> = const { Cell::new(std::ptr::null()) };
}

/// An immutable byte buffer that crosses to and from workers without a copy
/// in user space: aiomp writes its bytes to the channel from where they lie,
/// and a received one shares the bytes it arrived in.
///
/// Use it for large binary arguments and results. serde sends a plain
/// `Vec<u8>` one element at a time; [`serde_bytes::ByteBuf`] sends it as one
/// block but still copies it once into the frame and once out of it, on each
/// side. A `Buffer` is serialized as a byte string, like `ByteBuf`, so it
/// works with any serde format; the copies are skipped only inside aiomp.
///
/// Cloning is cheap (a reference count). A buffer decoded from a frame
/// shares the memory the frame was read into, and keeps all of it alive
/// until it is dropped: the frame, and possibly the channel's read buffer
/// around it (at most as large as the largest frame that channel carried).
/// Buffers under 64 KiB are copied out instead; to keep a large one for
/// long without holding that memory, copy it (`Buffer::from(buf.to_vec())`).
///
/// [`serde_bytes::ByteBuf`]: https://docs.rs/serde_bytes
///
/// ```
/// use aiomp::Buffer;
///
/// #[aiomp::remote]
/// async fn checksum(data: Buffer) -> u64 {
///     data.iter().map(|&b| u64::from(b)).sum()
/// }
///
/// #[aiomp::remote]
/// async fn upper(data: Buffer) -> Buffer {
///     data.to_ascii_uppercase().into()
/// }
///
/// # #[aiomp::main] async fn main() -> aiomp::Result<()> {
/// let pool = aiomp::Pool::builder().processes(1).build().await?;
/// let data = Buffer::from(vec![1u8; 1 << 20]);
/// assert_eq!(pool.apply(checksum, (data,)).await?, 1 << 20);
/// assert_eq!(&pool.apply(upper, (Buffer::from(b"abc".to_vec()),)).await?[..], b"ABC");
/// pool.close();
/// pool.join().await
/// # }
/// ```
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Buffer(Bytes);

impl Buffer {
    /// An empty buffer.
    pub const fn new() -> Buffer {
        Buffer(Bytes::new())
    }

    /// A buffer of static bytes, without a copy.
    pub const fn from_static(bytes: &'static [u8]) -> Buffer {
        Buffer(Bytes::from_static(bytes))
    }

    /// The bytes as a `Vec`: without a copy if this buffer is the only
    /// holder of a whole `Vec` it was made from, else copied.
    pub fn into_vec(self) -> Vec<u8> {
        Vec::from(self.0)
    }
}

impl Deref for Buffer {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for Buffer {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl std::borrow::Borrow<[u8]> for Buffer {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}

impl From<Vec<u8>> for Buffer {
    /// Takes the `Vec`'s allocation, without a copy.
    fn from(bytes: Vec<u8>) -> Buffer {
        Buffer(Bytes::from(bytes))
    }
}

impl From<&'static [u8]> for Buffer {
    fn from(bytes: &'static [u8]) -> Buffer {
        Buffer::from_static(bytes)
    }
}

impl From<String> for Buffer {
    fn from(text: String) -> Buffer {
        Buffer(Bytes::from(text))
    }
}

impl From<Bytes> for Buffer {
    fn from(bytes: Bytes) -> Buffer {
        Buffer(bytes)
    }
}

impl From<Buffer> for Bytes {
    fn from(buffer: Buffer) -> Bytes {
        buffer.0
    }
}

impl From<Buffer> for Vec<u8> {
    fn from(buffer: Buffer) -> Vec<u8> {
        buffer.into_vec()
    }
}

impl fmt::Debug for Buffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl Serialize for Buffer {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.0.len() < SPLICE_FROM {
            return serializer.serialize_bytes(&self.0);
        }
        let _offer = Scoped::set(&OFFERED, &self.0);
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Buffer {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Buffer, D::Error> {
        // `deserialize_bytes`: postcard lends the input's own bytes to it (to
        // `deserialize_byte_buf` it may lend a temporary copy).
        deserializer.deserialize_bytes(BufferVisitor)
    }
}

struct BufferVisitor;

impl<'de> Visitor<'de> for BufferVisitor {
    type Value = Buffer;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a byte string")
    }

    fn visit_borrowed_bytes<E: de::Error>(self, bytes: &'de [u8]) -> Result<Buffer, E> {
        Ok(Buffer(shared_or_copied(bytes)))
    }

    fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Buffer, E> {
        // Shared only if it lies in the source, which checks itself.
        Ok(Buffer(shared_or_copied(bytes)))
    }

    fn visit_byte_buf<E: de::Error>(self, bytes: Vec<u8>) -> Result<Buffer, E> {
        Ok(Buffer::from(bytes))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Buffer, E> {
        self.visit_bytes(text.as_bytes())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Buffer, A::Error> {
        let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
        while let Some(byte) = seq.next_element()? {
            bytes.push(byte);
        }
        Ok(Buffer::from(bytes))
    }
}

/// A share of the bytes being decoded, if `bytes` lies inside them and is
/// large enough to be worth it; else a copy.
fn shared_or_copied(bytes: &[u8]) -> Bytes {
    if bytes.len() >= SHARE_FROM {
        let source = SOURCE.get();
        // SAFETY: a non-null SOURCE points at the `Bytes` that `decode_from`
        // borrows for as long as it is set (the scope restores it on exit).
        if let Some(source) = unsafe { source.as_ref() } {
            if contains(source, bytes) {
                return source.slice_ref(bytes);
            }
        }
    }
    Bytes::copy_from_slice(bytes)
}

/// Runs `decode` of `bytes` with `source`, which holds them, as the bytes a
/// decoded [`Buffer`] may share. Bytes too short to hold a shared buffer
/// are decoded as they are, at no cost.
#[inline]
pub(crate) fn decode_from<R>(source: &Bytes, bytes: &[u8], decode: impl FnOnce(&[u8]) -> R) -> R {
    if bytes.len() < SHARE_FROM {
        return decode(bytes);
    }
    let _source = Scoped::set(&SOURCE, source);
    decode(bytes)
}

/// The offered buffer, if `bytes` is exactly its bytes: the encoder then
/// writes it from where it lies. Taking it ends the offer.
#[inline]
pub(crate) fn take_offered(bytes: &[u8]) -> Option<Bytes> {
    if bytes.len() < SPLICE_FROM {
        return None;
    }
    take_offered_slow(bytes)
}

fn take_offered_slow(bytes: &[u8]) -> Option<Bytes> {
    let offered = OFFERED.get();
    // SAFETY: a non-null OFFERED points at the `Bytes` of the `Buffer` whose
    // `serialize` set it, which is borrowed for as long as it is set.
    let offered = unsafe { offered.as_ref() }?;
    if offered.as_ptr() == bytes.as_ptr() && offered.len() == bytes.len() {
        OFFERED.set(std::ptr::null());
        Some(offered.clone())
    } else {
        None
    }
}

fn contains(outer: &[u8], inner: &[u8]) -> bool {
    let outer = outer.as_ptr_range();
    let inner = inner.as_ptr_range();
    outer.start <= inner.start && inner.end <= outer.end
}

/// A thread-local pointer set for a scope: what it was before comes back
/// when the scope ends, by return or by unwinding.
struct Scoped {
    cell: &'static std::thread::LocalKey<Cell<*const Bytes>>,
    previous: *const Bytes,
}

impl Scoped {
    fn set(cell: &'static std::thread::LocalKey<Cell<*const Bytes>>, bytes: &Bytes) -> Scoped {
        let previous = cell.replace(bytes);
        Scoped { cell, previous }
    }
}

impl Drop for Scoped {
    fn drop(&mut self) {
        self.cell.set(self.previous);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_buffer_decodes_as_a_share_of_its_source() {
        let buffer = Buffer::from(vec![7u8; SHARE_FROM]);
        let source = Bytes::from(postcard::to_stdvec(&buffer).unwrap());
        let decoded: Buffer = decode_from(&source, &source, |bytes| postcard::from_bytes(bytes)).unwrap();
        assert_eq!(decoded, buffer);
        assert!(contains(&source, &decoded));
    }

    #[test]
    fn outside_a_decode_scope_or_small_it_is_copied() {
        let large = Bytes::from(postcard::to_stdvec(&Buffer::from(vec![1u8; SHARE_FROM])).unwrap());
        let decoded: Buffer = postcard::from_bytes(&large).unwrap();
        assert!(!contains(&large, &decoded));
        let small = Bytes::from(postcard::to_stdvec(&Buffer::from(vec![1u8; 100])).unwrap());
        let decoded: Buffer = decode_from(&small, &small, |bytes| postcard::from_bytes(bytes)).unwrap();
        assert!(!contains(&small, &decoded));
        assert_eq!(decoded.len(), 100);
    }

    #[test]
    fn only_the_offered_bytes_are_taken_and_only_while_serializing() {
        let buffer = Buffer::from(vec![3u8; SPLICE_FROM]);
        assert!(take_offered(&buffer).is_none());
        let copy = buffer.to_vec();
        let _offer = Scoped::set(&OFFERED, &buffer.0);
        assert!(take_offered(&copy).is_none(), "equal bytes elsewhere are not the offer");
        assert!(take_offered(&buffer[1..]).is_none());
        assert_eq!(take_offered(&buffer).as_deref(), Some(&buffer[..]));
        assert!(take_offered(&buffer).is_none(), "an offer is taken once");
    }

    #[test]
    fn it_reads_like_serde_bytes_in_other_formats() {
        let json = serde_json::to_string(&Buffer::from(vec![1u8, 2, 3])).unwrap();
        assert_eq!(json, "[1,2,3]");
        let back: Buffer = serde_json::from_str(&json).unwrap();
        assert_eq!(&back[..], [1, 2, 3]);
        let bytes = postcard::to_stdvec(&Buffer::from(vec![9u8; 5])).unwrap();
        assert_eq!(bytes, postcard::to_stdvec(&serde_bytes_like(&[9u8; 5])).unwrap());
    }

    /// What `serde_bytes` writes: one byte string.
    fn serde_bytes_like(bytes: &[u8]) -> impl Serialize + '_ {
        struct Raw<'a>(&'a [u8]);
        impl Serialize for Raw<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(self.0)
            }
        }
        Raw(bytes)
    }
}
