//! `lockstep demo`: the server with two simulated cameras in the process, nothing to configure.
//! One camera is clean; the other has what real cameras have: an audio clock 300 ppm slow and
//! 40 ms of network jitter. Both stay in sync on the page. (Ingest is RTSP over TCP, where the
//! simulator delays packets but cannot lose them; loss is covered by the sync core's simulation.)

use std::time::Duration;

use anyhow::Context as _;
use lockstep_rtsp::sim_camera::{AudioCodec, Impairments, SimCamera, SimCameraConfig};

use crate::cli::DemoArgs;
use crate::config::Config;

pub async fn run(args: &DemoArgs) -> anyhow::Result<()> {
    let clean = SimCamera::start(SimCameraConfig {
        listen: "127.0.0.1:0".parse()?,
        audio: AudioCodec::Pcma,
        seed: 1,
        ..SimCameraConfig::default()
    })
    .await
    .context("cannot start the simulated camera")?;
    let drifting = SimCamera::start(SimCameraConfig {
        listen: "127.0.0.1:0".parse()?,
        audio: AudioCodec::Pcmu,
        audio_clock_ppm: -300.0,
        audio_offset: Duration::ZERO,
        impairments: Impairments {
            jitter: Duration::from_millis(40),
            loss: 0.0,
            reorder: 0.0,
            duplicate: 0.0,
        },
        seed: 2,
        ..SimCameraConfig::default()
    })
    .await
    .context("cannot start the simulated camera")?;
    // Demo recordings go to the system's temporary folder, kept small and for a day; a second
    // demo running at the same time gets a folder of its own.
    let storage = demo_storage()?;
    let toml = format!(
        "[server]\nlisten = \"{}\"\n\n\
         [storage]\ndir = '{}'\nmax_disk = \"2GB\"\nretain_days = 1\n\n\
         [[camera]]\nname = \"demo-clean\"\nurl = \"{}\"\n\n\
         [[camera]]\nname = \"demo-drifting\"\nurl = \"{}\"\n\n\
         [[push]]\nname = \"avatar\"\n",
        args.listen,
        storage.display(),
        clean.url(),
        drifting.url()
    );
    let config = Config::parse(&toml, "(demo)").map_err(|e| anyhow::anyhow!("{e}"))?;
    eprintln!(
        "lockstep demo: simulated cameras at {} (clean) and {} (audio clock -300 ppm, 40 ms \
         jitter)",
        clean.url(),
        drifting.url()
    );
    eprintln!(
        "lockstep demo: push source \"avatar\" waits for a producer at ws://{}/api/push/avatar \
         (python3 examples/push_avatar.py, or lockstep push-sim)",
        args.listen
    );
    crate::live::serve(config).await
}

/// The first of `lockstep-demo`, `lockstep-demo-2`, … in the temporary folder that is privately
/// ours and no other lockstep is recording into.
fn demo_storage() -> anyhow::Result<std::path::PathBuf> {
    for n in 1..=16 {
        let name = match n {
            1 => "lockstep-demo".to_owned(),
            n => format!("lockstep-demo-{n}"),
        };
        let dir = std::env::temp_dir().join(name);
        if let Err(reason) = private_dir(&dir) {
            tracing::warn!("not using {}: {reason}", dir.display());
            continue;
        }
        if lockstep_record::StorageLock::acquire(&dir)?.is_some() {
            return Ok(dir); // free (the lock is let go here and taken again by the server)
        }
    }
    anyhow::bail!("sixteen lockstep demos are already running")
}

/// Creates `dir` readable by us only, or checks that the one already there is ours: the temporary
/// folder is shared, and a folder another user made (or a link they planted) at the demo's
/// predictable name would otherwise receive our recordings.
#[cfg(unix)]
fn private_dir(dir: &std::path::Path) -> Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("cannot create it: {e}")),
    }
    let meta = std::fs::symlink_metadata(dir).map_err(|e| e.to_string())?;
    if !meta.file_type().is_dir() {
        return Err("it is not a folder (a link or a file)".into());
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(format!(
            "it belongs to user {}, not to us ({me})",
            meta.uid()
        ));
    }
    if meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("cannot make it private: {e}"))?;
    }
    Ok(())
}

/// Windows gives each user a temporary folder of their own.
#[cfg(not(unix))]
fn private_dir(dir: &std::path::Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create it: {e}"))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_demo_folder_is_private_and_a_planted_link_is_refused() {
        let base = std::env::temp_dir().join(format!("lockstep-private-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).unwrap();
        let dir = base.join("demo");
        private_dir(&dir).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        // One of ours left open to others is closed again.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        private_dir(&dir).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        // A link planted at the name, pointing anywhere, is not followed.
        let link = base.join("planted");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        let e = private_dir(&link).unwrap_err();
        assert!(e.contains("not a folder"), "{e}");
        std::fs::remove_dir_all(&base).unwrap();
    }
}
