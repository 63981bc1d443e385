use std::error::Error;

/// Docs and a `Result` return stay as written; `?` works in the body.
#[aiomp::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    #![allow(clippy::unused_async)]
    let n: u64 = "42".parse()?;
    assert_eq!(n, 42);
    assert_eq!(
        tokio::runtime::Handle::current().runtime_flavor(),
        tokio::runtime::RuntimeFlavor::CurrentThread
    );
    if n == 0 {
        return Err("zero".into());
    }
    Ok(())
}
