//! Catching a task's panic with its message, location and backtrace.
//!
//! The worker's panic hook records where a panic inside a task happened (and
//! a backtrace when `RUST_BACKTRACE` asks for one) in a thread-local; the
//! task's `catch_unwind` picks it up on the same thread. Panics outside tasks
//! go to the previous hook as usual.

use std::any::Any;
use std::backtrace::{Backtrace, BacktraceStatus};
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::FutureExt;

/// A caught panic.
#[derive(Debug, Clone)]
pub(crate) struct PanicReport {
    pub(crate) message: String,
    pub(crate) location: Option<String>,
    pub(crate) backtrace: Option<String>,
}

thread_local! {
    static IN_TASK: Cell<bool> = const { Cell::new(false) };
    static LAST: RefCell<Option<(Option<String>, Option<String>)>> = const { RefCell::new(None) };
}

/// Installs the worker's panic hook once per process, keeping the previous
/// one for panics outside tasks. (Installed in the parent before a fork, so
/// that a forked child never takes the hook's lock.)
pub(crate) fn install_hook() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(install);
}

fn install() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if IN_TASK.get() {
            let location = info
                .location()
                .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
            let backtrace = Backtrace::capture();
            let backtrace = (backtrace.status() == BacktraceStatus::Captured).then(|| backtrace.to_string());
            LAST.set(Some((location, backtrace)));
        } else {
            previous(info);
        }
    }));
}

/// Runs `future`, turning a panic into a [`PanicReport`].
pub(crate) async fn catch<F: Future>(future: F) -> Result<F::Output, PanicReport> {
    AssertUnwindSafe(InTask { inner: future })
        .catch_unwind()
        .await
        .map_err(|payload| report(&*payload))
}

/// Runs `f` now, turning a panic into a [`PanicReport`].
pub(crate) fn catch_now<T>(f: impl FnOnce() -> T) -> Result<T, PanicReport> {
    let _in_task = InTaskGuard::enter();
    catch_in_task(f)
}

/// Runs `f` now, under an [`InTaskGuard`] the caller holds, turning a panic
/// into a [`PanicReport`].
pub(crate) fn catch_in_task<T>(f: impl FnOnce() -> T) -> Result<T, PanicReport> {
    std::panic::catch_unwind(AssertUnwindSafe(f)).map_err(|payload| report(&*payload))
}

/// Marks the thread as running tasks until dropped: the panic hook then
/// records where a panic happened, for the task's report.
pub(crate) struct InTaskGuard {
    /// The flag before: restored on drop, so that guards nest.
    was_in_task: bool,
}

impl InTaskGuard {
    pub(crate) fn enter() -> InTaskGuard {
        InTaskGuard {
            was_in_task: IN_TASK.replace(true),
        }
    }
}

impl Drop for InTaskGuard {
    fn drop(&mut self) {
        IN_TASK.set(self.was_in_task);
    }
}

fn report(payload: &(dyn Any + Send)) -> PanicReport {
    let (location, backtrace) = LAST.take().unwrap_or_default();
    PanicReport {
        message: message(payload),
        location,
        backtrace,
    }
}

fn message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

pin_project_lite::pin_project! {
    /// Marks the thread as running a task while the inner future is polled.
    struct InTask<F> {
        #[pin]
        inner: F,
    }
}

impl<F: Future> Future for InTask<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let _in_task = InTaskGuard::enter();
        self.project().inner.poll(cx)
    }
}
