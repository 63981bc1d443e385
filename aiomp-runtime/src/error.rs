//! Placeholder.
/// Placeholder.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Placeholder.
    #[error("remote function `{function}` is not registered: mark it `#[aiomp::remote]`")]
    NotRegistered {
        /// The function's type name.
        function: &'static str,
    },
    /// Placeholder.
    #[error("two remote functions share the ID `{id}`: give one `#[remote(id = \"...\")]`")]
    DuplicateFunction {
        /// The ID.
        id: String,
    },
}
