mod local {
    #[aiomp::main(flavor = "local")]
    async fn main() {}
}

mod shorthand {
    #[aiomp::main(current_thread)]
    async fn main() {}
}

mod zero_threads {
    #[aiomp::main(worker_threads = 0)]
    async fn main() {}
}

mod threads_on_current_thread {
    #[aiomp::main(flavor = "current_thread", worker_threads = 2)]
    async fn main() {}
}

mod duplicate {
    #[aiomp::main(flavor = "multi_thread", flavor = "current_thread")]
    async fn main() {}
}

fn main() {}
