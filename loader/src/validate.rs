//! Stage 2 (validate): the interface read while the bytes streamed in, checked against the
//! app's options and — for a swap — against the running version, before any of its code runs.

use std::rc::Rc;

use hotswap_inspect::{AppImports, Export, Policy};

use crate::error::LoaderError;
use crate::fetch::Fetched;
use crate::options::LoadOptions;
use crate::version::CompiledVersion;

/// A fetched module the app's options allow, ready to instantiate.
pub(crate) fn validate(fetched: Fetched, options: &LoadOptions) -> Result<CompiledVersion, LoaderError> {
    let offered = options.app_imports.names();
    let policy = Policy {
        app_functions: AppImports::Only(&offered),
        required_exports: &options.required_exports,
        max_memory_pages: options.limits.max_memory_pages,
    };
    fetched.interface.check(&policy)?;
    Ok(CompiledVersion { module: fetched.module, interface: Rc::new(fetched.interface), digest: fetched.digest })
}

/// May `incoming` replace `running` in a slot whose callers hold `held`? The schema the
/// state travels in.
pub(crate) fn check_replacement(
    running: &CompiledVersion,
    incoming: &CompiledVersion,
    held: &[Export],
) -> Result<u32, LoaderError> {
    Ok(hotswap_inspect::check_replacement(&running.interface.metadata, &incoming.interface, held)?)
}
