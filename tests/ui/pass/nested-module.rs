mod outer {
    pub(crate) mod inner {
        use serde::{Deserialize, Serialize};

        #[derive(Serialize, Deserialize)]
        pub(crate) struct Job {
            pub(crate) id: u32,
        }

        #[aiomp::remote]
        pub(crate) async fn run(job: Job) -> u32 {
            job.id
        }
    }

    #[aiomp::remote]
    pub(super) fn run(job: inner::Job) -> u32 {
        job.id + 1
    }
}

fn main() {
    let _future = outer::inner::run(outer::inner::Job { id: 1 });
    assert_eq!(outer::run(outer::inner::Job { id: 1 }), 2);
}
