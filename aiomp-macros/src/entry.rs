//! The expansion of `#[aiomp::main]` and `#[aiomp::test]`.
//!
//! ```text
//! // #[aiomp::main] async fn main() -> R { BODY }
//! fn main() -> R {
//!     ::aiomp::__private::enter_main(); // before any runtime or thread exists
//!     let body = async move { BODY };
//!     ::aiomp::__private::main_runtime(FLAVOR).block_on(body)
//! }
//!
//! // #[aiomp::test] async fn name() -> R { BODY }
//! #[::core::prelude::v1::test]
//! fn name() -> R {
//!     let body = async move { BODY };
//!     ::aiomp::__private::run_test(::core::module_path!(), "name", FLAVOR, body)
//! }
//! ```

use proc_macro2::{Ident, Span, TokenStream, TokenTree};
use quote::{ToTokens, quote};
use syn::ext::IdentExt;
use syn::{AttrStyle, ItemFn, ReturnType, Type};

use crate::error::Errors;
use crate::parse;
use crate::validate::{self, Flavor};

/// Which attribute is being expanded.
#[derive(Clone, Copy)]
pub(crate) enum EntryKind {
    Main,
    Test,
}

impl EntryKind {
    /// The attribute as a user writes it, for messages.
    pub(crate) fn macro_name(self) -> &'static str {
        match self {
            EntryKind::Main => "aiomp::main",
            EntryKind::Test => "aiomp::test",
        }
    }
}

/// `#[aiomp::main]`.
pub(crate) fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(EntryKind::Main, args, item)
}

/// `#[aiomp::test]`.
pub(crate) fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(EntryKind::Test, args, item)
}

/// The wrapper, plus a `compile_error!` per mistake.
///
/// Like tokio-macros, the function is wrapped even when the arguments are wrong
/// (with the default flavor), so that only the real errors show and the IDE
/// keeps working.
fn expand(kind: EntryKind, args: TokenStream, item: TokenStream) -> TokenStream {
    let func: ItemFn = match syn::parse2(item.clone()) {
        Ok(func) => func,
        Err(error) => {
            let mut errors = Errors::default();
            errors.push(error);
            return errors.emit_after(item);
        }
    };
    let mut errors = Errors::default();
    let args = parse::entry_args(args, kind.macro_name(), &mut errors);
    let flavor = validate::entry_flavor(&args, kind, &mut errors);
    validate::entry_fn(&func, kind, &mut errors);
    let krate = args
        .krate
        .as_ref()
        .map_or_else(|| quote!(::aiomp), ToTokens::to_token_stream);
    errors.emit_after(wrap(kind, func, &krate, flavor))
}

/// The synchronous function that runs the `async` body on a runtime.
fn wrap(kind: EntryKind, func: ItemFn, krate: &TokenStream, flavor: Flavor) -> TokenStream {
    let ItemFn {
        mut attrs,
        vis,
        mut sig,
        block,
    } = func;
    sig.asyncness = None;
    // A block cannot hold the body's inner attributes (`#![allow(...)]`): lift them onto the fn.
    for attr in &mut attrs {
        attr.style = AttrStyle::Outer;
    }

    let flavor = match flavor {
        Flavor::CurrentThread => quote!(#krate::__private::Flavor::CurrentThread),
        Flavor::MultiThread { worker_threads: None } => quote! {
            #krate::__private::Flavor::MultiThread {
                worker_threads: ::core::option::Option::None,
            }
        },
        Flavor::MultiThread {
            worker_threads: Some(n),
        } => quote! {
            #krate::__private::Flavor::MultiThread {
                worker_threads: ::core::option::Option::Some(#n),
            }
        },
    };

    let body = Ident::new("body", Span::mixed_site());
    // Checks the body's type against the declared return type, so that a
    // mismatch is reported there (tokio-macros does the same).
    let check = match &sig.output {
        ReturnType::Type(_, ty) if contains_unnameable(ty) => quote!(),
        ReturnType::Type(_, ty) => quote! {
            if false {
                let _: &dyn ::core::future::Future<Output = #ty> = &#body;
            }
        },
        ReturnType::Default => quote! {
            if false {
                let _: &dyn ::core::future::Future<Output = ()> = &#body;
            }
        },
    };

    match kind {
        EntryKind::Main => quote! {
            #(#attrs)*
            #vis #sig {
                #krate::__private::enter_main();
                let #body = async move #block;
                #check
                #krate::__private::main_runtime(#flavor).block_on(#body)
            }
        },
        EntryKind::Test => {
            let name = sig.ident.unraw().to_string();
            quote! {
                #(#attrs)*
                #[::core::prelude::v1::test]
                #vis #sig {
                    let #body = async move #block;
                    #check
                    #krate::__private::run_test(::core::module_path!(), #name, #flavor, #body)
                }
            }
        }
    }
}

/// `!` and `impl Trait` cannot be named in the `Output = ...` of the check.
fn contains_unnameable(ty: &Type) -> bool {
    fn has_impl(tokens: TokenStream) -> bool {
        tokens.into_iter().any(|token| match token {
            TokenTree::Ident(ident) => ident == "impl",
            TokenTree::Group(group) => has_impl(group.stream()),
            TokenTree::Punct(_) | TokenTree::Literal(_) => false,
        })
    }
    matches!(ty, Type::Never(_)) || has_impl(ty.to_token_stream())
}
