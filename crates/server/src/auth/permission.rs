//! What a user or token may do: a set of permissions, optionally limited to some cameras. Roles
//! are named sets, so that `--role viewer` means the same thing on the command line, in the API
//! and in the audit log.

use std::fmt;

/// One thing a user or token may be allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Watch live: the camera list, WHEP, the signalling socket, the media socket.
    View,
    /// Speak through a camera's speaker.
    Talk,
    /// Read the recordings' timeline and export them.
    Playback,
    /// Feed a push source (`/api/push`, WHIP).
    Publish,
    /// Read `/metrics` (a Prometheus scraper's token needs nothing else).
    Metrics,
    /// Users, tokens, the audit log, configuration.
    Admin,
}

const ALL: [Permission; 6] = [
    Permission::View,
    Permission::Talk,
    Permission::Playback,
    Permission::Publish,
    Permission::Metrics,
    Permission::Admin,
];

impl Permission {
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::View => "view",
            Permission::Talk => "talk",
            Permission::Playback => "playback",
            Permission::Publish => "publish",
            Permission::Metrics => "metrics",
            Permission::Admin => "admin",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Permissions(u8);

impl Permissions {
    pub const ALL: Permissions = Permissions(0b11_1111);

    /// A role's permissions: `admin` (all), `operator` (view, talk, playback), `viewer`,
    /// `publisher`, `metrics`.
    pub fn role(name: &str) -> Result<Permissions, String> {
        use Permission::*;
        let set: &[Permission] = match name {
            "admin" => return Ok(Permissions::ALL),
            "operator" => &[View, Talk, Playback],
            "viewer" => &[View],
            "publisher" => &[Publish],
            "metrics" => &[Metrics],
            other => {
                return Err(format!(
                    "no role {other:?}: roles are admin, operator (view, talk, playback), \
                     viewer, publisher and metrics"
                ))
            }
        };
        Ok(Permissions::of(set))
    }

    pub fn of(list: &[Permission]) -> Permissions {
        Permissions(list.iter().fold(0, |bits, p| bits | p.bit()))
    }

    /// `view,talk,…` (the stored and displayed form; an admin holds every permission).
    pub fn parse(text: &str) -> Result<Permissions, String> {
        let mut set = Permissions::default();
        for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            let permission = ALL.iter().find(|p| p.as_str() == word).ok_or_else(|| {
                format!(
                    "no permission {word:?}: permissions are view, talk, playback, publish, \
                     metrics and admin"
                )
            })?;
            set.0 |= permission.bit();
        }
        if set.has(Permission::Admin) {
            return Ok(Permissions::ALL);
        }
        Ok(set)
    }

    pub fn has(self, permission: Permission) -> bool {
        self.0 & permission.bit() != 0
    }

    pub fn list(self) -> Vec<&'static str> {
        ALL.iter()
            .filter(|p| self.has(**p))
            .map(|p| p.as_str())
            .collect()
    }
}

impl fmt::Display for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.list().join(","))
    }
}

/// Which cameras a grant covers: all, or those named.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CameraScope {
    #[default]
    All,
    Only(Vec<String>),
}

impl CameraScope {
    /// `None` or an empty list: every camera.
    pub fn parse(text: Option<&str>) -> CameraScope {
        let names: Vec<String> = text
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .collect();
        if names.is_empty() {
            CameraScope::All
        } else {
            CameraScope::Only(names)
        }
    }

    pub fn covers(&self, camera: &str) -> bool {
        match self {
            CameraScope::All => true,
            CameraScope::Only(names) => names.iter().any(|n| n == camera),
        }
    }

    /// The stored form: `None` for all.
    pub fn stored(&self) -> Option<String> {
        match self {
            CameraScope::All => None,
            CameraScope::Only(names) => Some(names.join(",")),
        }
    }
}

/// What a new user or token may do: a role or a permission list (one of them), and the cameras.
pub fn grant(
    role: Option<&str>,
    permissions: Option<&str>,
    cameras: Option<&str>,
) -> Result<(Permissions, CameraScope), String> {
    let permissions = match (role, permissions) {
        (Some(role), None) => Permissions::role(role)?,
        (None, Some(list)) => Permissions::parse(list)?,
        _ => return Err("give a role or a list of permissions (one of them)".into()),
    };
    Ok((permissions, CameraScope::parse(cameras)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_and_lists_round_trip() {
        let operator = Permissions::role("operator").expect("a role");
        assert_eq!(operator.to_string(), "view,talk,playback");
        assert_eq!(Permissions::parse("view, talk,playback"), Ok(operator));
        assert!(!operator.has(Permission::Admin) && !operator.has(Permission::Publish));
        assert_eq!(Permissions::parse("admin"), Ok(Permissions::ALL));
        assert!(Permissions::parse("view,root").is_err_and(|e| e.contains("\"root\"")));
        assert!(Permissions::role("owner").is_err_and(|e| e.contains("roles are")));
    }

    #[test]
    fn a_camera_scope_covers_only_its_cameras() {
        assert!(CameraScope::parse(None).covers("x"));
        assert!(CameraScope::parse(Some(" ")).covers("x"));
        let door = CameraScope::parse(Some("door, yard"));
        assert!(door.covers("yard") && !door.covers("garage"));
        assert_eq!(door.stored().as_deref(), Some("door,yard"));
    }
}
