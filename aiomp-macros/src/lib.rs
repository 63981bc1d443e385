//! Implementation detail of `aiomp` (placeholder).
use proc_macro::TokenStream;
/// Placeholder.
#[proc_macro_attribute]
pub fn remote(_a: TokenStream, item: TokenStream) -> TokenStream { item }
/// Placeholder.
#[proc_macro_attribute]
pub fn main(_a: TokenStream, item: TokenStream) -> TokenStream { item }
/// Placeholder.
#[proc_macro_attribute]
pub fn test(_a: TokenStream, item: TokenStream) -> TokenStream { item }
