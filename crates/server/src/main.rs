//! `lockstep`: one binary that ingests cameras and avatars, keeps them in sync, and serves them.

use lockstep::{auth_cmd, cli, config, demo, live, measure, push_sim_cmd, service, sim_camera_cmd};

use std::process::ExitCode;

use tracing_subscriber::fmt::writer::BoxMakeWriter;

use clap::Parser;

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        // mp4-atom warns about every metadata box it does not model: not news to a user.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,mp4_atom=error"));
    // A service has no console: it logs to a rotating file beside its config.
    let log_file = match &cli.command {
        Command::Service(args) if args.action == cli::ServiceAction::Run => {
            let path = service::log_path(&service::config_path(args.config.as_deref()));
            service::log_file::LogFile::open(&path, service::LOG_MAX_BYTES, service::LOG_KEEP)
                .map(Some)
        }
        _ => Ok(None),
    };
    let (writer, to_file) = match log_file {
        Ok(Some(file)) => (BoxMakeWriter::new(std::sync::Mutex::new(file)), true),
        Ok(None) => (BoxMakeWriter::new(std::io::stderr), false),
        Err(e) => {
            eprintln!("error: cannot open the service log: {e}");
            return ExitCode::FAILURE;
        }
    };
    let logger = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    // No colour codes in a file; the console keeps the default (which honours NO_COLOR).
    if to_file {
        logger.with_ansi(false).init();
    } else {
        logger.init();
    }
    // Every camera, viewer and WebSocket holds descriptors: use what the system allows, not the
    // shell's default soft limit (often 1024).
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        tracing::debug!("cannot raise the open-file limit: {e}");
    }
    match cli.command {
        Command::SimCamera(args) => run_async(sim_camera_cmd::run(&args)),
        Command::Measure(args) => run_async(measure::run(&args)),
        Command::PushSim(args) => run_async(push_sim_cmd::run(&args)),
        Command::Serve(args) => serve(&args.config),
        Command::Demo(args) => run_async(demo::run(&args)),
        Command::User(args) => finish(auth_cmd::user(&args)),
        Command::Token(args) => finish(auth_cmd::token(&args)),
        Command::Discover(args) => run_async(lockstep::discover::run(&args)),
        Command::Service(args) => finish(service::run(
            args.action,
            &service::config_path(args.config.as_deref()),
        )),
    }
}

/// Runs an async command on a multi-threaded runtime; errors print as `error: …` and exit 1.
fn run_async(command: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    finish(runtime.block_on(command))
}

/// A command's result as its exit status: errors print as `error: …` and exit 1.
fn finish(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Loads the configuration (errors name file, line and reason) and serves it.
fn serve(path: &std::path::Path) -> ExitCode {
    match config::Config::load(path) {
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
        Ok(config) => {
            eprint!("{}", config.summary());
            run_async(live::serve(config))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_contract_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_the_contract_flags() {
        let cli = Cli::try_parse_from([
            "lockstep",
            "sim-camera",
            "--listen",
            "127.0.0.1:9554",
            "--audio",
            "pcmu",
            "--audio-clock-ppm",
            "-300",
            "--sender-reports",
            "off",
            "--reboot-after",
            "30",
        ])
        .unwrap();
        let Command::SimCamera(args) = cli.command else {
            panic!("sim-camera expected");
        };
        assert_eq!(args.audio_clock_ppm, -300.0);
        assert_eq!(args.listen.port(), 9554);
        assert!(Cli::try_parse_from(["lockstep", "sim-camera", "--audio", "mp3"]).is_err());
        assert!(Cli::try_parse_from(["lockstep", "serve", "--config", "x.toml"]).is_ok());
    }
}
