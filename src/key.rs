//! The `(server, scope)` key and borrowed lookups into maps keyed by it.

use std::{
    borrow::Borrow,
    hash::{Hash, Hasher},
    sync::Arc,
};

/// Identifies one session: a server name and a scope (usually an agent's
/// thread or conversation id).
///
/// It is a pair, never a joined string, so `("a:b", "c")` and `("a", "b:c")`
/// are different keys.
#[derive(Clone, Debug)]
pub(crate) struct SessionKey {
    pub(crate) server: Arc<str>,
    pub(crate) scope: Arc<str>,
    /// A warm spare's key, which no caller's `(server, scope)` can name,
    /// whatever the scope says.
    pub(crate) spare: bool,
}

impl SessionKey {
    pub(crate) fn new(server: &str, scope: &str) -> Self {
        Self {
            server: server.into(),
            scope: scope.into(),
            spare: false,
        }
    }

    /// The key under which `server`'s spares that failed to start back off.
    pub(crate) fn spares_of(server: &str) -> Self {
        Self {
            server: server.into(),
            scope: "(spares)".into(),
            spare: true,
        }
    }

    /// The key of a warm spare of `server`, made as `generation`.
    pub(crate) fn spare(server: &str, generation: u64) -> Self {
        Self {
            server: server.into(),
            scope: format!("(spare {generation})").into(),
            spare: true,
        }
    }
}

/// A view of a key, so that a lookup by `(&str, &str)` needs no allocation:
/// both `SessionKey` and `(&str, &str)` hash and compare through it.
pub(crate) trait KeyView {
    fn parts(&self) -> (&str, &str);

    /// Whether it is a warm spare's key; a caller's never is.
    fn spare(&self) -> bool {
        false
    }
}

impl KeyView for SessionKey {
    fn parts(&self) -> (&str, &str) {
        (&self.server, &self.scope)
    }

    fn spare(&self) -> bool {
        self.spare
    }
}

impl KeyView for (&str, &str) {
    fn parts(&self) -> (&str, &str) {
        (self.0, self.1)
    }
}

impl Hash for dyn KeyView + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // `str`'s Hash writes a terminator, so the pair hashes unambiguously.
        (self.parts(), self.spare()).hash(state);
    }
}

impl PartialEq for dyn KeyView + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts() && self.spare() == other.spare()
    }
}

impl Eq for dyn KeyView + '_ {}

impl Hash for SessionKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self as &dyn KeyView).hash(state);
    }
}

impl PartialEq for SessionKey {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts() && self.spare == other.spare
    }
}

impl Eq for SessionKey {}

impl<'a> Borrow<dyn KeyView + 'a> for SessionKey {
    fn borrow(&self) -> &(dyn KeyView + 'a) {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn borrowed_lookup_finds_owned_key() {
        let mut map = HashMap::new();
        map.insert(SessionKey::new("browser", "t1"), 1);
        assert_eq!(map.get(&("browser", "t1") as &dyn KeyView), Some(&1));
        assert_eq!(map.get(&("browser", "t2") as &dyn KeyView), None);
    }

    #[test]
    fn a_callers_scope_never_names_a_spare() {
        let mut map = HashMap::new();
        let spare = SessionKey::spare("srv", 1);
        map.insert(spare.clone(), 1);
        assert_eq!(map.get(&("srv", &*spare.scope) as &dyn KeyView), None);
        assert_eq!(map.get(&spare as &dyn KeyView), Some(&1));
    }

    #[test]
    fn pair_is_not_a_joined_string() {
        let mut map = HashMap::new();
        map.insert(SessionKey::new("a:b", "c"), 1);
        map.insert(SessionKey::new("a", "b:c"), 2);
        assert_eq!(map.len(), 2);
        assert_eq!(map.get(&("a", "b:c") as &dyn KeyView), Some(&2));
    }
}
