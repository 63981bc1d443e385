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
//!
//! A buffer is written as [`Encoded`]: its bytes, with any large
//! [`Buffer`](crate::Buffer) values spliced in by reference rather than
//! copied. On the wire, and to the reader, it is one contiguous buffer.

use std::ops::Range;

use bytes::Bytes;
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
        append(self.0, bytes);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Appends `bytes` to `out`. Postcard writes a few bytes at a time (a
/// varint, mostly), which a byte loop copies faster than a call to
/// `memmove` would.
#[inline]
fn append(out: &mut Vec<u8>, bytes: &[u8]) {
    if bytes.len() > 16 {
        out.extend_from_slice(bytes);
        return;
    }
    out.reserve(bytes.len());
    for &byte in bytes {
        out.push(byte);
    }
}

/// Bytes being encoded, with large buffers spliced in among them by
/// reference: each splice goes before the byte at its offset in `bytes`.
#[derive(Debug, Default)]
pub struct Encoded {
    bytes: Vec<u8>,
    spliced: Vec<(usize, Bytes)>,
    spliced_len: usize,
}

/// A point in an [`Encoded`], to measure from or to go back to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mark {
    bytes: usize,
    splices: usize,
    spliced_len: usize,
}

impl Encoded {
    /// Encoded bytes to be written into `bytes` (emptied first).
    pub(crate) fn into_buffer(mut bytes: Vec<u8>) -> Encoded {
        bytes.clear();
        Encoded {
            bytes,
            spliced: Vec::new(),
            spliced_len: 0,
        }
    }

    /// Its length, spliced buffers included.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.bytes.len() + self.spliced_len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes written into its own buffer: its length less the spliced buffers'.
    pub(crate) fn written_len(&self) -> usize {
        self.bytes.len()
    }

    /// The end, as it is now.
    #[inline]
    pub(crate) fn mark(&self) -> Mark {
        Mark {
            bytes: self.bytes.len(),
            splices: self.spliced.len(),
            spliced_len: self.spliced_len,
        }
    }

    /// Bytes written since `mark`, spliced buffers included.
    #[inline]
    pub(crate) fn len_since(&self, mark: Mark) -> usize {
        self.bytes.len() - mark.bytes + self.spliced_len - mark.spliced_len
    }

    /// Forgets everything written since `mark`.
    #[inline]
    pub(crate) fn truncate_to(&mut self, mark: Mark) {
        self.bytes.truncate(mark.bytes);
        self.spliced.truncate(mark.splices);
        self.spliced_len = mark.spliced_len;
    }

    /// Appends bytes.
    #[cfg(test)]
    pub(crate) fn extend_from_slice(&mut self, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
    }

    /// Appends another encoding, its splices still by reference.
    pub(crate) fn append(&mut self, other: Encoded) {
        let base = self.bytes.len();
        self.bytes.extend_from_slice(&other.bytes);
        self.spliced
            .extend(other.spliced.into_iter().map(|(at, spliced)| (base + at, spliced)));
        self.spliced_len += other.spliced_len;
    }

    /// Overwrites the written bytes at `at` (which lie before any splice
    /// after `mark`'s, as headers do).
    #[inline]
    fn patch(&mut self, at: usize, bytes: &[u8]) {
        self.bytes[at..at + bytes.len()].copy_from_slice(bytes);
    }

    /// Its pieces in order: runs of written bytes (some maybe empty), each
    /// followed by the buffer spliced there, if any.
    fn pieces(&self) -> impl Iterator<Item = Piece<'_>> {
        let ats = self.spliced.iter().map(|(at, _)| *at);
        let starts = std::iter::once(0).chain(ats.clone());
        let ends = ats.chain(std::iter::once(self.bytes.len()));
        let splices = self.spliced.iter().map(|(_, piece)| Some(piece)).chain([None]);
        starts.zip(ends).zip(splices).flat_map(move |((start, end), splice)| {
            std::iter::once(Piece::Written(&self.bytes[start..end])).chain(splice.map(Piece::Spliced))
        })
    }

    /// Its non-empty pieces' bytes, in order.
    fn segments(&self) -> impl Iterator<Item = &[u8]> {
        self.pieces().map(Piece::bytes).filter(|bytes| !bytes.is_empty())
    }

    /// Appends the bytes at `range` (counting spliced buffers) to `into`,
    /// spliced ones still by reference.
    pub(crate) fn copy_range(&self, range: Range<usize>, into: &mut Encoded) {
        let mut offset = 0;
        for piece in self.pieces() {
            let len = piece.bytes().len();
            let kept = overlap(offset..offset + len, &range);
            let within = kept.start - offset..kept.end - offset;
            match piece {
                Piece::Written(written) => into.bytes.extend_from_slice(&written[within]),
                Piece::Spliced(spliced) if !within.is_empty() => {
                    into.spliced_len += within.len();
                    into.spliced.push((into.bytes.len(), spliced.slice(within)));
                }
                Piece::Spliced(_) => {}
            }
            offset += len;
        }
    }

    /// The bytes at `range` (counting spliced buffers) in one slice:
    /// borrowed if they lie in one piece, else copied.
    pub(crate) fn view(&self, range: Range<usize>) -> std::borrow::Cow<'_, [u8]> {
        let mut offset = 0;
        for piece in self.segments() {
            if offset <= range.start && range.end <= offset + piece.len() {
                return std::borrow::Cow::Borrowed(&piece[range.start - offset..range.end - offset]);
            }
            offset += piece.len();
        }
        if range.is_empty() {
            return std::borrow::Cow::Borrowed(&[]);
        }
        let mut out = Encoded::default();
        self.copy_range(range, &mut out);
        std::borrow::Cow::Owned(out.into_contiguous())
    }

    /// Splits off everything written since `mark`.
    pub(crate) fn split_off(&mut self, mark: Mark) -> Encoded {
        let bytes = self.bytes.split_off(mark.bytes);
        let spliced = self
            .spliced
            .split_off(mark.splices)
            .into_iter()
            .map(|(at, piece)| (at - mark.bytes, piece))
            .collect();
        let spliced_len = self.spliced_len - mark.spliced_len;
        self.spliced_len = mark.spliced_len;
        Encoded {
            bytes,
            spliced,
            spliced_len,
        }
    }

    /// The pieces to write, in order.
    pub(crate) fn into_pieces(self) -> Vec<Bytes> {
        if self.spliced.is_empty() {
            return vec![Bytes::from(self.bytes)];
        }
        let whole = Bytes::from(self.bytes);
        let mut pieces = Vec::with_capacity(2 * self.spliced.len() + 1);
        let mut from = 0;
        for (at, spliced) in self.spliced {
            if at > from {
                pieces.push(whole.slice(from..at));
            }
            pieces.push(spliced);
            from = at;
        }
        if whole.len() > from {
            pieces.push(whole.slice(from..));
        }
        pieces
    }

    /// One contiguous copy (for callers that need its bytes in one slice).
    pub(crate) fn into_contiguous(self) -> Vec<u8> {
        if self.spliced.is_empty() {
            return self.bytes;
        }
        let mut out = Vec::with_capacity(self.len());
        for piece in self.segments() {
            out.extend_from_slice(piece);
        }
        out
    }
}

/// One piece of an [`Encoded`].
#[derive(Clone, Copy)]
enum Piece<'a> {
    /// A run of its written bytes.
    Written(&'a [u8]),
    /// A buffer spliced in by reference.
    Spliced(&'a Bytes),
}

impl<'a> Piece<'a> {
    fn bytes(self) -> &'a [u8] {
        match self {
            Piece::Written(bytes) => bytes,
            Piece::Spliced(bytes) => bytes,
        }
    }
}

/// The part of `a` that lies in `b` (empty, at `a.start`, if none).
fn overlap(a: Range<usize>, b: &Range<usize>) -> Range<usize> {
    let start = a.start.max(b.start).min(a.end);
    start..a.end.min(b.end).max(start)
}

/// A postcard output into an [`Encoded`] that takes an offered
/// [`Buffer`](crate::Buffer)'s bytes by reference instead of copying them.
struct Splicing<'a>(&'a mut Encoded);

impl postcard::ser_flavors::Flavor for Splicing<'_> {
    type Output = ();

    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.0.bytes.push(byte);
        Ok(())
    }

    fn try_extend(&mut self, bytes: &[u8]) -> postcard::Result<()> {
        match crate::buffer::take_offered(bytes) {
            Some(spliced) => {
                self.0.spliced_len += spliced.len();
                self.0.spliced.push((self.0.bytes.len(), spliced));
            }
            None => append(&mut self.0.bytes, bytes),
        }
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Appends `value`'s postcard encoding to `out`, large buffers by
/// reference; on failure `out` is as it was.
pub(crate) fn encode_spliced<T: Serialize + ?Sized>(value: &T, out: &mut Encoded) -> postcard::Result<()> {
    let mark = out.mark();
    postcard::serialize_with_flavor(value, Splicing(out)).inspect_err(|_| out.truncate_to(mark))
}

/// Appends `value`'s postcard encoding to `out`; on failure `out` is as it was.
pub(crate) fn encode_into<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> postcard::Result<()> {
    let start = out.len();
    postcard::serialize_with_flavor(value, Append(out)).inspect_err(|_| out.truncate(start))
}

/// Appends one call's arguments to a chunk's argument buffer, large
/// buffers by reference; on failure the buffer is as it was.
pub(crate) fn push_args<T: Serialize + ?Sized>(args: &T, out: &mut Encoded) -> postcard::Result<()> {
    let start = out.mark();
    let len_at = out.bytes.len();
    out.bytes.extend_from_slice(&[0; LEN_BYTES]);
    let value = out.mark();
    if let Err(e) = encode_spliced(args, out) {
        out.truncate_to(start);
        return Err(e);
    }
    let Ok(len) = u32::try_from(out.len_since(value)) else {
        out.truncate_to(start);
        return Err(postcard::Error::SerializeBufferFull);
    };
    out.patch(len_at, &len.to_le_bytes());
    Ok(())
}

/// Where the encoded arguments lie within a call's `range` of a chunk's
/// argument buffer (after their length).
pub(crate) fn args_within(range: Range<usize>) -> Range<usize> {
    range.start + LEN_BYTES..range.end
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

/// Writes a chunk's results into one buffer as its calls complete.
#[derive(Debug, Default)]
pub(crate) struct ResultsWriter {
    out: Encoded,
    failed: u32,
}

/// Where a result being written starts, from [`ResultsWriter::begin`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct ResultMark {
    /// Before its header.
    start: Mark,
}

impl ResultMark {
    /// Where its length goes, in the written bytes.
    #[inline]
    fn len_at(self) -> usize {
        self.start.bytes + RESULT_HEADER - LEN_BYTES
    }

    /// After its header, where its value starts (nothing is spliced into a header).
    #[inline]
    fn value(self) -> Mark {
        Mark {
            bytes: self.start.bytes + RESULT_HEADER,
            ..self.start
        }
    }
}

impl ResultsWriter {
    /// A writer into `buffer` (emptied first).
    pub(crate) fn into_buffer(buffer: Vec<u8>) -> Self {
        ResultsWriter {
            out: Encoded::into_buffer(buffer),
            failed: 0,
        }
    }

    /// Starts call `index`'s result; its value is then appended to
    /// [`out`](Self::out), and [`finish`](Self::finish) or
    /// [`fail`](Self::fail) ends it.
    pub(crate) fn begin(&mut self, index: u32) -> ResultMark {
        let start = self.out.mark();
        self.out.bytes.extend_from_slice(&index.to_le_bytes());
        self.out.bytes.push(OK);
        self.out.bytes.extend_from_slice(&[0; LEN_BYTES]);
        ResultMark { start }
    }

    /// The buffer a value is appended to between `begin` and `finish`.
    pub(crate) fn out(&mut self) -> &mut Encoded {
        &mut self.out
    }

    /// The bytes of the result begun at `mark` so far.
    pub(crate) fn written(&self, mark: ResultMark) -> usize {
        self.out.len_since(mark.value())
    }

    /// Ends the result begun at `mark` as a value.
    pub(crate) fn finish(&mut self, mark: ResultMark) {
        self.patch_len(mark);
    }

    /// Forgets the result begun at `mark`, and anything written after it.
    pub(crate) fn abandon(&mut self, mark: ResultMark) {
        self.out.truncate_to(mark.start);
    }

    /// Ends the result begun at `mark` as `error`, dropping any value bytes.
    pub(crate) fn fail(&mut self, mark: ResultMark, error: &TaskError) {
        self.out.truncate_to(mark.value());
        self.out.bytes[mark.len_at() - 1] = FAILED;
        self.failed += 1;
        // A TaskError always encodes; should it not, the tag alone still says "failed".
        let _ = encode_into(error, &mut self.out.bytes);
        self.patch_len(mark);
    }

    fn patch_len(&mut self, mark: ResultMark) {
        // A value over 4 GiB never gets here: it is refused as over the frame limit first.
        let len = u32::try_from(self.out.len_since(mark.value())).unwrap_or(u32::MAX);
        self.out.patch(mark.len_at(), &len.to_le_bytes());
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

    /// The results, to be written out.
    pub(crate) fn into_encoded(self) -> Encoded {
        self.out
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
        let mut encoded = Encoded::default();
        for x in [1u64, 300, u64::MAX] {
            push_args(&(x, "s"), &mut encoded).unwrap();
        }
        let buffer = encoded.into_contiguous();
        let mut reader = ArgsReader::new(&buffer);
        let mut seen = Vec::new();
        while let Some(call) = reader.next_call() {
            seen.push(postcard::from_bytes::<(u64, &str)>(call.unwrap()).unwrap().0);
        }
        assert_eq!(seen, [1, 300, u64::MAX]);
        assert_eq!(ArgsReader::count(&buffer), Ok(3));
        assert!(ArgsReader::count(&buffer[..buffer.len() - 1]).is_err());
    }

    /// Three calls: a small one, one with a large `Buffer` and another small one.
    fn with_a_spliced_buffer() -> (Encoded, Vec<Range<usize>>, crate::Buffer) {
        let large = crate::Buffer::from((0..100_000u32).map(|i| i as u8).collect::<Vec<u8>>());
        let mut encoded = Encoded::default();
        let mut calls = Vec::new();
        for args in [
            (1u8, crate::Buffer::new()),
            (2, large.clone()),
            (3, crate::Buffer::from(vec![9; 10])),
        ] {
            let start = encoded.len();
            push_args(&args, &mut encoded).unwrap();
            calls.push(start..encoded.len());
        }
        (encoded, calls, large)
    }

    #[test]
    fn a_large_buffer_is_spliced_in_by_reference_and_reads_back_whole() {
        let (encoded, calls, large) = with_a_spliced_buffer();
        assert_eq!(encoded.spliced.len(), 1);
        assert_eq!(encoded.len(), encoded.written_len() + large.len());
        let pieces = encoded.into_pieces();
        assert!(
            pieces.iter().any(|piece| piece.as_ptr() == large.as_ptr()),
            "not copied"
        );
        let contiguous = pieces.concat();
        let mut reader = ArgsReader::new(&contiguous);
        for (expected, range) in [1u8, 2, 3].into_iter().zip(calls) {
            let call = reader.next_call().unwrap().unwrap();
            assert_eq!(call.len() + LEN_BYTES, range.len());
            let (n, buffer): (u8, crate::Buffer) = postcard::from_bytes(call).unwrap();
            assert_eq!(n, expected);
            if n == 2 {
                assert_eq!(buffer, large);
            }
        }
        assert!(reader.next_call().is_none());
    }

    #[test]
    fn ranges_views_and_splits_see_the_spliced_bytes_in_place() {
        let (encoded, calls, _) = with_a_spliced_buffer();
        let whole = Encoded::default();
        let contiguous = {
            let mut copy = whole;
            encoded.copy_range(0..encoded.len(), &mut copy);
            copy.into_contiguous()
        };
        assert_eq!(contiguous.len(), encoded.len());
        for range in calls
            .iter()
            .cloned()
            .chain([calls[0].start..calls[2].end, 3..calls[1].end - 5])
        {
            assert_eq!(
                &encoded.view(range.clone())[..],
                &contiguous[range.clone()],
                "{range:?}"
            );
            let mut part = Encoded::default();
            encoded.copy_range(range.clone(), &mut part);
            assert_eq!(part.into_contiguous(), &contiguous[range]);
        }
        // A range inside one piece is borrowed, not gathered.
        assert!(matches!(encoded.view(calls[0].clone()), std::borrow::Cow::Borrowed(_)));
        let inside_splice = calls[1].end - 1000..calls[1].end - 10;
        assert!(matches!(encoded.view(inside_splice), std::borrow::Cow::Borrowed(_)));
        // Splitting after the first call leaves it, and moves the rest whole.
        let (mut first, _, _) = with_a_spliced_buffer();
        let mut at_second = Encoded::default();
        push_args(&(1u8, crate::Buffer::new()), &mut at_second).unwrap();
        let rest = first.split_off(at_second.mark());
        assert_eq!(first.into_contiguous(), &contiguous[calls[0].clone()]);
        assert_eq!(rest.into_contiguous(), &contiguous[calls[1].start..]);
    }

    #[test]
    fn results_come_back_in_call_order() {
        let mut writer = ResultsWriter::default();
        let mark = writer.begin(1);
        encode_spliced(&7u32, writer.out()).unwrap();
        writer.finish(mark);
        let error = TaskError::Codec {
            action: CodecAction::EncodeResult,
            error: postcard::Error::SerializeBufferFull,
        };
        let mark = writer.begin(0);
        encode_spliced(&"partial value", writer.out()).unwrap();
        writer.fail(mark, &error);
        assert_eq!(writer.failed(), 1);
        let buffer = writer.into_encoded().into_contiguous();
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
        let one = writer.into_encoded().into_contiguous();
        assert_eq!(read_results(&one, 2), Err(Malformed("fewer results than calls")));
        let twice = [one.clone(), one.clone()].concat();
        assert_eq!(read_results(&twice, 1), Err(Malformed("two results for one call")));
        assert!(read_results(&one, 0).is_err());
        assert!(read_results(&one[..one.len() - 1], 1).is_err());
    }
}
