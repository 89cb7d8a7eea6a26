//! One talker per camera: the talk session that holds the floor is the one whose speech reaches
//! the speaker. Another gets a 409 naming the holder's session (an id, never a person).

use std::sync::{Mutex, PoisonError};

#[derive(Debug, Default)]
pub struct Floor {
    holder: Mutex<Option<String>>,
}

impl Floor {
    /// Takes the floor for `session`, or says which session holds it.
    pub fn claim(&self, session: &str) -> Result<(), String> {
        let mut holder = self.lock();
        match holder.as_deref() {
            Some(other) if other != session => Err(other.to_owned()),
            _ => {
                *holder = Some(session.to_owned());
                Ok(())
            }
        }
    }

    /// Lets go, if `session` holds it.
    pub fn release(&self, session: &str) {
        let mut holder = self.lock();
        if holder.as_deref() == Some(session) {
            *holder = None;
        }
    }

    pub fn holds(&self, session: &str) -> bool {
        self.lock().as_deref() == Some(session)
    }

    pub fn holder(&self) -> Option<String> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.holder.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_talker_at_a_time() {
        let floor = Floor::default();
        assert_eq!(floor.claim("a"), Ok(()));
        assert_eq!(floor.claim("a"), Ok(()));
        assert_eq!(floor.claim("b"), Err("a".to_owned()));
        floor.release("b");
        assert!(floor.holds("a"));
        floor.release("a");
        assert_eq!(floor.holder(), None);
        assert_eq!(floor.claim("b"), Ok(()));
    }
}
