//! Collecting every error of one macro call (`Ctxt` in `serde_derive`).

use proc_macro2::TokenStream;
use quote::ToTokens;

/// The errors found so far; all of them are reported, not only the first.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    /// Adds an error (which may itself hold several).
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(errors) => errors.combine(error),
            None => self.0 = Some(error),
        }
    }

    /// Adds an error spanned on `tokens`.
    pub(crate) fn spanned(&mut self, tokens: impl ToTokens, message: impl std::fmt::Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    /// Whether any error was found.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// Appends a `compile_error!` per error to `tokens`, after the user's item
    /// (tokio-macros' `token_stream_with_error`): the rest of the crate and the
    /// IDE keep seeing the item.
    pub(crate) fn emit_after(self, mut tokens: TokenStream) -> TokenStream {
        if let Some(errors) = self.0 {
            tokens.extend(errors.into_compile_error());
        }
        tokens
    }

    /// The messages, in order (for unit tests).
    #[cfg(test)]
    pub(crate) fn messages(&self) -> Vec<String> {
        self.0
            .iter()
            .flat_map(|errors| errors.clone().into_iter().map(|e| e.to_string()))
            .collect()
    }
}
