//! One module per subcommand; `main` parses and dispatches to them.

pub(crate) mod audit;
pub(crate) mod check;
mod check_source;
pub(crate) mod demo;
pub(crate) mod manpage;
pub(crate) mod normalize;
pub(crate) mod plan;
pub(crate) mod restore;
pub(crate) mod runs;
pub(crate) mod sync;
