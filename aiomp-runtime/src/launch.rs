//! Starting a child that holds one end of a private channel.
//!
//! Spawn re-executes the current binary with the child's end of a socketpair
//! inherited (the only fd it gets beyond stdio), named in the environment
//! with a random token the parent sends first on the channel: a process that
//! got hold of the socket some other way cannot pass for the parent.
//! Its `main` (or its `#[aiomp::test]`) calls [`init`](crate::init) first,
//! which finds the fd and serves.

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::sync::Arc;

use crate::entry::{Entry, entry};
use crate::error::Error;
use crate::os_child::OsChild;
use crate::sys;

/// The environment variable that tells a re-executed binary it is a worker.
pub(crate) const WORKER_ENV: &str = "AIOMP_WORKER";

/// How child processes start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum StartMethod {
    /// Re-execute the current binary (the default): a fresh process that
    /// shares nothing with the parent but the channel.
    #[default]
    Spawn,
}

static DEFAULT_METHOD: std::sync::Mutex<Option<StartMethod>> = std::sync::Mutex::new(None);

/// Sets the start method of every later [`Process`](crate::Process),
/// [`Worker`](crate::Worker) and [`Pool`](crate::Pool) that does not name its own.
///
/// `None` restores the platform's default, [`StartMethod::Spawn`] on every
/// platform: a fresh process is the predictable choice, as in aiomultiprocess.
pub fn set_start_method(method: Option<StartMethod>) {
    *crate::lock(&DEFAULT_METHOD) = method;
}

/// The start method in effect for new processes.
pub fn get_start_method() -> StartMethod {
    crate::lock(&DEFAULT_METHOD).unwrap_or_default()
}

/// The secret a child must be sent before anything else on its channel.
pub(crate) type Token = [u8; TOKEN_BYTES];

/// The length of a [`Token`].
pub(crate) const TOKEN_BYTES: usize = 16;

/// A started child and the parent's end of its channel.
#[derive(Debug)]
pub(crate) struct Launched {
    pub(crate) child: Arc<OsChild>,
    pub(crate) stream: UnixStream,
    pub(crate) token: Token,
}

/// A fresh random token from the OS.
pub(crate) fn random_token() -> Result<Token, Error> {
    use std::io::Read;
    let mut token = [0; TOKEN_BYTES];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut token))
        .map_err(|source| Error::Io {
            action: "reading /dev/urandom for a channel token",
            source,
        })?;
    Ok(token)
}

/// The token as lowercase hex, for the environment.
pub(crate) fn token_hex(token: &Token) -> String {
    use std::fmt::Write;
    token.iter().fold(String::with_capacity(2 * TOKEN_BYTES), |mut hex, b| {
        let _ = write!(hex, "{b:02x}");
        hex
    })
}

/// Parses [`token_hex`]'s output.
pub(crate) fn parse_token(hex: &str) -> Option<Token> {
    let mut token = [0; TOKEN_BYTES];
    if hex.len() != TOKEN_BYTES * 2 {
        return None;
    }
    for (i, byte) in token.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(token)
}

/// Starts a child with `method`.
pub(crate) fn launch(method: StartMethod) -> Result<Launched, Error> {
    crate::child::refuse_if_stray_child();
    match method {
        StartMethod::Spawn => spawn(),
    }
}

fn spawn() -> Result<Launched, Error> {
    let args: Vec<String> = match entry() {
        Some(Entry::Main) => Vec::new(),
        Some(Entry::Test(name)) => vec![name.clone(), "--exact".into(), "--nocapture".into(), "--quiet".into()],
        None => {
            return Err(Error::InvalidState(
                "cannot spawn workers: this program never entered aiomp; start `main` with \
                 #[aiomp::main] or call aiomp::init() first, and use #[aiomp::test] for tests",
            ));
        }
    };
    let token = random_token()?;
    let exe = std::env::current_exe().map_err(Error::Spawn)?;
    let (parent_end, child_end) = UnixStream::pair().map_err(Error::Spawn)?;
    let fd = child_end.as_raw_fd();
    let mut command = Command::new(exe);
    command
        .args(args)
        .env(WORKER_ENV, format!("spawn:{fd}:{}", token_hex(&token)))
        .stdin(Stdio::null());
    sys::keep_fd_across_exec(&mut command, fd);
    let child = command.spawn().map_err(Error::Spawn)?;
    drop(child_end);
    Ok(Launched {
        child: OsChild::adopt(child.id()),
        stream: parent_end,
        token,
    })
}
