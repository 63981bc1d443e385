//! `AIOMP_START_METHOD` sets the default start method at `init`; with
//! `forkserver` the server is forked right there, and its workers are the
//! program's own children. A bad value stops the program with a clear
//! message. (A real helper binary: `init` reads the environment once, at the
//! top of `main`.)

use std::process::{Command, Output};

fn run(value: &str) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_start_method_from_env"))
        .env("AIOMP_START_METHOD", value)
        .output()
        .unwrap();
    assert!(
        output.status.success() || value == "bogus",
        "{value}: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The numbers after `key` on the line that starts with it.
fn numbers(stdout: &str, key: &str) -> Vec<u32> {
    let line = stdout
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key:?} line in {stdout:?}"));
    line.split_whitespace().map(|n| n.parse().unwrap()).collect()
}

#[test]
fn forkserver_is_preloaded_at_init_and_its_workers_are_our_children() {
    let output = run("forkserver");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("method forkserver"), "{stdout}");
    assert_eq!(numbers(&stdout, "servers-at-init"), [1], "{stdout}");
    assert_eq!(numbers(&stdout, "workers").len(), 2, "{stdout}");
    // Every worker's parent is the program itself (the server forks them as its siblings).
    let parents = numbers(&stdout, "parents");
    assert_eq!(parents.len(), 1, "{stdout}");
    assert!(!numbers(&stdout, "workers").contains(&parents[0]), "{stdout}");
}

#[test]
fn spawn_and_fork_start_no_server() {
    for method in ["spawn", "fork"] {
        let output = run(method);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(stdout.contains(&format!("method {method}")), "{stdout}");
        assert_eq!(numbers(&stdout, "servers-at-init"), [0], "{stdout}");
        assert_eq!(numbers(&stdout, "workers").len(), 2, "{stdout}");
    }
}

#[test]
fn a_bad_value_stops_the_program_naming_the_variable() {
    let output = run("bogus");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("AIOMP_START_METHOD must be spawn, fork or forkserver, not \"bogus\""),
        "{stderr}"
    );
}
