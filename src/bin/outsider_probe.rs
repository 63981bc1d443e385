//! Tries, as whoever runs it, to get at another process's channel: the tests
//! run it as a freshly created local user against a pool's parent, workers
//! and fork server, which run as root. One probe per argument, one line of
//! output per probe, `<probe>\t<ok|err>\t<detail>`:
//!
//! - `uid`: this process's real uid (`ok\t<uid>`);
//! - `read:PATH`: read a file (`ok\t<its bytes in hex>` or `err\t<errno>`);
//! - `list:PATH`: list a directory (`ok\t<entries>`);
//! - `open:PATH`: open a path read-only, e.g. `/proc/PID/fd/N`;
//! - `getfd:PID:FD`: copy fd `FD` out of process `PID` with `pidfd_getfd`;
//! - `unix:INODE`: look up a Unix socket in `/proc/net/unix`
//!   (`ok\t<its address, or - for none>`, `err\tabsent`).

use std::ffi::{c_int, c_long, c_uint};
use std::fmt::Write;

unsafe extern "C" {
    fn syscall(number: c_long, ...) -> c_long;
    fn close(fd: c_int) -> c_int;
}

/// `pidfd_open` and `pidfd_getfd` have the same numbers on every architecture.
const SYS_PIDFD_OPEN: c_long = 434;
const SYS_PIDFD_GETFD: c_long = 438;

fn errno(error: &std::io::Error) -> String {
    error
        .raw_os_error()
        .map_or_else(|| error.to_string(), |n| n.to_string())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

#[allow(unsafe_code)]
fn getfd(pid: c_int, fd: c_int) -> Result<String, String> {
    // SAFETY: pidfd_open takes a pid and flags; the result is a new fd or -1.
    let pidfd = unsafe { syscall(SYS_PIDFD_OPEN, pid, 0 as c_uint) };
    if pidfd < 0 {
        return Err(errno(&std::io::Error::last_os_error()));
    }
    // SAFETY: a pidfd we own, an fd number and zero flags.
    let copied = unsafe { syscall(SYS_PIDFD_GETFD, pidfd as c_int, fd, 0 as c_uint) };
    let result = if copied < 0 {
        Err(errno(&std::io::Error::last_os_error()))
    } else {
        // SAFETY: the fd was just created for us.
        unsafe { close(copied as c_int) };
        Ok(format!("copied as fd {copied}"))
    };
    // SAFETY: the pidfd is ours and closed once.
    unsafe { close(pidfd as c_int) };
    result
}

fn uid() -> Result<String, String> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|e| errno(&e))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().next())
        .map(str::to_owned)
        .ok_or_else(|| "no Uid line".to_owned())
}

fn unix_address(inode: &str) -> Result<String, String> {
    let table = std::fs::read_to_string("/proc/net/unix").map_err(|e| errno(&e))?;
    for line in table.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(6) == Some(&inode) {
            return Ok(fields.get(7).map_or_else(|| "-".to_owned(), |path| (*path).to_owned()));
        }
    }
    Err("absent".to_owned())
}

fn probe(probe: &str) -> Result<String, String> {
    let (kind, target) = probe.split_once(':').unwrap_or((probe, ""));
    match kind {
        "uid" => uid(),
        "read" => std::fs::read(target).map(|bytes| hex(&bytes)).map_err(|e| errno(&e)),
        "list" => std::fs::read_dir(target)
            .map(|entries| entries.count().to_string())
            .map_err(|e| errno(&e)),
        "open" => std::fs::File::open(target)
            .map(|_| "opened".to_owned())
            .map_err(|e| errno(&e)),
        "getfd" => {
            let (pid, fd) = target.split_once(':').ok_or("getfd:PID:FD")?;
            getfd(pid.parse().map_err(|_| "bad pid")?, fd.parse().map_err(|_| "bad fd")?)
        }
        "unix" => unix_address(target),
        _ => Err(format!("unknown probe {kind:?}")),
    }
}

fn main() {
    for arg in std::env::args().skip(1) {
        match probe(&arg) {
            Ok(detail) => println!("{arg}\tok\t{detail}"),
            Err(detail) => println!("{arg}\terr\t{detail}"),
        }
    }
}
