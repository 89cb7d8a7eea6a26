//! The Windows side of `lockstep service`: the service manager's calls (windows-service crate).

use std::ffi::OsString;
use std::time::Duration;

use anyhow::Context as _;
use windows_service::service::{
    ServiceAccess, ServiceAction as FailureAction, ServiceActionType, ServiceControl,
    ServiceControlAccept, ServiceErrorControl, ServiceExitCode, ServiceFailureActions,
    ServiceFailureResetPeriod, ServiceInfo, ServiceStartType, ServiceState, ServiceStatus,
    ServiceType,
};
use windows_service::service_control_handler::{self, ServiceControlHandlerResult};
use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};
use windows_service::{define_windows_service, service_dispatcher};

use std::path::{Path, PathBuf};

use super::{log_path, NAME};
use crate::cli::ServiceAction;

define_windows_service!(ffi_service_main, service_main);

/// The config `service run` serves (its command line names it).
static CONFIG: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

pub fn run(action: ServiceAction, config: &Path) -> anyhow::Result<()> {
    match action {
        ServiceAction::Install => install(config),
        ServiceAction::Uninstall => uninstall(),
        ServiceAction::Start => {
            open(ServiceAccess::START)?
                .start::<&str>(&[])
                .context("cannot start the service")?;
            println!("lockstep: service started");
            Ok(())
        }
        ServiceAction::Stop => {
            open(ServiceAccess::STOP)?
                .stop()
                .context("cannot stop the service")?;
            println!("lockstep: service stopping (open recordings are closed first)");
            Ok(())
        }
        ServiceAction::Run => {
            let _ = CONFIG.set(config.to_path_buf());
            service_dispatcher::start(NAME, ffi_service_main).context(
                "`lockstep service run` is how Windows starts the service: use `lockstep service \
                 start`",
            )
        }
    }
}

fn manager(access: ServiceManagerAccess) -> anyhow::Result<ServiceManager> {
    ServiceManager::local_computer(None::<&str>, access)
        .context("cannot open the service manager (run this as an administrator)")
}

fn open(access: ServiceAccess) -> anyhow::Result<windows_service::service::Service> {
    manager(ServiceManagerAccess::CONNECT)?
        .open_service(NAME, access)
        .context("the lockstep service is not installed (`lockstep service install`)")
}

fn install(config: &Path) -> anyhow::Result<()> {
    if let Err(e) = crate::config::Config::load(config) {
        eprintln!("lockstep: warning: {e} (the service reads this file when it starts)");
    }
    let info = ServiceInfo {
        name: OsString::from(NAME),
        display_name: OsString::from("lockstep"),
        service_type: ServiceType::OWN_PROCESS,
        start_type: ServiceStartType::AutoStart,
        error_control: ServiceErrorControl::Normal,
        executable_path: std::env::current_exe().context("where is lockstep.exe?")?,
        launch_arguments: vec![
            OsString::from("service"),
            OsString::from("run"),
            OsString::from("--config"),
            config.as_os_str().to_owned(),
        ],
        dependencies: vec![],
        account_name: None,
        account_password: None,
    };
    let service = manager(ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE)?
        .create_service(&info, ServiceAccess::CHANGE_CONFIG)
        .context("cannot install the service")?;
    service
        .set_description("Cameras and talking avatars in sync: live view, recording, restream")
        .context("cannot describe the service")?;
    // Restarted 5 s after a failure (a crash, or `serve` ending with an error), three times a
    // day. Best effort: without it the service still runs (wine, for one, refuses the flag).
    if let Err(e) = restart_on_failure(&service) {
        eprintln!("lockstep: warning: the service will not be restarted after a failure: {e}");
    }
    println!(
        "lockstep: service installed; it serves {} and logs to {} (`lockstep service start`)",
        config.display(),
        log_path(config).display()
    );
    Ok(())
}

fn restart_on_failure(service: &windows_service::service::Service) -> windows_service::Result<()> {
    let restart = FailureAction {
        action_type: ServiceActionType::Restart,
        delay: Duration::from_secs(5),
    };
    service.update_failure_actions(ServiceFailureActions {
        reset_period: ServiceFailureResetPeriod::After(Duration::from_secs(86_400)),
        reboot_msg: None,
        command: None,
        actions: Some(vec![restart.clone(), restart.clone(), restart]),
    })?;
    // Also when `serve` stops with an error and reports it (not only a crash).
    service.set_failure_actions_on_non_crash_failures(true)
}

fn uninstall() -> anyhow::Result<()> {
    let service = open(ServiceAccess::QUERY_STATUS | ServiceAccess::STOP | ServiceAccess::DELETE)?;
    if service.query_status()?.current_state != ServiceState::Stopped {
        let _ = service.stop();
    }
    service.delete().context("cannot remove the service")?;
    println!("lockstep: service removed (the config, data and logs stay)");
    Ok(())
}

fn service_main(_arguments: Vec<OsString>) {
    // A service has no console: a panic's message goes to the log too.
    std::panic::set_hook(Box::new(|panic| tracing::error!("{panic}")));
    if let Err(e) = serve_as_service() {
        tracing::error!("the service stopped: {e:#}");
    }
}

/// Reports to the service manager around `serve`; Stop and Shutdown end it as Ctrl-C does (the
/// open recordings closed as `stopped`).
fn serve_as_service() -> anyhow::Result<()> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let handler = move |control| match control {
        ServiceControl::Stop | ServiceControl::Shutdown => {
            let _ = stop.send(true);
            ServiceControlHandlerResult::NoError
        }
        ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
        _ => ServiceControlHandlerResult::NotImplemented,
    };
    let status = service_control_handler::register(NAME, handler)
        .context("cannot talk to the service manager")?;
    let report = |state, controls_accepted, exit: u32| {
        status.set_service_status(ServiceStatus {
            service_type: ServiceType::OWN_PROCESS,
            current_state: state,
            controls_accepted,
            exit_code: ServiceExitCode::Win32(exit),
            checkpoint: 0,
            wait_hint: Duration::from_secs(15),
            process_id: None,
        })
    };
    report(
        ServiceState::Running,
        ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN,
        0,
    )?;
    let result = (|| {
        let path = CONFIG.get().context("no config named")?;
        let config = crate::config::Config::load(path)?;
        let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
        let mut stopped = stopped;
        runtime.block_on(crate::live::serve_until(config, async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }))
    })();
    // A non-zero exit tells the service manager to restart it (failure actions).
    let exit = if result.is_ok() { 0 } else { 1 };
    report(ServiceState::Stopped, ServiceControlAccept::empty(), exit)?;
    result
}
