//! The suite's helper binaries (`procspawn_peer`, `tokio_exec`): built with
//! the same cargo and profile as the running binary, found beside it. On a
//! machine without cargo (the binaries were copied there together), the ones
//! beside it are used as they are.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::subprocess::{RunError, command, run};

/// How long building the helpers may take (normally seconds: their dependencies are built).
const BUILD_TIMEOUT: Duration = Duration::from_secs(900);

/// The helper binaries, or why each is missing.
#[derive(Debug, Clone)]
pub struct Companions {
    /// The procspawn peer.
    pub procspawn_peer: Result<PathBuf, String>,
    /// The minimal tokio binary the exec limit runs.
    pub tokio_exec: Result<PathBuf, String>,
}

const NAMES: [&str; 2] = ["procspawn_peer", "tokio_exec"];

impl Companions {
    /// Builds the helpers (`cargo build -p aiomp-bench --bin ...`, a no-op when
    /// up to date) and finds them beside this binary.
    pub async fn build(repo: &Path) -> Companions {
        let built = build(repo).await;
        let find = |name: &str| -> Result<PathBuf, String> {
            built.clone()?;
            let exe = std::env::current_exe().map_err(|e| e.to_string())?;
            let path = exe.with_file_name(name);
            if path.is_file() {
                Ok(path)
            } else {
                Err(format!("{} was not built", path.display()))
            }
        };
        Companions {
            procspawn_peer: find(NAMES[0]),
            tokio_exec: find(NAMES[1]),
        }
    }
}

async fn build(repo: &Path) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let profile = exe
        .parent()
        .and_then(Path::file_name)
        .and_then(|p| p.to_str())
        .unwrap_or_default()
        .to_owned();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = repo.join("Cargo.toml");
    let mut args: Vec<String> = vec![
        "build".into(),
        "--quiet".into(),
        "--manifest-path".into(),
        manifest.display().to_string(),
        "-p".into(),
        "aiomp-bench".into(),
    ];
    // Build where this binary lives (`<target>/<profile>/aiomp-bench`), wherever cargo's default would be.
    if let Some(target_dir) = exe.parent().and_then(Path::parent) {
        args.extend(["--target-dir".into(), target_dir.display().to_string()]);
    }
    match profile.as_str() {
        "release" => args.push("--release".into()),
        "debug" => {}
        other => return Err(format!("this binary is not in a cargo profile folder ({other:?})")),
    }
    for name in NAMES {
        args.extend(["--bin".into(), name.into()]);
    }
    eprintln!("[setup] building the helper binaries {NAMES:?}");
    match run(command(&cargo, args), BUILD_TIMEOUT).await {
        Ok(_) => Ok(()),
        Err(RunError::Spawn(error)) if NAMES.iter().all(|name| exe.with_file_name(name).is_file()) => {
            eprintln!(
                "[setup] could not run {} ({error}): using the helper binaries beside {} as they are",
                Path::new(&cargo).display(),
                exe.display()
            );
            Ok(())
        }
        Err(error) => Err(format!("could not build the helper binaries: {error}")),
    }
}
