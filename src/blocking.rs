//! Running the pool's futures from sync code.

use std::future::Future;

use tokio::runtime::{Handle, RuntimeFlavor};

use crate::Error;

/// Drives `fut` to completion on `handle` from sync code.
///
/// Outside any runtime this blocks the thread. Inside a multi-threaded
/// runtime it first moves the worker's other tasks elsewhere
/// (`block_in_place`), so nothing stalls. Inside a current-thread runtime
/// blocking would stall that runtime, possibly forever, so it refuses.
pub(crate) fn block_on<F: Future>(handle: &Handle, fut: F) -> Result<F::Output, Error> {
    match Handle::try_current() {
        Err(_) => Ok(handle.block_on(fut)),
        Ok(current) if current.runtime_flavor() == RuntimeFlavor::MultiThread => {
            Ok(tokio::task::block_in_place(|| handle.block_on(fut)))
        }
        Ok(_) => Err(Error::BlockingNotAllowed {
            reason: "called from a current-thread tokio runtime, which blocking would stall; \
                     use the async method, or call from a multi-threaded runtime or a plain thread",
        }),
    }
}
