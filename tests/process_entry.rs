//! A worker's output is not lost: it prints to the parent's own stdout and
//! stderr (inherited, as with Python's `multiprocessing`), and printing does
//! not disturb the channel to the parent.

use std::os::unix::fs::MetadataExt;

use aiomp::{Process, Worker, remote};

mod common;
use common::each_start_method;

/// The (device, inode) of this process's file descriptor `fd`.
fn stream_id(fd: u32) -> (u64, u64) {
    let meta = std::fs::metadata(format!("/proc/self/fd/{fd}")).unwrap();
    (meta.dev(), meta.ino())
}

#[remote]
fn print_and_report_streams(line: String) -> Vec<(u64, u64)> {
    println!("stdout from worker {}: {line}", std::process::id());
    eprintln!("stderr from worker {}: {line}", std::process::id());
    vec![stream_id(1), stream_id(2)]
}

#[remote]
async fn chatty(lines: u32) -> u32 {
    for i in 0..lines {
        println!("chatty line {i}");
        eprintln!("chatty error line {i}");
    }
    lines
}

each_start_method! {
    async fn worker_prints_to_the_parents_streams(method) {
        let streams = Worker::with_args(print_and_report_streams, ("hello".to_owned(),))
            .start_method(method)
            .await
            .unwrap();
        assert_eq!(
            streams,
            vec![stream_id(1), stream_id(2)],
            "the worker's stdout/stderr are not ours"
        );
    }
}

each_start_method! {
    async fn printing_does_not_disturb_the_channel(method) {
        assert_eq!(
            Worker::with_args(chatty, (200,)).start_method(method).await.unwrap(),
            200
        );
        let mut p = Process::with_args(chatty, (200,)).start_method(method);
        p.join().await.unwrap();
        assert_eq!(p.exitcode(), Some(0));
    }
}
