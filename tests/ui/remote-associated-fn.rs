use aiomp::remote;

struct Math;

// An attribute macro cannot see that it sits in an `impl` block, so this gets
// rustc's errors about the registration rather than one from #[remote]. If this
// output changes, check that it still fails on the `#[remote]` line.
impl Math {
    #[remote]
    fn double(x: u64) -> u64 {
        x * 2
    }
}

fn main() {}
