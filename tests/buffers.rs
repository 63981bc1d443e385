//! `aiomp::Buffer` crosses to real workers and back whole, at every size
//! around the thresholds where it stops being copied, alone or inside other
//! values, in chunks that a custom scheduler splits and reads, and in a
//! one-shot worker's call.

use std::sync::{Arc, Mutex};

use aiomp::{Buffer, Json, Pool, QueueId, Scheduler, TaskId, Worker, remote};
use serde::{Deserialize, Serialize};

mod common;
use common::each_start_method;

/// Sizes across the 16 KiB (written in place) and 64 KiB (shared on
/// receipt) thresholds, and a few MiB.
const SIZES: [usize; 8] = [
    0,
    1,
    16 * 1024 - 1,
    16 * 1024,
    64 * 1024 - 1,
    64 * 1024,
    1 << 20,
    (3 << 20) + 7,
];

/// `len` bytes that differ with `seed` and along the buffer.
fn pattern(len: usize, seed: u8) -> Buffer {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect::<Vec<u8>>()
        .into()
}

#[remote]
async fn reverse(data: Buffer) -> Buffer {
    let mut bytes = data.to_vec();
    bytes.reverse();
    bytes.into()
}

#[remote]
async fn echo(data: Buffer) -> Buffer {
    data
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Parcel {
    label: String,
    front: Buffer,
    back: Buffer,
}

/// A value with two buffers, and one inside JSON (copied as bytes there).
#[remote]
async fn swap(parcel: Parcel, note: Json<Buffer>) -> (Parcel, Json<Buffer>) {
    (
        Parcel {
            label: parcel.label.to_uppercase(),
            front: parcel.back,
            back: parcel.front,
        },
        note,
    )
}

each_start_method! {
    async fn buffers_of_every_size_cross_both_ways_whole(method) {
        let pool = Pool::builder().processes(2).start_method(method).build().await.unwrap();
        let inputs: Vec<Buffer> = SIZES.iter().zip(1..).map(|(&len, seed)| pattern(len, seed)).collect();
        let echoed: Vec<Buffer> = pool.map(echo, inputs.clone()).await.unwrap();
        assert!(echoed == inputs, "a buffer came back changed");
        let reversed: Vec<Buffer> = pool.map(reverse, inputs.clone()).await.unwrap();
        for (input, output) in inputs.iter().zip(&reversed) {
            let mut expected = input.to_vec();
            expected.reverse();
            assert!(output[..] == expected[..], "{} bytes came back wrong", input.len());
        }
        let big = pattern(1 << 20, 9);
        assert!(pool.apply(echo, (big.clone(),)).await.unwrap() == big);
        pool.close();
        pool.join().await.unwrap();
    }
}

each_start_method! {
    async fn buffers_inside_other_values_and_json_cross_whole(method) {
        let pool = Pool::builder().processes(1).start_method(method).build().await.unwrap();
        let parcel = Parcel {
            label: "box".into(),
            front: pattern(200_000, 1),
            back: pattern(20_000, 2),
        };
        let note = Json(pattern(70_000, 3));
        let (swapped, back) = pool.apply(swap, (parcel.clone(), note.clone())).await.unwrap();
        assert_eq!(swapped.label, "BOX");
        assert!((swapped.front, swapped.back) == (parcel.back, parcel.front), "the parcel's buffers came back wrong");
        assert!(back.into_inner() == note.into_inner(), "the JSON buffer came back wrong");
        pool.close();
        pool.join().await.unwrap();
    }
}

each_start_method! {
    async fn a_one_shot_worker_carries_a_large_buffer_both_ways(method) {
        let data = pattern(2 << 20, 5);
        let back = Worker::with_args(echo, (data.clone(),)).start_method(method).await.unwrap();
        assert!(back == data, "the buffer came back changed");
    }
}

/// Sends calls to two queues in turn, and keeps every call's arguments as
/// it was given them.
struct Alternate {
    queues: Vec<QueueId>,
    next: usize,
    seen: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Scheduler for Alternate {
    fn register_queue(&mut self) -> QueueId {
        let queue = QueueId::from(self.queues.len());
        self.queues.push(queue);
        queue
    }

    fn register_process(&mut self, _queue: QueueId) {}

    fn schedule_task(&mut self, _task: TaskId, _function: &str, args: &[u8]) -> QueueId {
        self.seen.lock().unwrap().push(args.to_vec());
        self.next += 1;
        self.queues[self.next % self.queues.len()]
    }

    fn complete_task(&mut self, _task: TaskId) {}
}

#[aiomp::test]
async fn a_custom_scheduler_reads_whole_arguments_and_split_chunks_arrive_whole() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let pool = Pool::builder()
        .processes(2)
        .queue_count(2)
        .scheduler(Alternate {
            queues: Vec::new(),
            next: 0,
            seen: Arc::clone(&seen),
        })
        .build()
        .await
        .unwrap();
    // Small and large buffers mixed: chunks hold several calls, and the
    // scheduler splits each chunk into runs for the two queues.
    let inputs: Vec<Buffer> = (0..12)
        .map(|i| pattern(if i % 3 == 0 { 100_000 } else { 10 }, i as u8))
        .collect();
    let echoed: Vec<Buffer> = pool.map(echo, inputs.clone()).await.unwrap();
    assert!(echoed == inputs, "a buffer came back changed");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), inputs.len());
    for (i, (args, input)) in seen.iter().zip(&inputs).enumerate() {
        let (decoded,): (Buffer,) = postcard::from_bytes(args).expect("the scheduler saw whole arguments");
        assert!(
            &decoded == input,
            "call {i}: the scheduler saw {} bytes, not the {} sent",
            decoded.len(),
            input.len()
        );
    }
    pool.close();
    pool.join().await.unwrap();
}
