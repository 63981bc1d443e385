//! Reading the attribute arguments: `#[remote(id = "…", crate = "…")]` and
//! `#[aiomp::main(flavor = "…", worker_threads = N, crate = "…")]`.
//!
//! Every argument is read even after a bad one, so that all mistakes are
//! reported at once, each on its own token.

use proc_macro2::{Span, TokenStream, TokenTree};
use syn::meta::ParseNestedMeta;
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{Expr, Lit, LitInt, LitStr, Path, Token};

use crate::error::Errors;

/// The arguments of `#[remote]`.
#[derive(Default)]
pub(crate) struct RemoteArgs {
    /// `id = "…"`: the ID to register under instead of `module_path::name`.
    pub(crate) id: Option<LitStr>,
    /// `crate = "…"`: the path of the `aiomp` crate.
    pub(crate) krate: Option<Path>,
}

/// Reads `#[remote(...)]`'s arguments; what cannot be read goes to `errors`.
pub(crate) fn remote_args(args: TokenStream, errors: &mut Errors) -> RemoteArgs {
    let mut parsed = RemoteArgs::default();
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("id") {
            let example = "`id = \"my_crate::double\"`";
            if let Some(lit) = string_value(&meta, "id", example, errors)? {
                if lit.value().is_empty() {
                    errors.spanned(&lit, format!("`id` must not be empty; write {example}"));
                } else {
                    set_once(&mut parsed.id, lit, &meta, errors);
                }
            }
        } else if meta.path.is_ident("crate") {
            if let Some(path) = crate_value(&meta, errors)? {
                set_once(&mut parsed.krate, path, &meta, errors);
            }
        } else {
            unknown(&meta, "`id = \"...\"` or `crate = \"...\"`", errors)?;
        }
        Ok(())
    });
    if let Err(error) = parser.parse2(args) {
        errors.push(error);
    }
    parsed
}

/// A runtime flavor as written in `flavor = "…"`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum FlavorName {
    /// `"current_thread"`.
    CurrentThread,
    /// `"multi_thread"`.
    MultiThread,
}

/// The arguments of `#[aiomp::main]` and `#[aiomp::test]`, as written.
#[derive(Default)]
pub(crate) struct EntryArgs {
    /// `flavor = "…"`.
    pub(crate) flavor: Option<FlavorName>,
    /// `worker_threads = N`, with the span of the name `worker_threads`.
    pub(crate) worker_threads: Option<(usize, Span)>,
    /// `crate = "…"`: the path of the `aiomp` crate.
    pub(crate) krate: Option<Path>,
}

/// Reads the arguments of `#[aiomp::main]` or `#[aiomp::test]` (`macro_name`
/// is how the messages name the attribute).
pub(crate) fn entry_args(args: TokenStream, macro_name: &str, errors: &mut Errors) -> EntryArgs {
    let mut parsed = EntryArgs::default();
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("flavor") {
            let example = "`flavor = \"current_thread\"` or `flavor = \"multi_thread\"`";
            if let Some(lit) = string_value(&meta, "flavor", example, errors)? {
                let flavor = match lit.value().as_str() {
                    "current_thread" => Some(FlavorName::CurrentThread),
                    "multi_thread" => Some(FlavorName::MultiThread),
                    other => {
                        errors.spanned(&lit, format!("unknown runtime flavor `{other}`; write {example}"));
                        None
                    }
                };
                if let Some(flavor) = flavor {
                    set_once(&mut parsed.flavor, flavor, &meta, errors);
                }
            }
        } else if meta.path.is_ident("worker_threads") {
            if let Some(threads) = threads_value(&meta, errors)? {
                let name = meta.path.span();
                set_once(&mut parsed.worker_threads, (threads, name), &meta, errors);
            }
        } else if meta.path.is_ident("crate") {
            if let Some(path) = crate_value(&meta, errors)? {
                set_once(&mut parsed.krate, path, &meta, errors);
            }
        } else if meta.path.is_ident("multi_thread") || meta.path.is_ident("current_thread") {
            let name = meta.path.get_ident().map(ToString::to_string).unwrap_or_default();
            skip_value(&meta)?;
            errors.spanned(
                &meta.path,
                format!("set the runtime flavor with `#[{macro_name}(flavor = \"{name}\")]`"),
            );
        } else {
            unknown(
                &meta,
                "`flavor = \"...\"`, `worker_threads = N` or `crate = \"...\"`",
                errors,
            )?;
        }
        Ok(())
    });
    if let Err(error) = parser.parse2(args) {
        errors.push(error);
    }
    parsed
}

/// Stores an argument's value, or reports that it was given twice.
fn set_once<T>(slot: &mut Option<T>, value: T, meta: &ParseNestedMeta<'_>, errors: &mut Errors) {
    if slot.is_some() {
        errors.spanned(
            &meta.path,
            format!("duplicate `{}` argument; give it once", path_name(&meta.path)),
        );
    } else {
        *slot = Some(value);
    }
}

/// Reports an argument the attribute does not take, and skips its value.
fn unknown(meta: &ParseNestedMeta<'_>, expected: &str, errors: &mut Errors) -> syn::Result<()> {
    skip_value(meta)?;
    errors.spanned(
        &meta.path,
        format!("unknown argument `{}`; expected {expected}", path_name(&meta.path)),
    );
    Ok(())
}

/// The value after `name =`, or `None` (with the error reported) when there is
/// none; a `name(...)` list is skipped.
fn value(meta: &ParseNestedMeta<'_>, example: &str, errors: &mut Errors) -> syn::Result<Option<Expr>> {
    if meta.input.peek(Token![=]) {
        let mut expr: Expr = meta.value()?.parse()?;
        // Tokens passed through a `macro_rules!` fragment arrive wrapped in a group.
        while let Expr::Group(group) = expr {
            expr = *group.expr;
        }
        return Ok(Some(expr));
    }
    skip_value(meta)?;
    errors.spanned(
        &meta.path,
        format!("`{}` needs a value; write {example}", path_name(&meta.path)),
    );
    Ok(None)
}

/// Skips a `(...)` list after an argument's name, if there is one.
fn skip_value(meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(Token![=]) {
        meta.value()?.parse::<Expr>()?;
    } else if !meta.input.is_empty() && !meta.input.peek(Token![,]) {
        meta.input.parse::<TokenTree>()?;
    }
    Ok(())
}

/// A string literal value (`name = "..."`).
fn string_value(
    meta: &ParseNestedMeta<'_>,
    name: &str,
    example: &str,
    errors: &mut Errors,
) -> syn::Result<Option<LitStr>> {
    Ok(match value(meta, example, errors)? {
        Some(Expr::Lit(syn::ExprLit { lit: Lit::Str(lit), .. })) => Some(lit),
        Some(other) => {
            errors.spanned(other, format!("`{name}` must be a string literal; write {example}"));
            None
        }
        None => None,
    })
}

/// `crate = "path::to::aiomp"`.
fn crate_value(meta: &ParseNestedMeta<'_>, errors: &mut Errors) -> syn::Result<Option<Path>> {
    let example = "`crate = \"renamed_aiomp\"`";
    let Some(lit) = string_value(meta, "crate", example, errors)? else {
        return Ok(None);
    };
    if let Ok(path) = lit.parse::<Path>() {
        Ok(Some(path))
    } else {
        errors.spanned(
            &lit,
            format!("`crate` must be the path of the `aiomp` crate, as named in Cargo.toml; write {example}"),
        );
        Ok(None)
    }
}

/// `worker_threads = N`, with `N > 0`.
fn threads_value(meta: &ParseNestedMeta<'_>, errors: &mut Errors) -> syn::Result<Option<usize>> {
    let example = "`worker_threads = 4`";
    let lit: LitInt = match value(meta, example, errors)? {
        Some(Expr::Lit(syn::ExprLit { lit: Lit::Int(lit), .. })) => lit,
        Some(other) => {
            errors.spanned(
                other,
                format!("`worker_threads` must be an integer literal; write {example}"),
            );
            return Ok(None);
        }
        None => return Ok(None),
    };
    match lit.base10_parse::<usize>() {
        Ok(0) => errors.spanned(&lit, "`worker_threads` must be at least 1"),
        Ok(n) => return Ok(Some(n)),
        Err(e) => errors.spanned(&lit, format!("`worker_threads` must be a positive integer: {e}")),
    }
    Ok(None)
}

/// An argument's name as written, for messages.
fn path_name(path: &Path) -> String {
    let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    segments.join("::")
}
