//! Every `unsafe` call of the runtime, each a thin wrapper over one libc call.

#![allow(unsafe_code)]

use std::io;
use std::io::IoSlice;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// A pidfd for `pid`: readable once the process exits.
pub(crate) fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Sends `signal` to the process behind `pidfd` (no pid-reuse race).
pub(crate) fn pidfd_send_signal(pidfd: RawFd, signal: i32) -> io::Result<()> {
    // SAFETY: a valid fd, a signal number, a null siginfo and zero flags.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd,
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Sends `signal` to `pid`. Only for children not yet reaped.
pub(crate) fn kill(pid: u32, signal: i32) -> io::Result<()> {
    // SAFETY: kill takes plain integers.
    check(unsafe { libc::kill(pid as libc::pid_t, signal) }).map(drop)
}

/// Reaps `pid` if it exited: `Ok(Some(raw status))`, or `Ok(None)` while it runs.
pub(crate) fn waitpid(pid: u32, block: bool) -> io::Result<Option<i32>> {
    let mut status = 0;
    let flags = if block { 0 } else { libc::WNOHANG };
    loop {
        // SAFETY: status is a valid out-pointer for the duration of the call.
        let ret = unsafe { libc::waitpid(pid as libc::pid_t, &raw mut status, flags) };
        match ret {
            0 => return Ok(None),
            -1 => {
                let err = io::Error::last_os_error();
                if err.kind() != io::ErrorKind::Interrupted {
                    return Err(err);
                }
            }
            _ => return Ok(Some(status)),
        }
    }
}

/// Takes ownership of an inherited fd after checking that it is a socket, and
/// marks it close-on-exec so that the worker's own children do not inherit it.
pub(crate) fn adopt_inherited_socket(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: an all-zero stat is a valid value to be overwritten by fstat.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: stat is a valid out-pointer; an invalid fd gives EBADF.
    check(unsafe { libc::fstat(fd, &raw mut stat) })?;
    if stat.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("fd {fd} is not a socket"),
        ));
    }
    if fd > libc::STDERR_FILENO {
        // SAFETY: fcntl on a valid fd.
        check(unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) })?;
        // SAFETY: the parent passed this fd to this process alone, and it is
        // adopted once (the caller takes the environment variable that names it).
        return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    // Passed as a standard stream (stdin, for spawn): moved off it, close-on-exec,
    // and /dev/null put in its place, so that the program's own use of
    // stdin never touches the channel.
    // SAFETY: fcntl on a valid fd; the new fd is ours alone.
    let moved = unsafe { OwnedFd::from_raw_fd(check(libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3))?) };
    // SAFETY: a constant, NUL-terminated path.
    let null = check(unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) })?;
    // SAFETY: both fds are valid; dup2 replaces the standard stream (without
    // close-on-exec) and `null` is closed once duplicated.
    let replaced = check(unsafe { libc::dup2(null, fd) });
    // SAFETY: `null` is ours and used nowhere else.
    unsafe { libc::close(null) };
    replaced?;
    Ok(moved)
}

/// Exits at once, without running destructors or flushing stdio buffers
/// other than what the caller flushed. For children whose work is done.
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and is always safe to call.
    unsafe { libc::_exit(code) }
}

/// Sends as much of `pieces` as the socket `fd` takes now, without
/// blocking and without `SIGPIPE`: `WouldBlock` if it takes nothing.
pub(crate) fn send_now(fd: BorrowedFd<'_>, pieces: &[IoSlice<'_>]) -> io::Result<usize> {
    // SAFETY: a zeroed msghdr is valid (no name, no control data).
    let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
    // IoSlice is ABI-compatible with iovec on Unix; sendmsg only reads them.
    message.msg_iov = pieces.as_ptr().cast_mut().cast();
    message.msg_iovlen = pieces.len();
    loop {
        // SAFETY: `message` points at `pieces`, valid for this call.
        let sent = unsafe {
            libc::sendmsg(
                fd.as_raw_fd(),
                &raw const message,
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if let Ok(sent) = usize::try_from(sent) {
            return Ok(sent);
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// Reads what the socket `fd` holds now into `buffer`'s spare capacity
/// (reserving some if it has none), without blocking: the bytes read (0 at
/// the end of the stream), or `WouldBlock` if none are there.
pub(crate) fn recv_now(fd: BorrowedFd<'_>, buffer: &mut bytes::BytesMut) -> io::Result<usize> {
    buffer.reserve(1);
    let spare = buffer.spare_capacity_mut();
    loop {
        // SAFETY: `spare` is writable memory of `spare.len()` bytes that
        // `buffer` owns; recv writes at most that many.
        let read = unsafe {
            libc::recv(
                fd.as_raw_fd(),
                spare.as_mut_ptr().cast(),
                spare.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if let Ok(read) = usize::try_from(read) {
            // SAFETY: recv initialized the first `read` spare bytes.
            unsafe { buffer.set_len(buffer.len() + read) };
            return Ok(read);
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// Whether the calling thread is its process's main thread (the thread
/// group's leader, which lives as long as the process does).
pub(crate) fn is_main_thread() -> bool {
    // SAFETY: gettid takes nothing and cannot fail.
    let tid = unsafe { libc::gettid() };
    u32::try_from(tid).ok() == Some(std::process::id())
}

/// Has the kernel SIGKILL this process when the thread that is its parent
/// in the kernel's eyes exits.
pub(crate) fn kill_on_parent_death() -> io::Result<()> {
    // SAFETY: PR_SET_PDEATHSIG takes a signal number; the rest is unused.
    check(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) }).map(drop)
}

/// Registers a duplicate of `fd` with tokio's reactor for readability.
pub(crate) fn async_readable(fd: &OwnedFd) -> io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    let owned = fd.try_clone()?;
    // SAFETY: the AsyncFd owns `owned` (a fresh duplicate) for its whole life,
    // and `OwnedFd::as_raw_fd` always returns that same fd.
    unsafe { tokio::io::unix::AsyncFd::register_with_interest(owned, tokio::io::Interest::READABLE) }
        .map_err(|e| e.into_parts().1)
}

/// Which side of a `fork` this is.
#[derive(Debug)]
pub(crate) enum Forked {
    /// The new process.
    Child,
    /// The caller, with the new process's pid.
    Parent(u32),
}

/// Forks the calling process. In the child, only the calling thread exists:
/// until [`isolate_forked_child`] and a fresh runtime, it must not take a
/// lock another thread may have held.
pub(crate) fn fork() -> io::Result<Forked> {
    // SAFETY: fork has no preconditions; the caller handles the child side
    // as documented above.
    match check(unsafe { libc::fork() })? {
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid as u32)),
    }
}

/// Forks the calling process as a sibling: the new process is a child of
/// the caller's parent (`CLONE_PARENT`), which reaps it and gets its exit
/// status directly. For the fork server: the raw `clone` skips glibc's fork
/// handlers, which only matter while another thread holds a lock, so the
/// server first waits for its other threads, if any, to sleep
/// ([`wait_for_other_threads_to_sleep`]).
pub(crate) fn fork_sibling() -> io::Result<Forked> {
    let flags = libc::c_ulong::try_from(libc::CLONE_PARENT | libc::SIGCHLD).expect("positive flags");
    // SAFETY: clone without CLONE_VM or a new stack behaves as fork: the
    // child continues on a copy of this (single) thread's stack and memory.
    let pid = unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
    match pid {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        // A pid always fits in 32 bits.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        pid => Ok(Forked::Parent(pid as u32)),
    }
}

/// Waits, up to `limit`, until every other thread of this process sleeps
/// (or is stopped); returns at once in a single-threaded process. A thread
/// that sleeps outside the allocator holds none of its locks, so a raw
/// `clone` taken then leaves the child's allocator usable. Reads
/// `/proc/self/task`; if it cannot, returns at once.
pub(crate) fn wait_for_other_threads_to_sleep(limit: std::time::Duration) {
    let started = std::time::Instant::now();
    // SAFETY: gettid takes nothing and cannot fail.
    let me = unsafe { libc::gettid() }.to_string();
    while started.elapsed() < limit {
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
            return;
        };
        let busy = tasks.flatten().any(|task| {
            task.file_name().to_str() != Some(&me)
                && std::fs::read_to_string(task.path().join("stat")).is_ok_and(|stat| !sleeping(&stat))
        });
        if !busy {
            return;
        }
        std::thread::sleep(std::time::Duration::from_micros(100));
    }
}

/// Whether this process has threads besides the calling one (`false` if
/// `/proc/self/task` cannot be read).
pub(crate) fn has_other_threads() -> bool {
    std::fs::read_dir("/proc/self/task").is_ok_and(|tasks| tasks.count() > 1)
}

/// Whether a `/proc/<pid>/task/<tid>/stat` line says the thread sleeps or
/// is stopped: its state, after the name in parentheses, is `S`, `T`, `t`,
/// `I` or `Z`.
fn sleeping(stat: &str) -> bool {
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    matches!(state, Some('S' | 'T' | 't' | 'I' | 'Z'))
}

/// The calling thread's name (the process's, for its main thread), as `ps` shows it.
pub(crate) fn thread_name() -> [u8; 16] {
    let mut name = [0u8; 16];
    // SAFETY: PR_GET_NAME writes at most 16 bytes, NUL included, into `name`.
    unsafe { libc::prctl(libc::PR_GET_NAME, name.as_mut_ptr()) };
    name
}

/// Names the calling thread (the process, for its main thread); `name` is
/// NUL-terminated within 16 bytes.
pub(crate) fn set_thread_name(name: &[u8; 16]) {
    let mut name = *name;
    name[15] = 0;
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes;
    // the last byte was forced to NUL above.
    unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) };
}

/// In a freshly forked child: restores the default handling of the signals
/// a parent may have taken over (a runtime's signal handlers would swallow
/// them), and unblocks every signal. Only async-signal-safe calls.
pub(crate) fn reset_signals() {
    for signal in [
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGCHLD,
        libc::SIGUSR1,
        libc::SIGUSR2,
    ] {
        // SAFETY: restoring a default disposition is always valid.
        unsafe { libc::signal(signal, libc::SIG_DFL) };
    }
    // SAFETY: the set is initialised by sigemptyset before use.
    unsafe {
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&raw mut none);
        libc::pthread_sigmask(libc::SIG_SETMASK, &raw const none, std::ptr::null_mut());
    }
}

/// The fds open in this process now, in ascending order.
pub(crate) fn open_fds() -> io::Result<Vec<RawFd>> {
    let mut fds: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")?
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .collect();
    // The listing's own fd was among them, and is closed now.
    // SAFETY: F_GETFD reads an fd's flags; it fails on a closed fd.
    fds.retain(|&fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0);
    fds.sort_unstable();
    Ok(fds)
}

/// Closes every fd above stderr except `keep` and those in `kept` (in
/// ascending order). Async-signal-safe: it allocates nothing.
pub(crate) fn close_fds_except(keep: RawFd, kept: &[RawFd]) -> io::Result<()> {
    let close_range = |first: RawFd, last: libc::c_uint| {
        // SAFETY: close_range takes plain integers; ranges may hold closed fds.
        let closed = unsafe { libc::syscall(libc::SYS_close_range, first as libc::c_uint, last, 0u32) };
        if closed < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    };
    let mut next = 3;
    let mut keep = Some(keep);
    let mut kept = kept.iter().copied().peekable();
    loop {
        let upcoming = match (keep, kept.peek().copied()) {
            (Some(one), Some(other)) if other < one => kept.next(),
            (Some(_), _) => keep.take(),
            (None, _) => kept.next(),
        };
        let Some(fd) = upcoming else {
            return close_range(next, libc::c_uint::MAX);
        };
        if fd > next {
            close_range(next, (fd - 1) as libc::c_uint)?;
        }
        next = next.max(fd + 1);
    }
}

/// Blocks until at least one of `fds` is readable (or hung up); returns which.
pub(crate) fn wait_readable(fds: &[RawFd]) -> io::Result<Vec<bool>> {
    let mut polled: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    loop {
        // SAFETY: `polled` is a valid array of `polled.len()` pollfds.
        let ready = unsafe { libc::poll(polled.as_mut_ptr(), polled.len() as libc::nfds_t, -1) };
        if ready >= 0 {
            return Ok(polled.iter().map(|p| p.revents != 0).collect());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Whether `fd` has something to read right now, has reached its end or
/// failed (each wakes a reader), without waiting.
pub(crate) fn readable_now(fd: RawFd) -> bool {
    let mut polled = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `polled` is one valid pollfd; a zero timeout never blocks.
    unsafe { libc::poll(&raw mut polled, 1, 0) > 0 }
}

/// Takes ownership of an fd this process received and nothing else owns.
pub(crate) fn own_received_fd(fd: RawFd) -> OwnedFd {
    // SAFETY: the fd was just received over SCM_RIGHTS: it is open, and
    // this process has no other handle to it.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Tunes glibc's allocator for a worker, whose frames come and go at the
/// size of the largest values it carries: buffers up to 32 MiB come from
/// the heap rather than a fresh `mmap` each (the kernel zeroes every page of
/// those on first touch), and freed memory up to 128 MiB stays in the heap
/// for the next call rather than going back to the kernel at once.
/// (Without this, glibc reaches about the same point on its own after a
/// while; a worker gets there from its first call.) Other allocators are
/// unaffected.
pub(crate) fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator tuning parameters; it is called
    // before the worker's runtime starts any thread.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 << 20);
    }
}

/// Fills `bytes` from the kernel's random source (`getrandom`, one system
/// call; it blocks only before the pool is seeded at boot).
pub(crate) fn fill_random(bytes: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while filled < bytes.len() {
        let rest = &mut bytes[filled..];
        // SAFETY: writes at most `rest.len()` bytes into `rest`.
        let got = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        match got {
            -1 if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {}
            -1 => return Err(io::Error::last_os_error()),
            // Non-negative and at most `rest.len()`.
            #[allow(clippy::cast_sign_loss, clippy::cast_possible_truncation)]
            got => filled += got as usize,
        }
    }
    Ok(())
}

/// Puts /dev/null on stdin.
pub(crate) fn null_stdin() -> io::Result<()> {
    // SAFETY: a constant, NUL-terminated path.
    let null = check(unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) })?;
    // SAFETY: both fds are valid; dup2 replaces stdin (without close-on-exec).
    let replaced = check(unsafe { libc::dup2(null, libc::STDIN_FILENO) });
    // SAFETY: `null` is ours and used nowhere else.
    unsafe { libc::close(null) };
    replaced.map(drop)
}

/// Asks for a send buffer of `bytes` on the socket `fd`. The kernel caps
/// the request at `net.core.wmem_max`, so this is a hint, not a promise.
pub(crate) fn set_send_buffer(fd: BorrowedFd<'_>, bytes: usize) -> io::Result<()> {
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: `value` is a live c_int, and its size is passed with it.
    check(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&raw const value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(drop)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn a_thread_state_is_read_after_its_name() {
        assert!(sleeping("42 (tokio-rt (odd) name) S 1 2 3"));
        assert!(!sleeping("42 (busy) R 1 2 3"));
        assert!(!sleeping("42 (faulting) D 1"));
        assert!(!sleeping("garbage"));
    }

    #[test]
    fn a_fork_waits_while_another_thread_runs_and_not_while_it_sleeps() {
        let stop = AtomicBool::new(false);
        let spinning = AtomicBool::new(false);
        std::thread::scope(|scope| {
            scope.spawn(|| std::thread::sleep(Duration::from_secs(2)));
            std::thread::sleep(Duration::from_millis(50));
            // Other tests of this binary may run beside it for a while: well under the limit is enough.
            let started = Instant::now();
            wait_for_other_threads_to_sleep(Duration::from_secs(20));
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "a sleeping thread held it up"
            );

            scope.spawn(|| {
                let spin_until = Instant::now() + Duration::from_millis(300);
                spinning.store(true, Ordering::Release);
                while Instant::now() < spin_until && !stop.load(Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            });
            // Once it spins it never sleeps: the wait lasts until it ends.
            while !spinning.load(Ordering::Acquire) {
                std::thread::yield_now();
            }
            let started = Instant::now();
            wait_for_other_threads_to_sleep(Duration::from_secs(5));
            stop.store(true, Ordering::Relaxed);
            assert!(
                started.elapsed() >= Duration::from_millis(200),
                "it did not wait for the spinning thread"
            );
        });
    }
}
