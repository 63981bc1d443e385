//! The `procspawn` peer: the `procspawn_peer` binary of this crate, run as
//! `procspawn_peer WORKLOAD ARGS...` (see `src/bin/procspawn_peer.rs`).

use std::path::PathBuf;
use std::time::Duration;

use tokio::process::Command;

use crate::peers::PeerOutput;
use crate::subprocess::{RunError, command, run_json};

/// The procspawn peer's binary, or why it is missing.
#[derive(Debug, Clone)]
pub struct Procspawn {
    binary: Result<PathBuf, String>,
}

impl Procspawn {
    /// The peer whose binary is `binary`.
    pub fn new(binary: Result<PathBuf, String>) -> Procspawn {
        Procspawn { binary }
    }

    /// The command that runs `workload` with `args`.
    pub fn command(&self, workload: &str, args: &[u64]) -> Result<Command, String> {
        let binary = self.binary.as_ref().map_err(Clone::clone)?;
        let mut all = vec![workload.to_owned()];
        all.extend(args.iter().map(u64::to_string));
        Ok(command(binary, all))
    }

    /// Runs `workload` with `args` within `timeout`.
    pub async fn run(&self, workload: &str, args: &[u64], timeout: Duration) -> Result<PeerOutput, RunError> {
        let command = self.command(workload, args).map_err(RunError::Unavailable)?;
        run_json(command, timeout).await
    }
}
