//! Secrets the server hands out (session cookies, API tokens, the run's token) and how they are
//! kept: 256 random bits, shown once, stored only as their SHA-256. A fast hash is right for
//! them (they cannot be guessed); passwords, which people choose, use argon2id (`password.rs`).

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// A new secret: `prefix` then 43 URL-safe characters (256 bits from the OS).
pub fn new_secret(prefix: &str) -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(std::io::Error::other)?;
    Ok(format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

/// What is stored for a secret: its SHA-256, hex.
pub fn digest(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Equal without telling by how long the comparison took where they differ.
pub fn same(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq as _;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_distinct_and_digests_stable() {
        let a = new_secret("lst_").expect("random");
        let b = new_secret("lst_").expect("random");
        assert!(a.starts_with("lst_") && a.len() == 4 + 43 && a != b);
        assert_eq!(digest("abc").len(), 64);
        assert_eq!(
            digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(same(&a, &a.clone()) && !same(&a, &b) && !same("a", "ab"));
    }
}
