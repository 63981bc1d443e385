//! The byte layout of a chunk: many calls' arguments in one buffer, and
//! their results in another.
//!
//! A map of tiny calls must not cost an allocation per call on either side,
//! so a task's calls travel as one contiguous buffer, written in place by the
//! parent and read in place by the worker (and the same for the results,
//! the other way):
//!
//! ```text
//! arguments: ( u32 len | postcard argument tuple ){calls}
//! results:   ( u32 call index | u8 tag | u32 len | bytes ){calls}, in completion order
//! ```
//!
//! A result's tag says whether its bytes are the postcard return value
//! ([`OK`]) or a postcard [`TaskError`] ([`FAILED`]). All integers are
//! little-endian. Both readers check every length against what is left, so a
//! corrupt buffer is an error, never a panic or an over-read.

use serde::Serialize;

use crate::protocol::TaskError;

/// A result whose bytes are the encoded return value.
pub(crate) const OK: u8 = 0;

/// A result whose bytes are an encoded [`TaskError`].
pub(crate) const FAILED: u8 = 1;

const LEN_BYTES: usize = 4;

/// The bytes before a result's own: its call index, its tag and its length.
const RESULT_HEADER: usize = 4 + 1 + LEN_BYTES;

/// A postcard output that appends to a `Vec` with `extend_from_slice` (postcard's
/// own `to_extend` pushes a byte at a time).
pub(crate) struct Append<'a>(pub(crate) &'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for Append<'_> {
    type Output = ();

    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.0.push(byte);
        Ok(())
    }

    fn try_extend(&mut self, bytes: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Appends `value`'s postcard encoding to `out`; on failure `out` is as it was.
pub(crate) fn encode_into<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> postcard::Result<()> {
    let start = out.len();
    postcard::serialize_with_flavor(value, Append(out)).inspect_err(|_| out.truncate(start))
}

/// Appends one call's arguments to a chunk's argument buffer; on failure the
/// buffer is as it was.
pub(crate) fn push_args<T: Serialize + ?Sized>(args: &T, out: &mut Vec<u8>) -> postcard::Result<()> {
    let start = out.len();
    out.extend_from_slice(&[0; LEN_BYTES]);
    if let Err(e) = encode_into(args, out) {
        out.truncate(start);
        return Err(e);
    }
    patch_len(out, start, start + LEN_BYTES)
}

/// The argument buffer of a chunk of one call, from its encoded arguments.
pub(crate) fn single_call(args: &[u8]) -> Vec<u8> {
    let len = u32::try_from(args.len()).unwrap_or(u32::MAX);
    let mut buffer = Vec::with_capacity(LEN_BYTES + args.len());
    buffer.extend_from_slice(&len.to_le_bytes());
    buffer.extend_from_slice(args);
    buffer
}

/// The calls' argument tuples in a chunk's argument buffer, in order.
#[derive(Debug, Clone)]
pub(crate) struct ArgsReader<'a> {
    rest: &'a [u8],
}

impl<'a> ArgsReader<'a> {
    pub(crate) fn new(buffer: &'a [u8]) -> Self {
        ArgsReader { rest: buffer }
    }

    /// The next call's encoded arguments, `None` at the end, or `Err` if the
    /// buffer is cut short.
    pub(crate) fn next_call(&mut self) -> Option<Result<&'a [u8], Malformed>> {
        if self.rest.is_empty() {
            return None;
        }
        Some(take_len_prefixed(&mut self.rest))
    }

    /// How many calls the buffer holds, checking that it is well formed.
    pub(crate) fn count(buffer: &[u8]) -> Result<usize, Malformed> {
        let mut reader = ArgsReader::new(buffer);
        let mut calls = 0;
        while let Some(call) = reader.next_call() {
            call?;
            calls += 1;
        }
        Ok(calls)
    }
}

/// A chunk buffer that is not laid out as described in this module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Malformed(pub(crate) &'static str);

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed chunk: {}", self.0)
    }
}

fn take_u32(rest: &mut &[u8]) -> Result<u32, Malformed> {
    let Some((bytes, tail)) = rest.split_first_chunk::<4>() else {
        return Err(Malformed("cut inside a length"));
    };
    *rest = tail;
    Ok(u32::from_le_bytes(*bytes))
}

fn take_len_prefixed<'a>(rest: &mut &'a [u8]) -> Result<&'a [u8], Malformed> {
    let len = take_u32(rest)? as usize;
    if len > rest.len() {
        return Err(Malformed("a length runs past the end"));
    }
    let (bytes, tail) = rest.split_at(len);
    *rest = tail;
    Ok(bytes)
}

fn patch_len(out: &mut [u8], at: usize, from: usize) -> postcard::Result<()> {
    let len = u32::try_from(out.len() - from).map_err(|_| postcard::Error::SerializeBufferFull)?;
    out[at..at + LEN_BYTES].copy_from_slice(&len.to_le_bytes());
    Ok(())
}

/// Writes a chunk's results into one buffer as its calls complete.
#[derive(Debug, Default)]
pub(crate) struct ResultsWriter {
    buffer: Vec<u8>,
    failed: u32,
}

/// Where a result being written starts, from [`ResultsWriter::begin`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mark(usize);

impl ResultsWriter {
    /// A writer into `buffer` (emptied first).
    pub(crate) fn into_buffer(mut buffer: Vec<u8>) -> Self {
        buffer.clear();
        ResultsWriter { buffer, failed: 0 }
    }

    /// Starts call `index`'s result; its value is then appended to
    /// [`out`](Self::out), and [`finish`](Self::finish) or
    /// [`fail`](Self::fail) ends it.
    pub(crate) fn begin(&mut self, index: u32) -> Mark {
        let start = self.buffer.len();
        self.buffer.extend_from_slice(&index.to_le_bytes());
        self.buffer.push(OK);
        self.buffer.extend_from_slice(&[0; LEN_BYTES]);
        Mark(start)
    }

    /// The buffer a value is appended to between `begin` and `finish`.
    pub(crate) fn out(&mut self) -> &mut Vec<u8> {
        &mut self.buffer
    }

    /// The bytes of the result begun at `mark` so far.
    pub(crate) fn written(&self, mark: Mark) -> usize {
        self.buffer.len() - mark.0 - RESULT_HEADER
    }

    /// Ends the result begun at `mark` as a value.
    pub(crate) fn finish(&mut self, mark: Mark) {
        let from = mark.0 + RESULT_HEADER;
        // A value over 4 GiB never gets here: it is refused as over the frame limit first.
        let _ = patch_len(&mut self.buffer, from - LEN_BYTES, from);
    }

    /// Forgets the result begun at `mark`, and anything written after it.
    pub(crate) fn abandon(&mut self, mark: Mark) {
        self.buffer.truncate(mark.0);
    }

    /// Ends the result begun at `mark` as `error`, dropping any value bytes.
    pub(crate) fn fail(&mut self, mark: Mark, error: &TaskError) {
        let from = mark.0 + RESULT_HEADER;
        self.buffer.truncate(from);
        self.buffer[from - LEN_BYTES - 1] = FAILED;
        self.failed += 1;
        if encode_into(error, &mut self.buffer).is_err() {
            // A TaskError always encodes; should it not, the tag alone still says "failed".
            self.buffer.truncate(from);
        }
        let _ = patch_len(&mut self.buffer, from - LEN_BYTES, from);
    }

    /// Writes call `index`'s result as `error`.
    pub(crate) fn push_failed(&mut self, index: u32, error: &TaskError) {
        let mark = self.begin(index);
        self.fail(mark, error);
    }

    /// How many results so far are failures.
    pub(crate) fn failed(&self) -> u32 {
        self.failed
    }

    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.buffer
    }
}

/// One call's result in a results buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    /// Where its bytes start in the buffer.
    pub(crate) start: u32,
    pub(crate) len: u32,
    pub(crate) ok: bool,
}

/// Indexes a results buffer that must hold exactly one result for each of
/// `calls` calls; the entries come back in call order.
pub(crate) fn read_results(buffer: &[u8], calls: usize) -> Result<Vec<Entry>, Malformed> {
    if buffer.len() < calls.saturating_mul(RESULT_HEADER) {
        return Err(Malformed("fewer results than calls"));
    }
    let mut entries: Vec<Option<Entry>> = vec![None; calls];
    let mut rest = buffer;
    while !rest.is_empty() {
        let index = take_u32(&mut rest)? as usize;
        let Some((&tag, tail)) = rest.split_first() else {
            return Err(Malformed("cut inside a result's header"));
        };
        rest = tail;
        let start = buffer.len() - rest.len() + LEN_BYTES;
        let bytes = take_len_prefixed(&mut rest)?;
        let ok = match tag {
            OK => true,
            FAILED => false,
            _ => return Err(Malformed("a result's tag is neither a value nor a failure")),
        };
        let slot = entries
            .get_mut(index)
            .ok_or(Malformed("a result for a call it was not sent"))?;
        if slot.is_some() {
            return Err(Malformed("two results for one call"));
        }
        // Both fit: the buffer came in one frame, and frames are under 4 GiB.
        #[allow(clippy::cast_possible_truncation)]
        let entry = Entry {
            start: start as u32,
            len: bytes.len() as u32,
            ok,
        };
        *slot = Some(entry);
    }
    entries
        .into_iter()
        .collect::<Option<Vec<Entry>>>()
        .ok_or(Malformed("fewer results than calls"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::CodecAction;

    #[test]
    fn arguments_round_trip_in_place() {
        let mut buffer = Vec::new();
        for x in [1u64, 300, u64::MAX] {
            push_args(&(x, "s"), &mut buffer).unwrap();
        }
        let mut reader = ArgsReader::new(&buffer);
        let mut seen = Vec::new();
        while let Some(call) = reader.next_call() {
            seen.push(postcard::from_bytes::<(u64, &str)>(call.unwrap()).unwrap().0);
        }
        assert_eq!(seen, [1, 300, u64::MAX]);
        assert_eq!(ArgsReader::count(&buffer), Ok(3));
        assert!(ArgsReader::count(&buffer[..buffer.len() - 1]).is_err());
    }

    #[test]
    fn results_come_back_in_call_order() {
        let mut writer = ResultsWriter::default();
        let mark = writer.begin(1);
        encode_into(&7u32, writer.out()).unwrap();
        writer.finish(mark);
        let error = TaskError::Codec {
            action: CodecAction::EncodeResult,
            error: postcard::Error::SerializeBufferFull,
        };
        let mark = writer.begin(0);
        encode_into(&"partial value", writer.out()).unwrap();
        writer.fail(mark, &error);
        assert_eq!(writer.failed(), 1);
        let buffer = writer.into_bytes();
        let entries = read_results(&buffer, 2).unwrap();
        assert!(!entries[0].ok && entries[1].ok);
        let value = &buffer[entries[1].start as usize..][..entries[1].len as usize];
        assert_eq!(postcard::from_bytes::<u32>(value).unwrap(), 7);
        let failure = &buffer[entries[0].start as usize..][..entries[0].len as usize];
        assert!(postcard::from_bytes::<TaskError>(failure).is_ok());
    }

    #[test]
    fn missing_duplicate_and_stray_results_are_malformed() {
        let mut writer = ResultsWriter::default();
        let mark = writer.begin(0);
        writer.finish(mark);
        let one = writer.into_bytes();
        assert_eq!(read_results(&one, 2), Err(Malformed("fewer results than calls")));
        let twice = [one.clone(), one.clone()].concat();
        assert_eq!(read_results(&twice, 1), Err(Malformed("two results for one call")));
        assert!(read_results(&one, 0).is_err());
        assert!(read_results(&one[..one.len() - 1], 1).is_err());
    }
}
