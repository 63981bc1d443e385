//! A one-shot worker's call crosses with its greeting when its arguments are
//! small, and with the handshake when they are large: both arrive whole,
//! under every start method, and a worker that finishes before the parent
//! reads a word from it still has its answer read.

use std::time::{Duration, Instant};

use aiomp::{Process, Worker, remote};

mod common;
use common::each_start_method;

#[remote]
async fn sum_and_len(values: Vec<u64>) -> (u64, usize) {
    (values.iter().sum(), values.len())
}

/// Whether `pid` has exited (a zombie has: nothing ran to reap it yet).
fn exited(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
        stat.rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z'))
    })
}

/// Argument lists from a few bytes to about 1 MB encoded, across the
/// greeting's 64 KiB limit.
const LENGTHS: [usize; 4] = [0, 3, 40_000, 500_000];

each_start_method! {
    async fn arguments_of_every_size_arrive_whole(method) {
        for len in LENGTHS {
            let values: Vec<u64> = (0..len as u64).collect();
            let expected = (values.iter().sum::<u64>(), len);
            let got = Worker::with_args(sum_and_len, (values,)).start_method(method).await.unwrap();
            assert_eq!(got, expected, "{len} values");
        }
    }
}

each_start_method! {
    async fn a_worker_done_before_it_is_joined_still_answers(method) {
        let mut worker = Worker::with_args(sum_and_len, (vec![1, 2, 3],)).start_method(method);
        worker.start().unwrap();
        let pid = worker.pid().unwrap();
        // The whole call is in its channel: it runs and exits while this
        // thread, and with it the test's runtime, is blocked.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !exited(pid) {
            assert!(Instant::now() < deadline, "the worker did not finish on its own");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(worker.join().await.unwrap(), (6, 3));
        let mut process = Process::with_args(sum_and_len, (vec![4],)).start_method(method);
        process.start().unwrap();
        process.join().await.unwrap();
        assert_eq!(process.exitcode(), Some(0));
    }
}
