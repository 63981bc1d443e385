//! Large buffers kept for reuse once written out.
//!
//! A chunk of large values needs an argument (or result) buffer as large as
//! they are, and a fresh one each time costs the kernel faulting its pages in
//! and zeroing them. A written-out buffer that nothing else holds comes back
//! here, and the next large chunk is encoded into it.

use std::sync::Mutex;

use bytes::Bytes;

/// Buffers smaller than this are not worth keeping: the allocator has them at hand.
const KEEP_FROM: usize = 64 * 1024;

/// Buffers kept at most.
const KEEP_AT_MOST: usize = 8;

/// Written-out buffers, for reuse.
#[derive(Debug, Default)]
pub(crate) struct Buffers {
    spare: Mutex<Vec<Vec<u8>>>,
}

impl Buffers {
    /// An empty buffer with room for at least `len` bytes: a kept one if any
    /// is large enough, else a new one.
    pub(crate) fn take(&self, len: usize) -> Vec<u8> {
        if len >= KEEP_FROM {
            let mut spare = crate::lock(&self.spare);
            if let Some(at) = spare.iter().position(|buffer| buffer.capacity() >= len) {
                return spare.swap_remove(at);
            }
        }
        Vec::with_capacity(len)
    }

    /// Keeps `written`'s allocation if it is large and nothing else holds it.
    pub(crate) fn give(&self, mut written: Bytes) {
        if written.is_empty() || !written.is_unique() {
            return;
        }
        // Cut to one byte first, so that taking the allocation back copies at
        // most that (bytes keeps the capacity when it truncates to a length
        // above zero; to zero, it lets the allocation go).
        written.truncate(1);
        let mut buffer = Vec::from(written);
        buffer.clear();
        let mut spare = crate::lock(&self.spare);
        if buffer.capacity() >= KEEP_FROM && spare.len() < KEEP_AT_MOST {
            spare.push(buffer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_out_buffer_is_taken_again_without_a_copy() {
        let buffers = Buffers::default();
        let buffer = vec![7u8; 1 << 20];
        let address = buffer.as_ptr();
        buffers.give(Bytes::from(buffer));
        let again = buffers.take(1 << 20);
        assert_eq!((again.as_ptr(), again.len()), (address, 0));
        assert!(again.capacity() >= 1 << 20);
    }

    #[test]
    fn shared_or_small_buffers_are_not_kept() {
        let buffers = Buffers::default();
        let shared = Bytes::from(vec![1u8; 1 << 20]);
        let _other = shared.clone();
        buffers.give(shared);
        buffers.give(Bytes::from(vec![1u8; 100]));
        assert!(crate::lock(&buffers.spare).is_empty());
    }
}
