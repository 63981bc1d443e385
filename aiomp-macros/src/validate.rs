//! Checking a function before expanding it: the shape `#[remote]` can
//! register, and the shape `#[aiomp::main]` / `#[aiomp::test]` can wrap.
//!
//! Every check reports on the offending token and keeps going, so that one
//! build shows every mistake.

use quote::ToTokens;
use syn::{
    Attribute, FnArg, GenericArgument, GenericParam, ItemFn, Lifetime, Meta, PathArguments, ReturnType, Signature,
    Type, TypeReference,
};

use crate::entry::EntryKind;
use crate::error::Errors;
use crate::parse::{EntryArgs, FlavorName};

/// Checks that `#[remote]` can register a function with this signature.
///
/// Whether each type is serializable is left to rustc: the expansion asserts it
/// on each type (see `expand`), and the error lands on the type.
pub(crate) fn remote_fn(sig: &Signature, errors: &mut Errors) {
    if let Some(unsafety) = &sig.unsafety {
        errors.spanned(
            unsafety,
            "remote functions cannot be `unsafe`; make the function safe and put the `unsafe` block inside it",
        );
    }
    if let Some(abi) = &sig.abi {
        errors.spanned(
            abi,
            "remote functions cannot have an `extern` ABI; remove it, or call the `extern` function from a plain #[remote] fn",
        );
    }
    if let Some(variadic) = &sig.variadic {
        errors.spanned(variadic, "remote functions cannot be variadic; take a `Vec<T>` instead");
    }
    for param in &sig.generics.params {
        let message = match param {
            GenericParam::Type(param) => format!(
                "remote functions cannot be generic; write a #[remote] fn for each concrete type instead of `{}`",
                param.ident
            ),
            GenericParam::Lifetime(param) => format!(
                "remote functions cannot be generic; remove the lifetime `{}` and take owned arguments",
                param.lifetime
            ),
            GenericParam::Const(param) => format!(
                "remote functions cannot be generic; pass `{}` as an ordinary argument",
                param.ident
            ),
        };
        errors.spanned(param, message);
    }
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(receiver) => errors.spanned(
                receiver,
                "remote functions must be free functions, not methods; move it out of the `impl` and take the value as an owned argument instead of `self`",
            ),
            FnArg::Typed(arg) => check_type(&arg.ty, Position::Argument, errors),
        }
    }
    if let ReturnType::Type(_, ty) = &sig.output {
        check_type(ty, Position::Return, errors);
    }
}

/// Where a type appears in a remote function's signature.
#[derive(Clone, Copy)]
enum Position {
    Argument,
    Return,
}

impl Position {
    /// The rule a borrowed type breaks here.
    fn owned_rule(self) -> &'static str {
        match self {
            Position::Argument => "remote functions take owned arguments",
            Position::Return => "remote functions return owned values",
        }
    }
}

/// Reports borrowed and `impl Trait` types, which cannot cross the process
/// boundary, anywhere in `ty`.
///
/// Other unsuitable types (trait objects, fn pointers, types without serde
/// impls) are left to the compile-time serde check in the expansion.
fn check_type(ty: &Type, position: Position, errors: &mut Errors) {
    match ty {
        Type::Reference(reference) => {
            let fix = owned_fix(reference);
            errors.spanned(reference, format!("{}; {fix}", position.owned_rule()));
        }
        Type::ImplTrait(impl_trait) => {
            let message = match position {
                Position::Argument => {
                    "remote functions cannot take `impl Trait` arguments; name a concrete serializable type"
                }
                Position::Return => "remote functions cannot return `impl Trait`; name a concrete serializable type",
            };
            errors.spanned(impl_trait, message);
        }
        Type::Array(array) => check_type(&array.elem, position, errors),
        Type::Slice(slice) => check_type(&slice.elem, position, errors),
        Type::Paren(paren) => check_type(&paren.elem, position, errors),
        Type::Group(group) => check_type(&group.elem, position, errors),
        Type::Tuple(tuple) => {
            for elem in &tuple.elems {
                check_type(elem, position, errors);
            }
        }
        Type::Path(path) => {
            if let Some(qself) = &path.qself {
                check_type(&qself.ty, position, errors);
            }
            for segment in &path.path.segments {
                let PathArguments::AngleBracketed(args) = &segment.arguments else {
                    continue;
                };
                for arg in &args.args {
                    match arg {
                        GenericArgument::Lifetime(lifetime) => {
                            check_lifetime(lifetime, position, errors);
                        }
                        GenericArgument::Type(ty) => check_type(ty, position, errors),
                        GenericArgument::AssocType(assoc) => {
                            check_type(&assoc.ty, position, errors);
                        }
                        _ => {}
                    }
                }
            }
        }
        _ => {}
    }
}

/// Reports a borrowed lifetime such as `Cow<'_, str>`; `'static` is owned.
fn check_lifetime(lifetime: &Lifetime, position: Position, errors: &mut Errors) {
    if lifetime.ident != "static" {
        errors.spanned(
            lifetime,
            format!(
                "{}; use `'static` or an owned type instead of the lifetime `{lifetime}`",
                position.owned_rule()
            ),
        );
    }
}

/// What to write instead of a reference: `String` for `&str`, `Vec<T>` for
/// `&[T]`, `T` for `&T`.
fn owned_fix(reference: &TypeReference) -> String {
    let mut elem = &*reference.elem;
    while let Type::Paren(syn::TypeParen { elem: inner, .. }) | Type::Group(syn::TypeGroup { elem: inner, .. }) = elem {
        elem = inner;
    }
    let owned = match elem {
        Type::Slice(slice) => format!("Vec<{}>", pretty(&slice.elem)),
        Type::Path(path) if path.qself.is_none() => {
            let unsized_owner = path.path.segments.last().and_then(|last| {
                if !last.arguments.is_none() {
                    return None;
                }
                match last.ident.to_string().as_str() {
                    "str" => Some("String"),
                    "Path" => Some("PathBuf"),
                    "OsStr" => Some("OsString"),
                    "CStr" => Some("CString"),
                    _ => None,
                }
            });
            unsized_owner.map_or_else(|| pretty(elem), str::to_owned)
        }
        _ => pretty(elem),
    };
    let borrowed = pretty(reference);
    if reference.mutability.is_some() {
        format!("take `{owned}` instead of `{borrowed}`, and return it if the function changes it")
    } else {
        format!("use `{owned}` instead of `{borrowed}`")
    }
}

/// Tokens as a person writes them: `Vec<u8>`, not `Vec < u8 >`.
///
/// Also used for the signature string of the registry fingerprint, which only
/// needs to be the same for the same source within one build.
pub(crate) fn pretty(tokens: &impl ToTokens) -> String {
    let mut text = tokens.to_token_stream().to_string();
    for (spaced, tight) in [
        (" <", "<"),
        ("< ", "<"),
        (" >", ">"),
        (" ::", "::"),
        (":: ", "::"),
        (" ,", ","),
        (" ;", ";"),
        ("& ", "&"),
        ("( ", "("),
        (" )", ")"),
        ("[ ", "["),
        (" ]", "]"),
    ] {
        text = text.replace(spaced, tight);
    }
    text
}

/// The runtime flavor after defaults: what the expansion passes to the runtime.
#[derive(Clone, Copy)]
pub(crate) enum Flavor {
    CurrentThread,
    MultiThread { worker_threads: Option<usize> },
}

/// Checks that `#[aiomp::main]` / `#[aiomp::test]` can wrap this function.
///
/// The function is still expanded when a check fails (tokio-macros does the
/// same), so that only these errors show, not follow-up ones.
pub(crate) fn entry_fn(func: &ItemFn, kind: EntryKind, errors: &mut Errors) {
    let sig = &func.sig;
    let macro_name = kind.macro_name();
    if sig.asyncness.is_none() {
        errors.spanned(
            sig.fn_token,
            format!("#[{macro_name}] runs an `async fn`; add `async` before `fn`"),
        );
    }
    match kind {
        EntryKind::Main => {
            if sig.ident != "main" {
                errors.spanned(
                    &sig.ident,
                    "#[aiomp::main] goes on `async fn main`; elsewhere, call `aiomp::init()` first thing in `main` and build the runtime by hand",
                );
            }
            if !sig.inputs.is_empty() {
                errors.spanned(
                    &sig.inputs,
                    "the main function cannot take arguments; read them with `std::env::args()`",
                );
            }
        }
        EntryKind::Test => {
            if let Some(attr) = func.attrs.iter().find(|attr| is_test_attribute(attr)) {
                errors.spanned(
                    attr,
                    "#[aiomp::test] adds the #[test] attribute itself; remove this one",
                );
            }
        }
    }
}

/// Resolves the runtime flavor, with tokio's defaults: `multi_thread` for
/// `main`, `current_thread` for tests.
pub(crate) fn entry_flavor(args: &EntryArgs, kind: EntryKind, errors: &mut Errors) -> Flavor {
    let default = match kind {
        EntryKind::Main => FlavorName::MultiThread,
        EntryKind::Test => FlavorName::CurrentThread,
    };
    let flavor = args.flavor.unwrap_or(default);
    match (flavor, args.worker_threads) {
        (FlavorName::CurrentThread, Some((_, span))) => {
            errors.push(syn::Error::new(
                span,
                format!(
                    "`worker_threads` needs the multi-threaded runtime; write `#[{}(flavor = \"multi_thread\", worker_threads = N)]`",
                    kind.macro_name()
                ),
            ));
            Flavor::CurrentThread
        }
        (FlavorName::CurrentThread, None) => Flavor::CurrentThread,
        (FlavorName::MultiThread, threads) => Flavor::MultiThread {
            worker_threads: threads.map(|(n, _)| n),
        },
    }
}

/// `#[test]`, `#[core::prelude::*::test]` or `#[std::prelude::*::test]`.
fn is_test_attribute(attr: &Attribute) -> bool {
    let Meta::Path(path) = &attr.meta else {
        return false;
    };
    let names: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    match names.as_slice() {
        [test] => path.leading_colon.is_none() && test == "test",
        [root, prelude, _, test] => (root == "core" || root == "std") && prelude == "prelude" && test == "test",
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use syn::parse_quote;

    use super::*;

    fn remote_errors(sig: &Signature) -> Vec<String> {
        let mut errors = Errors::default();
        remote_fn(sig, &mut errors);
        errors.messages()
    }

    #[test]
    fn variadic_is_rejected_with_its_abi_and_unsafety() {
        let messages = remote_errors(&parse_quote! {
            unsafe extern "C" fn sum(count: usize, rest: ...) -> usize
        });
        assert_eq!(messages.len(), 3, "{messages:?}");
        assert!(messages[2].starts_with("remote functions cannot be variadic"));
    }

    #[test]
    fn owned_signature_passes() {
        let messages = remote_errors(&parse_quote! {
            async fn run(a: u64, b: Vec<String>, c: Cow<'static, str>) -> Result<(), String>
        });
        assert!(messages.is_empty(), "{messages:?}");
    }

    #[test]
    fn references_suggest_the_owned_type() {
        let messages = remote_errors(&parse_quote! {
            fn f(a: &str, b: &[u8], c: &(str), d: &mut Point, e: &std::ffi::OsStr) -> &'static Path
        });
        let fixes: Vec<&str> = messages.iter().map(|m| m.split("; ").nth(1).unwrap()).collect();
        assert_eq!(
            fixes,
            [
                "use `String` instead of `&str`",
                "use `Vec<u8>` instead of `&[u8]`",
                "use `String` instead of `&(str)`",
                "take `Point` instead of `&mut Point`, and return it if the function changes it",
                "use `OsString` instead of `&std::ffi::OsStr`",
                "use `PathBuf` instead of `&'static Path`",
            ]
        );
    }

    #[test]
    fn pretty_prints_types_as_written() {
        let ty: Type = parse_quote!(::std::collections::HashMap<String, Vec<(u8, [u16; 4])>>);
        assert_eq!(pretty(&ty), "::std::collections::HashMap<String, Vec<(u8, [u16; 4])>>");
        let ty: Type = parse_quote!(Option<&'static mut [u8]>);
        assert_eq!(pretty(&ty), "Option<&'static mut [u8]>");
    }
}
