//! `lockstep user …` and `lockstep token …`: the users and API tokens of a server, kept in the
//! `auth.sqlite` of its storage folder. A running server sees the changes at its next request
//! (it reads the store for every credential).

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::Path;

use anyhow::Context as _;

use crate::auth::password;
use crate::auth::permission::{grant, CameraScope, Permissions};
use crate::auth::store::{Store, User};
use crate::cli::{GrantArgs, TokenAction, TokenArgs, UserAction, UserArgs};
use crate::config::Config;

pub fn user(args: &UserArgs) -> anyhow::Result<()> {
    let store = open_store(&args.config)?;
    match &args.action {
        UserAction::Add {
            name,
            grant,
            password_stdin,
            replace,
        } => {
            check_name("user", name)?;
            let (permissions, cameras) = resolve(grant)?;
            let password = read_password(*password_stdin)?;
            let hash = password::hash(&password).map_err(anyhow::Error::msg)?;
            let user = User {
                name: name.clone(),
                permissions,
                cameras,
            };
            let added = store.put_user(&user, &hash, *replace)?;
            if !added && !replace {
                anyhow::bail!("a user {name:?} exists (--replace changes it)");
            }
            audit(
                &store,
                if added { "user added" } else { "user changed" },
                name,
            );
            eprintln!(
                "{} user {name} ({permissions})",
                if added { "added" } else { "changed" }
            );
        }
        UserAction::List => {
            for user in store.users()? {
                println!(
                    "{}\t{}\t{}",
                    user.name,
                    user.permissions,
                    scope(&user.cameras)
                );
            }
        }
        UserAction::Remove { name } => {
            if !store.remove_user(name)? {
                anyhow::bail!("no user {name:?}");
            }
            audit(&store, "user removed", name);
            eprintln!("removed user {name} and their sessions");
        }
    }
    Ok(())
}

pub fn token(args: &TokenArgs) -> anyhow::Result<()> {
    let store = open_store(&args.config)?;
    match &args.action {
        TokenAction::Add { name, grant } => {
            check_name("token", name)?;
            let (permissions, cameras) = resolve(grant)?;
            let (token, info) =
                crate::auth::issue_token(&store, name, permissions, cameras, "command line")?;
            audit(&store, "token created", &format!("{name} ({})", info.id));
            eprintln!(
                "token {} for {name} ({permissions}); shown once, keep it now:",
                info.id
            );
            println!("{token}");
        }
        TokenAction::List => {
            for t in store.tokens()? {
                println!(
                    "{}\t{}\t{}\t{}\tby {}",
                    t.id,
                    t.name,
                    t.permissions,
                    scope(&t.cameras),
                    t.created_by
                );
            }
        }
        TokenAction::Revoke { id } => {
            if !store.revoke_token(id)? {
                anyhow::bail!("no token {id:?} (`lockstep token list` shows them)");
            }
            audit(&store, "token revoked", id);
            eprintln!("revoked token {id}");
        }
    }
    Ok(())
}

fn open_store(config: &Path) -> anyhow::Result<Store> {
    let config = Config::load(config).map_err(|e| anyhow::anyhow!("{e}"))?;
    Store::open(&config.storage.dir).context("cannot open the user store")
}

fn resolve(args: &GrantArgs) -> anyhow::Result<(Permissions, CameraScope)> {
    grant(
        args.role.as_deref(),
        args.can.as_deref(),
        args.cameras.as_deref(),
    )
    .map_err(anyhow::Error::msg)
}

fn check_name(what: &str, name: &str) -> anyhow::Result<()> {
    crate::auth::check_name(what, name).map_err(anyhow::Error::msg)
}

fn scope(cameras: &CameraScope) -> String {
    cameras.stored().unwrap_or_else(|| "all cameras".into())
}

fn audit(store: &Store, action: &str, detail: &str) {
    let entry = crate::auth::store::AuditEntry {
        at_ms: crate::auth::store::now_ms(),
        actor: "command line".into(),
        address: "-".into(),
        action: action.into(),
        detail: detail.into(),
    };
    if let Err(e) = store.audit(&entry) {
        eprintln!("warning: cannot write the audit log: {e}");
    }
}

/// The new password: one line of standard input, or asked twice on the terminal without echo.
fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if from_stdin || !stdin.is_terminal() {
        let mut line = String::new();
        stdin.lock().read_line(&mut line)?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_owned());
    }
    let first = prompt("Password: ")?;
    let again = prompt("Again: ")?;
    if first != again {
        anyhow::bail!("the two passwords differ");
    }
    Ok(first)
}

fn prompt(text: &str) -> anyhow::Result<String> {
    eprint!("{text}");
    std::io::stderr().flush()?;
    let _quiet = Quiet::new();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    eprintln!();
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// The terminal's echo off while it lives (Unix; elsewhere the password is typed visibly).
struct Quiet {
    #[cfg(unix)]
    saved: Option<rustix::termios::Termios>,
}

impl Quiet {
    fn new() -> Quiet {
        #[cfg(unix)]
        {
            use rustix::termios::{tcgetattr, tcsetattr, LocalModes, OptionalActions};
            let stdin = std::io::stdin();
            let saved = tcgetattr(&stdin).ok();
            if let Some(saved) = &saved {
                let mut quiet = saved.clone();
                quiet.local_modes.remove(LocalModes::ECHO);
                let _ = tcsetattr(&stdin, OptionalActions::Now, &quiet);
            }
            Quiet { saved }
        }
        #[cfg(not(unix))]
        Quiet {}
    }
}

impl Drop for Quiet {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some(saved) = &self.saved {
            let _ = rustix::termios::tcsetattr(
                std::io::stdin(),
                rustix::termios::OptionalActions::Now,
                saved,
            );
        }
    }
}

impl std::fmt::Debug for Quiet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Quiet")
    }
}
