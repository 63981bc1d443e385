//! Programs that get entering worker mode wrong fail fast with a clear
//! message; a child never runs the program's own work to the point of
//! starting workers of its own.

use std::process::Command;
use std::time::{Duration, Instant};

fn run(mode: &str) -> (String, String) {
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_entry_misuse"))
        .arg(mode)
        .output()
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_child_that_skips_init_is_stopped_before_spawning() {
    let (stdout, stderr) = run("skip-init-in-children");
    // The child was stopped with its own message...
    assert!(
        stderr.contains("started as an aiomp worker but reached the program's own code"),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("reached the program's own code").count(),
        1,
        "grandchildren were spawned: {stderr}"
    );
    // ...and the parent got a clear error in bounded time.
    assert!(stdout.starts_with("error: "), "{stdout}");
    assert!(stdout.contains("exit code 86"), "{stdout}");
    assert!(stdout.contains("#[aiomp::main]"), "{stdout}");
}

#[test]
fn a_program_that_never_calls_init_cannot_spawn() {
    let (stdout, _) = run("no-init");
    assert!(stdout.contains("this program never entered aiomp"), "{stdout}");
    assert!(stdout.contains("aiomp::init()"), "{stdout}");
}
