//! The results of one batch of calls once its answer arrived, decoded one at
//! a time, in input order, straight from the buffer the worker sent.

use serde::de::DeserializeOwned;

use crate::chunk::{Entry, read_results};
use crate::error::{Error, Result};
use crate::link::Answer;
use crate::registry::FunctionIndex;
use crate::remote_fn::{decode_output, decode_task_error};

/// A batch's results not yet yielded.
#[derive(Debug)]
pub(crate) struct Arrived {
    /// The input index of the next one.
    index: usize,
    /// How many are left.
    left: usize,
    source: Source,
}

#[derive(Debug)]
enum Source {
    /// Each call's result, in call order.
    Results {
        bytes: bytes::Bytes,
        entries: std::vec::IntoIter<Entry>,
    },
    /// Every call failed with this: the task was lost, or never left.
    Lost(Error),
}

impl Arrived {
    /// The `len` results of the task whose first call has input index `first`,
    /// from its answer (`None` if its sender was dropped); `stopped` is the
    /// error for an answer that never came.
    pub(crate) fn from_answer(
        first: usize,
        len: usize,
        answer: Option<Answer>,
        stopped: impl FnOnce() -> Error,
    ) -> Arrived {
        let source = match answer {
            Some(Ok(results)) => match read_results(&results.bytes, len) {
                Ok(entries) => Source::Results {
                    bytes: results.bytes,
                    entries: entries.into_iter(),
                },
                Err(malformed) => Source::Lost(Error::Transport {
                    pid: results.pid,
                    reason: malformed.to_string(),
                }),
            },
            Some(Err(error)) => Source::Lost(error),
            None => Source::Lost(stopped()),
        };
        Arrived {
            index: first,
            left: len,
            source,
        }
    }

    /// A call at input index `index` that failed before it left.
    pub(crate) fn failed(index: usize, error: Error) -> Arrived {
        Arrived {
            index,
            left: 1,
            source: Source::Lost(error),
        }
    }

    /// The next result with its input index, decoded as the return value of
    /// the function at `function`.
    pub(crate) fn next<R: DeserializeOwned>(&mut self, function: FunctionIndex) -> Option<(usize, Result<R>)> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let index = self.index;
        self.index += 1;
        let result = match &mut self.source {
            Source::Results { bytes, entries } => match entries.next() {
                Some(entry) => {
                    let value = &bytes[entry.start as usize..][..entry.len as usize];
                    if entry.ok {
                        decode_output(function, bytes, value)
                    } else {
                        Err(decode_task_error(function, value))
                    }
                }
                None => Err(Error::InvalidState("a task's results ran out before its calls")),
            },
            Source::Lost(error) => Err(error.duplicate()),
        };
        Some((index, result))
    }
}
