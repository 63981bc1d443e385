//! The expansion of `#[remote]`: the function exactly as written, then its
//! registration in the runtime's `inventory` table.
//!
//! ```text
//! async fn add(a: u64, b: u64) -> u64 { a + b }
//!
//! #[doc(hidden)]
//! const _: () = {
//!     const _: () = ::aiomp::__private::assert_argument::<u64>(); // spanned on each type,
//!     const _: () = ::aiomp::__private::assert_output::<u64>();   // so errors land there
//!     ::aiomp::__private::inventory::submit! {
//!         ::aiomp::__private::Registration::new(
//!             ::core::concat!(::core::module_path!(), "::", "add"),
//!             "(u64, u64) -> u64",
//!             || ::aiomp::__private::type_id_of(&add),
//!             |args: &[u8], cx: &mut ::aiomp::__private::Context<'_>, out: &mut ::aiomp::__private::Bytes| {
//!                 ::aiomp::__private::invoke_async(args, cx, out, |(arg0, arg1,): (u64, u64,)| add(arg0, arg1))
//!             },
//!         )
//!     }
//! };
//! ```

use proc_macro2::{Group, Ident, Span, TokenStream, TokenTree};
use quote::{ToTokens, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{FnArg, Item, ItemFn, ReturnType, Type};

use crate::error::Errors;
use crate::parse::{self, RemoteArgs};
use crate::validate::{self, pretty};

/// `#[remote]`: `item` unchanged, then its registration; or `item` unchanged
/// and the errors.
///
/// The one addition to the item is `#[allow(clippy::needless_pass_by_value)]`:
/// a remote function must take owned arguments, so that lint is always wrong
/// about it.
pub(crate) fn remote(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let args = parse::remote_args(args, &mut errors);
    let func = match syn::parse2::<Item>(item.clone()) {
        Ok(Item::Fn(func)) => Some(func),
        Ok(other) => {
            errors.spanned(
                other,
                "#[remote] applies to functions; put it on a free `async fn` or `fn`",
            );
            None
        }
        Err(error) => {
            errors.push(error);
            None
        }
    };
    if let Some(func) = &func {
        validate::remote_fn(&func.sig, &mut errors);
    }
    match func {
        Some(func) if errors.is_empty() => {
            let registration = registration(&func, &args);
            quote! {
                #[allow(clippy::needless_pass_by_value)]
                #item
                #registration
            }
        }
        _ => errors.emit_after(item),
    }
}

/// The `const _` block that checks the types and submits the registration.
fn registration(func: &ItemFn, args: &RemoteArgs) -> TokenStream {
    let sig = &func.sig;
    let name = &sig.ident;
    let krate = args
        .krate
        .as_ref()
        .map_or_else(|| quote!(::aiomp), ToTokens::to_token_stream);
    // `krate::__private` spanned like the user's token it checks, so that an
    // error in the expression it starts lands on that token alone.
    let private = |span: Span| respan(quote!(#krate::__private), span);

    let arg_types: Vec<&Type> = sig
        .inputs
        .iter()
        .filter_map(|input| match input {
            FnArg::Typed(arg) => Some(&*arg.ty),
            FnArg::Receiver(_) => None,
        })
        .collect();
    let output = match &sig.output {
        ReturnType::Type(_, ty) => ty.to_token_stream(),
        ReturnType::Default => quote_spanned!(name.span()=> ()),
    };

    let id = if let Some(id) = &args.id {
        id.to_token_stream()
    } else {
        let name = name.unraw().to_string();
        quote!(::core::concat!(::core::module_path!(), "::", #name))
    };
    let signature = format!(
        "({}) -> {}",
        arg_types.iter().map(pretty).collect::<Vec<_>>().join(", "),
        pretty(&output),
    );

    let assert_arguments = arg_types.iter().map(|ty| {
        let span = ty.span();
        let private = private(span);
        quote_spanned!(span=> const _: () = #private::assert_argument::<#ty>();)
    });
    let assert_output = {
        let span = output.span();
        let private = private(span);
        quote_spanned!(span=> const _: () = #private::assert_output::<#output>();)
    };

    // Generated bindings are hygienic: they cannot clash with the function's name.
    let bindings: Vec<Ident> = (0..arg_types.len())
        .map(|i| Ident::new(&format!("arg{i}"), Span::mixed_site()))
        .collect();
    let bytes = Ident::new("args", Span::mixed_site());
    let cx = Ident::new("cx", Span::mixed_site());
    let out = Ident::new("out", Span::mixed_site());
    let invoke = if sig.asyncness.is_some() {
        quote!(invoke_async)
    } else {
        quote!(invoke_blocking)
    };
    let private = private(Span::call_site());
    // rustc reports an error in this call (a future that is not `Send`) on `#[remote]`.
    let call = quote! {
        #private::#invoke(
            #bytes,
            #cx,
            #out,
            |(#(#bindings,)*): (#(#arg_types,)*)| #name(#(#bindings),*),
        )
    };
    // The registration exists exactly when the function does.
    let cfgs = func.attrs.iter().filter(|attr| attr.path().is_ident("cfg"));

    quote! {
        #(#cfgs)*
        #[doc(hidden)]
        #[allow(deprecated)]
        const _: () = {
            #(#assert_arguments)*
            #assert_output
            #private::inventory::submit! {
                #private::Registration::new(
                    #id,
                    #signature,
                    || #private::type_id_of(&#name),
                    |#bytes: &[u8], #cx: &mut #private::Context<'_>, #out: &mut #private::Bytes| #call,
                )
            }
        };
    }
}

/// `tokens` with every span, delimiters included, set to `span`.
fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut token| {
            if let TokenTree::Group(group) = &token {
                let mut respanned = Group::new(group.delimiter(), respan(group.stream(), span));
                respanned.set_span(span);
                token = respanned.into();
            } else {
                token.set_span(span);
            }
            token
        })
        .collect()
}
