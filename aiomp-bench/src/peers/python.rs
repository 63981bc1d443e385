//! The Python peers: aiomultiprocess 0.9.1 in `bench/.venv` (created once
//! with `python3 -m venv` and `pip install aiomultiprocess==0.9.1`) and the
//! standard library's `multiprocessing`, running the scripts in `bench/python/`.
//!
//! When the venv cannot be made, the aiomultiprocess rows are skipped with
//! the reason, and `multiprocessing` runs on the plain interpreter if there is one.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::Command;

use crate::peers::PeerOutput;
use crate::subprocess::{RunError, command, run, run_json};

/// The aiomultiprocess version the suite installs and compares with.
pub const AIOMULTIPROCESS_VERSION: &str = "0.9.1";

/// Which Python library a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Library {
    /// aiomultiprocess, from the venv.
    Aiomultiprocess,
    /// The standard library's `multiprocessing`.
    Multiprocessing,
}

impl Library {
    fn script(self) -> &'static str {
        match self {
            Library::Aiomultiprocess => "aiomultiprocess_peer.py",
            Library::Multiprocessing => "mp_pool_peer.py",
        }
    }
}

/// The Python interpreters the peers run on, or why they cannot run.
#[derive(Debug, Clone)]
pub struct Python {
    scripts: PathBuf,
    /// The venv's interpreter, with aiomultiprocess installed.
    aiomultiprocess: Result<PathBuf, String>,
    /// An interpreter with `multiprocessing` (the venv's, or the plain one).
    multiprocessing: Result<PathBuf, String>,
    /// `Python 3.x.y`, for the machine description.
    pub version: Option<String>,
}

const QUICK_CHECK: Duration = Duration::from_secs(60);
const VENV_CREATION: Duration = Duration::from_secs(180);
const PIP_INSTALL: Duration = Duration::from_secs(600);

impl Python {
    /// Finds or makes `repo/bench/.venv` with `python` (an interpreter's
    /// name or path); never fails, records why instead.
    pub async fn setup(repo: &Path, python: &str) -> Python {
        let venv = repo.join("bench/.venv");
        let venv_python = venv.join("bin/python");
        let aiomultiprocess = ensure_venv(python, &venv, &venv_python).await;
        let multiprocessing = if aiomultiprocess.is_ok() {
            Ok(venv_python.clone())
        } else {
            match check(Path::new(python), "import multiprocessing").await {
                Ok(()) => Ok(PathBuf::from(python)),
                Err(reason) => Err(format!("no usable Python interpreter `{python}`: {reason}")),
            }
        };
        let version = match &multiprocessing {
            Ok(interpreter) => run(command(interpreter, ["--version"]), QUICK_CHECK)
                .await
                .ok()
                .map(|v| v.trim().to_owned()),
            Err(_) => None,
        };
        Python {
            scripts: repo.join("bench/python"),
            aiomultiprocess,
            multiprocessing,
            version,
        }
    }

    /// The interpreter for `library`, or why there is none.
    pub fn interpreter(&self, library: Library) -> Result<&Path, &str> {
        let interpreter = match library {
            Library::Aiomultiprocess => &self.aiomultiprocess,
            Library::Multiprocessing => &self.multiprocessing,
        };
        interpreter.as_deref().map_err(String::as_str)
    }

    /// The command that runs `workload` of `library`'s script with `--key value` options.
    pub fn command(&self, library: Library, workload: &str, options: &[(&str, String)]) -> Result<Command, String> {
        let interpreter = self.interpreter(library)?;
        let mut args = vec![self.scripts.join(library.script()).into_os_string(), workload.into()];
        for (key, value) in options {
            args.push(format!("--{key}").into());
            args.push(value.into());
        }
        let mut command = command(interpreter, args);
        command.env("PYTHONDONTWRITEBYTECODE", "1");
        Ok(command)
    }

    /// Runs `workload` of `library` within `timeout`; `Err(Skip)` when Python is unavailable.
    pub async fn run(
        &self,
        library: Library,
        workload: &str,
        options: &[(&str, String)],
        timeout: Duration,
    ) -> Result<PeerOutput, RunError> {
        let command = self
            .command(library, workload, options)
            .map_err(RunError::Unavailable)?;
        run_json(command, timeout).await
    }
}

/// `Ok` if `interpreter -c code` succeeds.
async fn check(interpreter: &Path, code: &str) -> Result<(), String> {
    run(command(interpreter, ["-c", code]), QUICK_CHECK)
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

/// The venv's interpreter once aiomultiprocess is importable in it.
async fn ensure_venv(python: &str, venv: &Path, venv_python: &Path) -> Result<PathBuf, String> {
    let probe =
        format!("import aiomultiprocess, sys; sys.exit(aiomultiprocess.__version__ != '{AIOMULTIPROCESS_VERSION}')");
    if check(venv_python, &probe).await.is_ok() {
        return Ok(venv_python.to_owned());
    }
    eprintln!("[setup] creating {} with `{python} -m venv`", venv.display());
    run(
        command(python, ["-m".as_ref(), "venv".as_ref(), venv.as_os_str()]),
        VENV_CREATION,
    )
    .await
    .map_err(|e| format!("could not create bench/.venv with `{python} -m venv`: {e}"))?;
    eprintln!("[setup] pip install aiomultiprocess=={AIOMULTIPROCESS_VERSION}");
    let requirement = format!("aiomultiprocess=={AIOMULTIPROCESS_VERSION}");
    run(
        command(venv_python, ["-m", "pip", "install", "--quiet", requirement.as_str()]),
        PIP_INSTALL,
    )
    .await
    .map_err(|e| format!("could not pip install {requirement} into bench/.venv: {e}"))?;
    check(venv_python, &probe)
        .await
        .map_err(|e| format!("aiomultiprocess {AIOMULTIPROCESS_VERSION} is not importable after install: {e}"))?;
    Ok(venv_python.to_owned())
}
