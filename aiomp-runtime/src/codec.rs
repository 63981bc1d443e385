//! Framing: a 4-byte big-endian length, bounded before any allocation, then
//! a postcard message.

use std::io::{self, Read};

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::codec::LengthDelimitedCodec;

/// The largest frame either side accepts unless configured otherwise:
/// 256 MiB. A peer can make the reader reserve up to this much for a frame
/// it announces, so the bound is also what a hostile worker can cost.
pub(crate) const DEFAULT_MAX_FRAME: usize = 256 << 20;

/// The length prefix of a frame.
pub(crate) const LENGTH_BYTES: usize = 4;

/// The frame codec for a channel that accepts frames up to `max_frame` bytes.
pub(crate) fn frame_codec(max_frame: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(LENGTH_BYTES)
        .max_frame_length(max_frame)
        .new_codec()
}

/// Encodes a message with postcard.
pub(crate) fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>, postcard::Error> {
    postcard::to_stdvec(message)
}

/// Decodes a message with postcard; trailing bytes are an error.
pub(crate) fn decode<T: DeserializeOwned>(frame: &[u8]) -> Result<T, postcard::Error> {
    let (message, rest) = postcard::take_from_bytes(frame)?;
    if rest.is_empty() {
        Ok(message)
    } else {
        Err(postcard::Error::DeserializeBadEncoding)
    }
}

/// Reads one frame from a blocking stream (the child's handshake).
pub(crate) fn read_frame(reader: &mut impl Read, max_frame: usize) -> io::Result<Vec<u8>> {
    let mut prefix = [0; LENGTH_BYTES];
    reader.read_exact(&mut prefix)?;
    let len = u32::from_be_bytes(prefix) as usize;
    if len > max_frame {
        return Err(oversized(len, max_frame));
    }
    let mut frame = vec![0; len];
    reader.read_exact(&mut frame)?;
    Ok(frame)
}

/// Appends one frame (its length, then `frame`) to `out`, so that several
/// frames go out in one write.
pub(crate) fn push_frame(out: &mut Vec<u8>, frame: &[u8]) -> io::Result<()> {
    let len = u32::try_from(frame.len()).map_err(|_| oversized(frame.len(), u32::MAX as usize))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(frame);
    Ok(())
}

fn oversized(len: usize, max_frame: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("frame of {len} bytes exceeds the limit of {max_frame} bytes"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocking_frames_round_trip() {
        let mut wire = Vec::new();
        push_frame(&mut wire, b"hello").unwrap();
        assert_eq!(read_frame(&mut wire.as_slice(), 16).unwrap(), b"hello");
    }

    #[test]
    fn oversized_prefix_is_refused_before_allocating() {
        let wire = u32::MAX.to_be_bytes();
        let err = read_frame(&mut wire.as_slice(), 1024).unwrap_err();
        assert!(err.to_string().contains("exceeds the limit of 1024 bytes"), "{err}");
    }

    #[test]
    fn trailing_bytes_are_malformed() {
        let mut frame = encode(&7u32).unwrap();
        frame.push(0);
        assert!(decode::<u32>(&frame).is_err());
    }
}
