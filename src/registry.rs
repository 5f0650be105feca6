//! The data under the pool's one lock: established sessions and creations in
//! flight. Plain data only; nothing here awaits.

use std::collections::HashMap;

use futures_util::future::{BoxFuture, Shared};
use lru::LruCache;
use tokio_util::sync::CancellationToken;

use crate::{
    Error, Session,
    key::{KeyView, SessionKey},
};

/// The result of one creation, shared by every caller waiting for it.
pub(crate) type Ready = Shared<BoxFuture<'static, Result<Session, Error>>>;

/// How to reach an owner task: tell it to close, and learn when it is done.
#[derive(Clone)]
pub(crate) struct OwnerLink {
    pub(crate) generation: u64,
    pub(crate) close: CancellationToken,
    pub(crate) done: CancellationToken,
}

pub(crate) struct Live {
    pub(crate) session: Session,
    pub(crate) link: OwnerLink,
}

impl Live {
    /// False once the owner has been told to close, has ended (its runtime
    /// may be gone), or rmcp has seen the transport close.
    pub(crate) fn is_usable(&self) -> bool {
        !self.link.close.is_cancelled()
            && !self.link.done.is_cancelled()
            && !self.session.is_transport_closed()
    }
}

pub(crate) struct Pending {
    pub(crate) ready: Ready,
    pub(crate) link: OwnerLink,
}

pub(crate) struct Registry {
    /// Established sessions, least recently used first out.
    pub(crate) live: LruCache<SessionKey, Live>,
    pub(crate) inflight: HashMap<SessionKey, Pending>,
    pub(crate) closed: bool,
}

impl Registry {
    pub(crate) fn new() -> Self {
        Self {
            live: LruCache::unbounded(),
            inflight: HashMap::new(),
            closed: false,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.live.len() + self.inflight.len()
    }

    /// Removes the slot of `key` if it still belongs to `generation`, so an
    /// owner never removes its successor.
    pub(crate) fn remove_generation(&mut self, key: &SessionKey, generation: u64) -> bool {
        let k: &dyn KeyView = key;
        if self
            .live
            .peek(k)
            .is_some_and(|l| l.link.generation == generation)
        {
            self.live.pop(k);
            return true;
        }
        if self
            .inflight
            .get(k)
            .is_some_and(|p| p.link.generation == generation)
        {
            self.inflight.remove(k);
            return true;
        }
        false
    }

    /// Takes every live and in-flight session whose key matches out of the
    /// registry and returns their owners, to be signalled after unlocking.
    pub(crate) fn take_matching(
        &mut self,
        matches: impl Fn(&SessionKey) -> bool,
    ) -> Vec<OwnerLink> {
        let live_keys: Vec<SessionKey> = self
            .live
            .iter()
            .filter(|(k, _)| matches(k))
            .map(|(k, _)| k.clone())
            .collect();
        let mut taken: Vec<OwnerLink> = live_keys
            .iter()
            .filter_map(|k| self.live.pop(k as &dyn KeyView).map(|l| l.link))
            .collect();
        self.inflight.retain(|k, p| {
            let keep = !matches(k);
            if !keep {
                taken.push(p.link.clone());
            }
            keep
        });
        taken
    }
}
