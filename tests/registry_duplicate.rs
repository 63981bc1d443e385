//! Two remote functions with one ID: every use reports the ID by name.

use aiomp::{Error, Pool, Worker};

mod first {
    #[aiomp::remote(id = "shared-id")]
    pub(crate) async fn one() -> u8 {
        1
    }
}

mod second {
    #[aiomp::remote(id = "shared-id")]
    pub(crate) async fn two() -> u8 {
        2
    }
}

#[aiomp::test]
async fn duplicate_ids_are_reported_by_name() {
    let error = Worker::new(first::one).await.unwrap_err();
    assert!(
        matches!(&error, Error::DuplicateFunction { id } if id == "shared-id"),
        "{error:?}"
    );
    assert!(error.to_string().contains("`shared-id`"), "{error}");
    assert_eq!(first::one().await + second::two().await, 3, "still callable locally");
}

#[aiomp::test]
async fn a_pool_cannot_start_either() {
    let error = Pool::builder().processes(1).build().await.unwrap_err();
    assert!(
        matches!(&error, Error::DuplicateFunction { id } if id == "shared-id"),
        "{error:?}"
    );
}
