//! The child side (placeholder while the transport lands).

pub(crate) fn serve_if_child() {}
