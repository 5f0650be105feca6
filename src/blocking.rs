//! Running the pool's futures from sync code.

use std::future::Future;

use tokio::runtime::{Handle, RuntimeFlavor};

use crate::{Error, runtime::Driver};

/// Drives `fut` to completion from sync code.
///
/// Outside any runtime this blocks the thread, driving `fut` with `driver`'s
/// timers. Inside a multi-threaded runtime it first moves the worker's other
/// tasks elsewhere (`block_in_place`), so nothing stalls, and drives `fut`
/// with that runtime, which runs as long as its worker is in here. Inside a
/// current-thread runtime blocking would stall that runtime, possibly
/// forever, so it refuses.
pub(crate) fn block_on<F: Future>(driver: &Driver, fut: F) -> Result<F::Output, Error> {
    match Handle::try_current() {
        Err(_) => Ok(driver.handle()?.block_on(fut)),
        Ok(current) if current.runtime_flavor() == RuntimeFlavor::MultiThread => {
            Ok(tokio::task::block_in_place(|| current.block_on(fut)))
        }
        Ok(_) => Err(Error::BlockingNotAllowed {
            reason: "called from a current-thread tokio runtime, which blocking would stall; \
                     use the async method, or call from a multi-threaded runtime or a plain thread",
        }),
    }
}
