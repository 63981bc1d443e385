//! Reports what `AIOMP_START_METHOD` did at `init`: prints `method <name>`,
//! `servers-at-init <n>` (fork servers among its children after `init`,
//! before any runtime or pool; waiting up to 2 s for one), then `workers <pid> <pid>` and
//! `parents <ppid> <ppid>` of a pool of two built without naming a method.

use aiomp::{Pool, get_start_method};

#[aiomp::remote]
async fn parent() -> u32 {
    std::os::unix::process::parent_id()
}

fn main() -> aiomp::Result<()> {
    aiomp::init();
    // The server names itself once forked: give it a moment (it was forked in init).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    let servers = loop {
        let servers = aiomp_suite::forkservers_of(std::process::id()).len();
        if servers > 0 || std::time::Instant::now() > deadline {
            break servers;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    println!("method {}", get_start_method());
    println!("servers-at-init {servers}");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let pool = Pool::builder().processes(2).build().await?;
        let workers = pool.worker_pids();
        let mut parents = Vec::new();
        for _ in 0..8 {
            parents.push(pool.apply(parent, ()).await?);
        }
        parents.sort_unstable();
        parents.dedup();
        let line = |pids: &[u32]| pids.iter().map(u32::to_string).collect::<Vec<_>>().join(" ");
        println!("workers {}", line(&workers));
        println!("parents {}", line(&parents));
        pool.close();
        pool.join().await
    })
}
