//! Passwords: argon2id (the argon2 crate's defaults, OWASP's minimum: 19 MiB, 2 passes, 1 lane)
//! in the PHC string form, so that the parameters can be raised later without breaking old
//! hashes. Hashing and checking cost tens of milliseconds of CPU on purpose: callers run them
//! off the async threads.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

/// Shortest password accepted.
pub const MIN_LEN: usize = 8;
/// Longest password accepted (a login does not check longer ones).
pub const MAX_BYTES: usize = 1024;

pub fn hash(password: &str) -> Result<String, String> {
    if password.chars().count() < MIN_LEN {
        return Err(format!("a password has at least {MIN_LEN} characters"));
    }
    if password.len() > MAX_BYTES {
        return Err(format!("a password has at most {MAX_BYTES} bytes"));
    }
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| format!("no randomness for a salt: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// Whether `password` matches `stored`; `None` for a user that does not exist still costs one
/// check, so that the answer's timing does not tell which names exist.
pub fn verify(password: &str, stored: Option<&str>) -> bool {
    let stored = stored.unwrap_or(DUMMY);
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    let matches = Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    matches && stored != DUMMY
}

/// An argon2id hash of a random password nobody knows, in the default parameters.
const DUMMY: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$3xLaVuXIsmRoOlmWVqRbcSZWqKWO6bo/BG8vXyqh4Pc";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let stored = hash("correct horse").expect("hashed");
        assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify("correct horse", Some(&stored)));
        assert!(!verify("correct horsE", Some(&stored)));
        assert!(!verify("correct horse", None));
        assert!(!verify("x", Some("not a hash")));
        assert!(hash("short").is_err_and(|e| e.contains("at least 8")));
    }

    #[test]
    fn the_dummy_hash_parses() {
        assert!(PasswordHash::new(DUMMY).is_ok());
    }
}
