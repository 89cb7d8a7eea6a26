//! Users, API tokens, browser sessions and the audit log, in `auth.sqlite` beside the
//! recordings (not in the TOML file: passwords are changed at run time and never written where
//! a config is shared). Secrets are stored as hashes only (`secret.rs`, `password.rs`).

use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};

use super::permission::{CameraScope, Permissions};

pub const AUTH_FILE: &str = "auth.sqlite";
/// Entries the audit log keeps.
pub const AUDIT_KEPT: i64 = 100_000;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    password TEXT NOT NULL,
    permissions TEXT NOT NULL,
    cameras TEXT,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    permissions TEXT NOT NULL,
    cameras TEXT,
    created_ms INTEGER NOT NULL,
    created_by TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    hash TEXT PRIMARY KEY,
    user TEXT,
    run_id TEXT,
    csrf TEXT NOT NULL,
    expires_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,
    at_ms INTEGER NOT NULL,
    actor TEXT NOT NULL,
    address TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL
);
";

/// A user, without the password hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub permissions: Permissions,
    pub cameras: CameraScope,
}

/// An API token as listed (its secret is never kept).
#[derive(Debug, Clone)]
pub struct TokenInfo {
    pub id: String,
    pub name: String,
    pub permissions: Permissions,
    pub cameras: CameraScope,
    pub created_ms: i64,
    pub created_by: String,
}

/// Who a session belongs to.
#[derive(Debug, Clone)]
pub enum SessionOwner {
    User(User),
    /// Opened with the run's token: valid while the server run that made it lives.
    Run(String),
}

#[derive(Debug, Clone)]
pub struct Session {
    pub owner: SessionOwner,
    pub csrf: String,
}

/// One line of the audit log.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditEntry {
    pub at_ms: i64,
    pub actor: String,
    pub address: String,
    pub action: String,
    pub detail: String,
}

#[derive(Debug)]
pub struct Store {
    conn: Mutex<Connection>,
}

pub type Result<T> = std::result::Result<T, rusqlite::Error>;

impl Store {
    /// Opens (creating) `dir/auth.sqlite`, readable by its owner only.
    pub fn open(dir: &Path) -> std::io::Result<Store> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(AUTH_FILE);
        let conn = Connection::open(&path)
            .and_then(|conn| {
                conn.busy_timeout(Duration::from_secs(5))?;
                conn.pragma_update(None, "journal_mode", "WAL")?;
                conn.execute_batch(SCHEMA)?;
                Ok(conn)
            })
            .map_err(|e| std::io::Error::other(format!("cannot open {}: {e}", path.display())))?;
        private(&path)?;
        Ok(Store {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn user_count(&self) -> Result<u64> {
        self.conn()
            .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
    }

    /// Adds a user or, when `replace`, changes one (ending their sessions: a changed password
    /// or permission must not live on in a cookie). Returns whether the name was new.
    pub fn put_user(&self, user: &User, password_hash: &str, replace: bool) -> Result<bool> {
        let conn = self.conn();
        let exists: bool = conn.query_row(
            "SELECT count(*) FROM users WHERE name = ?1",
            [&user.name],
            |r| r.get::<_, i64>(0).map(|n| n > 0),
        )?;
        if exists && !replace {
            return Ok(false);
        }
        conn.execute("DELETE FROM sessions WHERE user = ?1", [&user.name])?;
        conn.execute(
            "INSERT OR REPLACE INTO users (name, password, permissions, cameras, created_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                user.name,
                password_hash,
                user.permissions.to_string(),
                user.cameras.stored(),
                now_ms()
            ],
        )?;
        Ok(!exists)
    }

    /// Removes a user and every session of theirs. Returns whether it existed.
    pub fn remove_user(&self, name: &str) -> Result<bool> {
        let conn = self.conn();
        conn.execute("DELETE FROM sessions WHERE user = ?1", [name])?;
        Ok(conn.execute("DELETE FROM users WHERE name = ?1", [name])? > 0)
    }

    pub fn users(&self) -> Result<Vec<User>> {
        let conn = self.conn();
        let mut statement =
            conn.prepare("SELECT name, permissions, cameras FROM users ORDER BY name")?;
        let rows = statement.query_map([], user_row)?;
        rows.collect()
    }

    /// A user and their password hash.
    pub fn user_with_hash(&self, name: &str) -> Result<Option<(User, String)>> {
        self.conn()
            .query_row(
                "SELECT name, permissions, cameras, password FROM users WHERE name = ?1",
                [name],
                |r| Ok((user_row(r)?, r.get(3)?)),
            )
            .optional()
    }

    pub fn add_token(&self, token: &TokenInfo, hash: &str) -> Result<()> {
        self.conn().execute(
            "INSERT INTO tokens (id, name, hash, permissions, cameras, created_ms, created_by)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                token.id,
                token.name,
                hash,
                token.permissions.to_string(),
                token.cameras.stored(),
                token.created_ms,
                token.created_by
            ],
        )?;
        Ok(())
    }

    pub fn token_by_hash(&self, hash: &str) -> Result<Option<TokenInfo>> {
        self.conn()
            .query_row(
                "SELECT id, name, permissions, cameras, created_ms, created_by FROM tokens
                 WHERE hash = ?1",
                [hash],
                token_row,
            )
            .optional()
    }

    pub fn tokens(&self) -> Result<Vec<TokenInfo>> {
        let conn = self.conn();
        let mut statement = conn.prepare(
            "SELECT id, name, permissions, cameras, created_ms, created_by FROM tokens
             ORDER BY created_ms",
        )?;
        let rows = statement.query_map([], token_row)?;
        rows.collect()
    }

    /// Revokes a token by its id. Returns whether it existed.
    pub fn revoke_token(&self, id: &str) -> Result<bool> {
        Ok(self
            .conn()
            .execute("DELETE FROM tokens WHERE id = ?1", [id])?
            > 0)
    }

    /// Stores a session (by the hash of its cookie) for `lifetime`.
    pub fn add_session(
        &self,
        hash: &str,
        owner: &SessionOwner,
        csrf: &str,
        lifetime: Duration,
    ) -> Result<()> {
        let (user, run) = match owner {
            SessionOwner::User(user) => (Some(user.name.as_str()), None),
            SessionOwner::Run(run) => (None, Some(run.as_str())),
        };
        let expires_ms = now_ms().saturating_add(lifetime.as_millis() as i64);
        let conn = self.conn();
        // Expired sessions go whenever a new one comes: the table never grows without bound.
        conn.execute("DELETE FROM sessions WHERE expires_ms < ?1", [now_ms()])?;
        conn.execute(
            "INSERT INTO sessions (hash, user, run_id, csrf, expires_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![hash, user, run, csrf, expires_ms],
        )?;
        Ok(())
    }

    /// The live session of a cookie's hash, with its user as they are now.
    pub fn session(&self, hash: &str) -> Result<Option<Session>> {
        let conn = self.conn();
        let row = conn
            .query_row(
                "SELECT user, run_id, csrf FROM sessions WHERE hash = ?1 AND expires_ms >= ?2",
                params![hash, now_ms()],
                |r| {
                    Ok((
                        r.get::<_, Option<String>>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                },
            )
            .optional()?;
        let Some((user, run, csrf)) = row else {
            return Ok(None);
        };
        let owner = match (user, run) {
            (Some(name), _) => {
                let user = conn
                    .query_row(
                        "SELECT name, permissions, cameras FROM users WHERE name = ?1",
                        [name],
                        user_row,
                    )
                    .optional()?;
                match user {
                    Some(user) => SessionOwner::User(user),
                    None => return Ok(None),
                }
            }
            (None, Some(run)) => SessionOwner::Run(run),
            (None, None) => return Ok(None),
        };
        Ok(Some(Session { owner, csrf }))
    }

    pub fn remove_session(&self, hash: &str) -> Result<()> {
        self.conn()
            .execute("DELETE FROM sessions WHERE hash = ?1", [hash])?;
        Ok(())
    }

    /// Appends to the audit log, which keeps its newest [`AUDIT_KEPT`] entries (failed logins
    /// from many addresses must not fill the disk).
    pub fn audit(&self, entry: &AuditEntry) -> Result<()> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO audit (at_ms, actor, address, action, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                entry.at_ms,
                entry.actor,
                entry.address,
                entry.action,
                entry.detail
            ],
        )?;
        let id = conn.last_insert_rowid();
        if id % 1000 == 0 {
            conn.execute("DELETE FROM audit WHERE id <= ?1", [id - AUDIT_KEPT])?;
        }
        Ok(())
    }

    /// The newest `limit` entries, newest first.
    pub fn audit_log(&self, limit: u32) -> Result<Vec<AuditEntry>> {
        let conn = self.conn();
        let mut statement = conn.prepare(
            "SELECT at_ms, actor, address, action, detail FROM audit ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = statement.query_map([limit], |r| {
            Ok(AuditEntry {
                at_ms: r.get(0)?,
                actor: r.get(1)?,
                address: r.get(2)?,
                action: r.get(3)?,
                detail: r.get(4)?,
            })
        })?;
        rows.collect()
    }
}

fn user_row(r: &rusqlite::Row<'_>) -> Result<User> {
    Ok(User {
        name: r.get(0)?,
        permissions: permissions_column(r, 1)?,
        cameras: CameraScope::parse(r.get::<_, Option<String>>(2)?.as_deref()),
    })
}

fn token_row(r: &rusqlite::Row<'_>) -> Result<TokenInfo> {
    Ok(TokenInfo {
        id: r.get(0)?,
        name: r.get(1)?,
        permissions: permissions_column(r, 2)?,
        cameras: CameraScope::parse(r.get::<_, Option<String>>(3)?.as_deref()),
        created_ms: r.get(4)?,
        created_by: r.get(5)?,
    })
}

/// A permissions column; a value this version cannot read grants nothing rather than fail.
fn permissions_column(r: &rusqlite::Row<'_>, index: usize) -> Result<Permissions> {
    let text: String = r.get(index)?;
    Ok(Permissions::parse(&text).unwrap_or_default())
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The file is its owner's alone (it holds password hashes).
fn private(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (Store, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "lockstep-auth-store-{}-{}",
            std::process::id(),
            super::super::secret::new_secret("").expect("random")
        ));
        (Store::open(&dir).expect("opened"), dir)
    }

    #[test]
    fn users_sessions_and_tokens_are_kept_and_removed() {
        let (store, dir) = store();
        let alice = User {
            name: "alice".into(),
            permissions: Permissions::role("viewer").expect("role"),
            cameras: CameraScope::parse(Some("door")),
        };
        assert_eq!(store.put_user(&alice, "h1", false), Ok(true));
        assert_eq!(store.put_user(&alice, "h2", false), Ok(false));
        assert_eq!(
            store.user_with_hash("alice").expect("read").map(|u| u.1),
            Some("h1".into())
        );
        let open_session = |hash: &str, lifetime: Duration| {
            let owner = SessionOwner::User(alice.clone());
            store
                .add_session(hash, &owner, "csrf", lifetime)
                .expect("session");
        };
        open_session("s1", Duration::from_secs(60));
        open_session("s0", Duration::ZERO);
        let session = store.session("s1").expect("read").expect("live");
        assert!(matches!(session.owner, SessionOwner::User(u) if u == alice));
        std::thread::sleep(Duration::from_millis(2));
        assert!(store.session("s0").expect("read").is_none(), "expired");
        assert_eq!(store.put_user(&alice, "h3", true), Ok(false));
        assert!(
            store.session("s1").expect("read").is_none(),
            "ended by the change"
        );
        open_session("s1", Duration::from_secs(60));
        assert!(store.remove_user("alice").expect("removed"));
        assert!(
            store.session("s1").expect("read").is_none(),
            "gone with its user"
        );
        let token = TokenInfo {
            id: "t1".into(),
            name: "prometheus".into(),
            permissions: Permissions::role("metrics").expect("role"),
            cameras: CameraScope::All,
            created_ms: 1,
            created_by: "admin".into(),
        };
        store.add_token(&token, "th").expect("token");
        assert_eq!(
            store.token_by_hash("th").expect("read").map(|t| t.name),
            Some("prometheus".into())
        );
        assert!(store.revoke_token("t1").expect("revoked"));
        assert!(store.token_by_hash("th").expect("read").is_none());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.join(AUTH_FILE))
                .expect("file")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
