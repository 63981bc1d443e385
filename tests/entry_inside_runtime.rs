//! `aiomp::init()` called inside the program's runtime (a `#[tokio::main]`
//! that calls it first thing) still gives working workers under every start
//! method and runtime flavor: a worker serves on a thread of its own, and
//! the fork server's workers keep the fds that runtime opened. (A real
//! helper binary: the runtime must exist before `init`, in `main`.)

use std::process::Command;

fn run(method: &str, flavor: &str, start_method_env: bool) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_init_in_tokio_main"));
    command.args([method, flavor]);
    if start_method_env {
        command.env("AIOMP_START_METHOD", method);
    }
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{method} {flavor}: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn workers_serve_under_every_start_method_and_flavor() {
    for method in ["spawn", "fork", "forkserver"] {
        for flavor in ["multi_thread", "current_thread"] {
            let stdout = run(method, flavor, false);
            assert_eq!(stdout.trim(), "ok: 42 6", "{method} {flavor}");
        }
    }
}

#[test]
fn a_fork_server_named_in_the_environment_serves_too() {
    // On a current-thread runtime the process is still single-threaded at
    // `init`, where the server would be forked from inside the runtime.
    for flavor in ["current_thread", "multi_thread"] {
        let stdout = run("forkserver", flavor, true);
        assert_eq!(stdout.trim(), "ok: 42 6", "{flavor}");
    }
}
