//! `lockstep service install | uninstall | start | stop`: lockstep as a Windows service that
//! runs `serve` with the config at a fixed place (`%ProgramData%\lockstep\lockstep.toml`),
//! logs to a rotating file beside it, and is restarted by Windows when it fails. `run` is how
//! the service manager starts it. On Linux, systemd does this (`examples/lockstep.service`).

pub mod log_file;
#[cfg(windows)]
mod windows;

use std::path::{Path, PathBuf};

use crate::cli::ServiceAction;

/// The service's name in Windows' service manager.
pub const NAME: &str = "lockstep";
/// Its log: rotated past 10 MB, five old files kept.
pub const LOG_MAX_BYTES: u64 = 10_000_000;
pub const LOG_KEEP: u32 = 5;

/// `%ProgramData%\lockstep`: the service's config and logs, and (`data\`) the default storage.
pub fn folder() -> PathBuf {
    std::env::var_os("ProgramData")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(r"C:\ProgramData"))
        .join("lockstep")
}

/// The config the service serves: `--config`, or `%ProgramData%\lockstep\lockstep.toml`.
/// `install` writes the full path into the service's command line, so the service reads the
/// file install named whatever its own environment says.
pub fn config_path(given: Option<&Path>) -> PathBuf {
    match given {
        Some(path) => std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
        None => folder().join("lockstep.toml"),
    }
}

/// The service's log: `logs\lockstep.log` beside its config.
pub fn log_path(config: &Path) -> PathBuf {
    config
        .parent()
        .unwrap_or(Path::new("."))
        .join("logs")
        .join("lockstep.log")
}

pub fn run(action: ServiceAction, config: &Path) -> anyhow::Result<()> {
    #[cfg(windows)]
    return windows::run(action, config);
    #[cfg(not(windows))]
    {
        let _ = (action, config);
        anyhow::bail!(
            "`lockstep service` registers a Windows service; on Linux run lockstep under systemd \
             (examples/lockstep.service)"
        )
    }
}
