//! The start methods the per-method rows (W5, W7, recycling) loop over.

use aiomp::StartMethod;

/// The start methods aiomp offers, in the order the report shows them.
///
/// Adding one (`StartMethod::Forkserver`, `StartMethod::Fork`) is one line here:
/// every per-method row and the hidden subcommands pick it up.
pub const START_METHODS: &[StartMethod] = &[StartMethod::Spawn, StartMethod::Forkserver, StartMethod::Fork];

/// The start methods of Python's multiprocessing, for the Python peers' per-method rows.
pub const PYTHON_START_METHODS: &[&str] = &["spawn", "forkserver", "fork"];

/// A start method's lowercase name (`spawn`, `fork`, `forkserver`).
pub fn name(method: StartMethod) -> String {
    format!("{method:?}").to_lowercase()
}

/// The start method named `name` among [`START_METHODS`].
pub fn parse(name_given: &str) -> Option<StartMethod> {
    START_METHODS.iter().copied().find(|&m| name(m) == name_given)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for &method in START_METHODS {
            assert_eq!(parse(&name(method)), Some(method));
        }
        assert_eq!(name(StartMethod::Spawn), "spawn");
    }
}
