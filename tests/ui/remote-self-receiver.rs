use aiomp::remote;

struct Counter(u64);

impl Counter {
    #[remote]
    fn get(&self) -> u64 {
        self.0
    }

    #[remote]
    async fn into_inner(self) -> u64 {
        self.0
    }
}

fn main() {}
