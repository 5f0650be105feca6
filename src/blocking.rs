//! Running the pool's futures from sync code.

use std::future::Future;

use tokio::runtime::{Handle, RuntimeFlavor};

use crate::{Error, runtime::Driver};

/// Drives `fut` to completion from sync code, with `driver`'s timers: the
/// pool's own runtime (or the application runtime hosting the session, with
/// `OwnerRuntime::Handle` or `Caller`), never the runtime the caller happens
/// to be in, which may lack a timer or shut down mid-call.
///
/// Outside any runtime this blocks the thread. Inside a multi-threaded
/// runtime it first moves the worker's other tasks elsewhere
/// (`block_in_place`), so nothing stalls. Inside a current-thread runtime
/// blocking would stall that runtime, possibly forever, so it refuses.
pub(crate) fn block_on<F: Future>(driver: &Driver, fut: F) -> Result<F::Output, Error> {
    match Handle::try_current() {
        Err(_) => Ok(driver.handle()?.block_on(fut)),
        Ok(current) if current.runtime_flavor() == RuntimeFlavor::MultiThread => {
            let handle = driver.handle()?;
            Ok(tokio::task::block_in_place(|| handle.block_on(fut)))
        }
        Ok(_) => Err(Error::BlockingNotAllowed {
            reason: "called from a current-thread tokio runtime, which blocking would stall; \
                     use the async method, or call from a multi-threaded runtime or a plain thread",
        }),
    }
}
