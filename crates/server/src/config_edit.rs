//! Camera tables changed in `lockstep.toml` at run time (`POST/PUT/DELETE /api/cameras/{name}`):
//! the file is edited as a document (toml_edit), so its comments, key order and the other
//! sections stay as a person wrote them, and only the named camera's table changes. The result
//! is checked by the same parser as at start ([`Config::parse`]): a change the server would
//! refuse at its next start is refused now, with the same words. Secrets are never shown back:
//! a table read through the API says `***` for them, and `***` written back means "keep".

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use toml_edit::{ArrayOfTables, DocumentMut, Item, Table};

use crate::config::{CameraConfig, Config};

/// What the API shows and takes in place of a secret.
pub const HIDDEN: &str = "***";
/// Keys whose value is a password.
const PASSWORD_KEYS: [&str; 3] = ["password", "password_file", "password_env"];
/// Keys whose value is a URL that may carry credentials.
const URL_KEYS: [&str; 3] = ["url", "substream_url", "isapi_url"];

/// Why a change is not made.
#[derive(Debug, PartialEq, Eq)]
pub enum EditError {
    /// The request is wrong (a bad value, a table the parser refuses): the reason.
    Invalid(String),
    /// No camera of that name is in the file.
    NotFound(String),
    /// A camera of that name is already there.
    Exists(String),
    /// The file itself cannot be read, parsed or written.
    File(String),
}

impl std::fmt::Display for EditError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EditError::Invalid(m)
            | EditError::NotFound(m)
            | EditError::Exists(m)
            | EditError::File(m) => f.write_str(m),
        }
    }
}

/// Where the cameras' tables live: the config file, or (the demo, a config given as text)
/// memory only, so that changes apply to the run and are said to be unsaved.
#[derive(Debug)]
pub struct ConfigFile {
    path: Option<PathBuf>,
    memory: std::sync::Mutex<String>,
}

impl ConfigFile {
    /// Changes go to `path`, or without one to `text` in memory.
    pub fn new(path: Option<PathBuf>, text: &str) -> Self {
        ConfigFile {
            path,
            memory: std::sync::Mutex::new(text.to_owned()),
        }
    }

    /// The file changes are saved to (`None`: they last until the server stops).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The text as it is now: read again each time, so hand edits made since start are kept.
    pub fn read(&self) -> Result<String, EditError> {
        match &self.path {
            Some(path) => std::fs::read_to_string(path)
                .map_err(|e| EditError::File(format!("cannot read {}: {e}", path.display()))),
            None => Ok(self.memory_text().clone()),
        }
    }

    /// Replaces the text: written beside the file, flushed, then renamed over it, so a crash
    /// leaves the old file or the new one, never half of one. The file keeps its permissions
    /// (it may hold passwords).
    pub fn write(&self, text: &str) -> Result<(), EditError> {
        match &self.path {
            Some(path) => write_atomically(path, text)
                .map_err(|e| EditError::File(format!("cannot write {}: {e}", path.display()))),
            None => {
                *self.memory_text() = text.to_owned();
                Ok(())
            }
        }
    }

    fn memory_text(&self) -> std::sync::MutexGuard<'_, String> {
        self.memory
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Parses `text` as the server would at start, and returns camera `name` as configured.
    pub fn check(&self, text: &str, name: &str) -> Result<Option<CameraConfig>, EditError> {
        let shown = self
            .path
            .as_ref()
            .map_or("the configuration".to_owned(), |p| p.display().to_string());
        let config = Config::parse(text, &shown).map_err(|e| EditError::Invalid(e.to_string()))?;
        Ok(config.cameras.into_iter().find(|c| c.name.as_str() == name))
    }
}

fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let file_name = path.file_name().unwrap_or_default().to_string_lossy();
    let temporary = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&temporary);
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temporary)?;
        if let Ok(metadata) = std::fs::metadata(path) {
            file.set_permissions(metadata.permissions())?;
        }
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)?;
        // The rename itself is durable once the folder is (Unix; Windows has no such call).
        #[cfg(unix)]
        std::fs::File::open(dir)?.sync_all()?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result
}

fn parse(text: &str) -> Result<DocumentMut, EditError> {
    text.parse::<DocumentMut>()
        .map_err(|e| EditError::File(format!("the configuration is not valid TOML: {e}")))
}

fn cameras(document: &mut DocumentMut) -> Result<&mut ArrayOfTables, EditError> {
    let item = document
        .entry("camera")
        .or_insert(Item::ArrayOfTables(ArrayOfTables::new()));
    item.as_array_of_tables_mut().ok_or_else(|| {
        EditError::File("`camera` in the configuration is not a list of [[camera]] tables".into())
    })
}

fn position(cameras: &ArrayOfTables, name: &str) -> Option<usize> {
    cameras
        .iter()
        .position(|t| t.get("name").and_then(Item::as_str) == Some(name))
}

/// `text` with a `[[camera]]` table for `name` added after the others.
pub fn add_camera(
    text: &str,
    name: &str,
    fields: &Map<String, Value>,
) -> Result<String, EditError> {
    let mut document = parse(text)?;
    let cameras = cameras(&mut document)?;
    if position(cameras, name).is_some() {
        return Err(EditError::Exists(format!(
            "a camera named {name:?} is already configured"
        )));
    }
    let mut table = Table::new();
    table.insert("name", toml_edit::value(name));
    for (key, value) in fields {
        if let Some(value) = toml_value(key, value)? {
            table.insert(key, Item::Value(value));
        }
    }
    cameras.push(table);
    Ok(document.to_string())
}

/// `text` with camera `name`'s table changed to `fields`: unchanged values stay as written
/// (comments included), changed ones keep their trailing comment, missing ones are removed —
/// except secrets, which a request that omits them, or says `***`, keeps.
pub fn replace_camera(
    text: &str,
    name: &str,
    fields: &Map<String, Value>,
) -> Result<String, EditError> {
    let mut document = parse(text)?;
    let cameras = cameras(&mut document)?;
    let at = position(cameras, name).ok_or_else(|| not_in_file(name))?;
    let table = cameras.get_mut(at).expect("position found it");
    let fields = with_secrets_kept(table, fields)?;
    let obsolete: Vec<String> = table
        .iter()
        .map(|(key, _)| key.to_owned())
        .filter(|key| key != "name" && !fields.contains_key(key))
        .collect();
    for key in obsolete {
        table.remove(&key);
    }
    for (key, value) in &fields {
        let Some(mut value) = toml_value(key, value)? else {
            table.remove(key);
            continue;
        };
        match table.get_mut(key).and_then(Item::as_value_mut) {
            Some(old) if same_value(old, &value) => {}
            Some(old) => {
                *value.decor_mut() = old.decor().clone();
                *old = value;
            }
            None => {
                table.insert(key, Item::Value(value));
            }
        }
    }
    Ok(document.to_string())
}

/// `text` without camera `name`'s table.
pub fn remove_camera(text: &str, name: &str) -> Result<String, EditError> {
    let mut document = parse(text)?;
    let cameras = cameras(&mut document)?;
    let at = position(cameras, name).ok_or_else(|| not_in_file(name))?;
    cameras.remove(at);
    Ok(document.to_string())
}

/// Camera `name`'s table as written, secrets shown as [`HIDDEN`] (`None`: not in the file).
pub fn camera_fields(text: &str, name: &str) -> Result<Option<Map<String, Value>>, EditError> {
    let mut document = parse(text)?;
    let cameras = cameras(&mut document)?;
    let Some(at) = position(cameras, name) else {
        return Ok(None);
    };
    let table = cameras.get(at).expect("position found it");
    let mut fields = Map::new();
    for (key, item) in table.iter() {
        let Some(value) = item.as_value() else {
            continue;
        };
        let shown = match value {
            toml_edit::Value::String(s) if key == "password" => Value::from(HIDDEN),
            toml_edit::Value::String(s) if URL_KEYS.contains(&key) => {
                Value::from(hidden_url(s.value()))
            }
            toml_edit::Value::String(s) => Value::from(s.value().as_str()),
            toml_edit::Value::Integer(i) => Value::from(*i.value()),
            toml_edit::Value::Float(f) => Value::from(*f.value()),
            toml_edit::Value::Boolean(b) => Value::from(*b.value()),
            other => Value::from(other.to_string().trim()),
        };
        fields.insert(key.to_owned(), shown);
    }
    Ok(Some(fields))
}

fn not_in_file(name: &str) -> EditError {
    EditError::NotFound(format!(
        "camera {name:?} is not a [[camera]] table of the configuration (a push source or a \
         demo camera is changed in its own section)"
    ))
}

/// A URL with its credentials written as `***` (as the API shows every camera URL).
fn hidden_url(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(url) => lockstep_rtsp::redact::redacted_url(&url),
        // Not a URL: the parser refuses it at start anyway; show nothing of it.
        Err(_) => HIDDEN.to_owned(),
    }
}

/// `fields` with the table's secrets put back where the request omits them or says `***`.
fn with_secrets_kept(
    table: &Table,
    fields: &Map<String, Value>,
) -> Result<Map<String, Value>, EditError> {
    let mut fields = fields.clone();
    let old = |key: &str| table.get(key).and_then(Item::as_str).map(str::to_owned);
    let gives_password = PASSWORD_KEYS.iter().any(|key| fields.contains_key(*key));
    for key in PASSWORD_KEYS {
        // `password` beside a `url` is refused by the parser: a URL carries its own.
        let fits = key != "password" || !fields.contains_key("url");
        match (fields.get(key), old(key)) {
            (None, Some(stored)) if !gives_password && fits => {
                fields.insert(key.to_owned(), Value::from(stored));
            }
            (Some(Value::String(s)), stored) if s == HIDDEN => {
                let stored = stored.ok_or_else(|| {
                    EditError::Invalid(format!(
                        "{key} is {HIDDEN:?}, which keeps the stored one, and none is stored"
                    ))
                })?;
                fields.insert(key.to_owned(), Value::from(stored));
            }
            _ => {}
        }
    }
    for key in URL_KEYS {
        let (Some(Value::String(given)), Some(stored)) = (fields.get(key), old(key)) else {
            continue;
        };
        if let Some(url) = url_with_stored_credentials(given, &stored) {
            fields.insert(key.to_owned(), Value::from(url));
        }
    }
    Ok(fields)
}

/// `given` with `stored`'s user and password where it says `***` for them; the whole stored
/// URL when `given` is exactly what the API showed of it. `None`: nothing to put back.
fn url_with_stored_credentials(given: &str, stored: &str) -> Option<String> {
    if given == hidden_url(stored) {
        return Some(stored.to_owned());
    }
    let stored = url::Url::parse(stored).ok()?;
    let mut url = url::Url::parse(given).ok()?;
    let hidden = |part: &str| part == HIDDEN || part == "%2A%2A%2A";
    let mut changed = false;
    if hidden(url.username()) {
        url.set_username(stored.username()).ok()?;
        changed = true;
    }
    if url.password().is_some_and(hidden) {
        url.set_password(stored.password()).ok()?;
        changed = true;
    }
    changed.then(|| url.to_string())
}

/// A JSON value as a TOML one (`None` for `null`: the key is removed).
fn toml_value(key: &str, value: &Value) -> Result<Option<toml_edit::Value>, EditError> {
    if key == "name" {
        return Err(EditError::Invalid(
            "the camera's name is the one in the request's path, not a field".into(),
        ));
    }
    Ok(Some(match value {
        Value::Null => return Ok(None),
        Value::Bool(b) => toml_edit::Value::from(*b),
        Value::String(s) => toml_edit::Value::from(s.as_str()),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => toml_edit::Value::from(i),
            (None, Some(f)) => toml_edit::Value::from(f),
            _ => return Err(EditError::Invalid(format!("{key}: {n} is out of range"))),
        },
        Value::Array(_) | Value::Object(_) => {
            return Err(EditError::Invalid(format!(
                "{key}: a camera's settings are text, numbers or true/false"
            )))
        }
    }))
}

fn same_value(old: &toml_edit::Value, new: &toml_edit::Value) -> bool {
    use toml_edit::Value::{Boolean, Float, Integer, String};
    match (old, new) {
        (String(a), String(b)) => a.value() == b.value(),
        (Integer(a), Integer(b)) => a.value() == b.value(),
        (Float(a), Float(b)) => a.value() == b.value(),
        (Boolean(a), Boolean(b)) => a.value() == b.value(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const FILE: &str = r#"# My cameras.
[server]
listen = "127.0.0.1:8080" # the UI

# The porch: its audio is noisy.
[[camera]]
name = "porch"
url = "rtsp://admin:s3cret@10.0.0.5/stream1" # main stream
audio = false # wind

[[camera]]
name = "garage"
brand = "hikvision"
host = "10.0.0.6"
username = "admin"
password = "hunter2"
"#;

    fn fields(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn an_added_camera_goes_after_the_others_and_the_rest_stays_as_written() {
        let text = add_camera(
            FILE,
            "yard",
            &fields(json!({"url": "rtsp://10.0.0.7/live", "record": "off"})),
        )
        .unwrap();
        assert!(text.starts_with(FILE), "{text}");
        assert!(text.ends_with(
            "[[camera]]\nname = \"yard\"\nrecord = \"off\"\nurl = \"rtsp://10.0.0.7/live\"\n"
        ));
        let config = Config::parse(&text, "t").unwrap();
        assert_eq!(config.cameras.len(), 3);
        assert_eq!(
            add_camera(FILE, "porch", &Map::new()),
            Err(EditError::Exists(
                "a camera named \"porch\" is already configured".into()
            ))
        );
    }

    #[test]
    fn a_changed_camera_keeps_its_comments_and_its_password() {
        let text = replace_camera(
            FILE,
            "porch",
            &fields(json!({"url": "rtsp://***:***@10.0.0.5/stream1", "audio": true})),
        )
        .unwrap();
        assert!(text.contains("# The porch: its audio is noisy.\n[[camera]]\nname = \"porch\""));
        assert!(text.contains("url = \"rtsp://admin:s3cret@10.0.0.5/stream1\" # main stream"));
        assert!(text.contains("audio = true # wind"), "{text}");
        // A new path with the hidden credentials keeps the stored ones.
        let text = replace_camera(
            FILE,
            "porch",
            &fields(json!({"url": "rtsp://***:***@10.0.0.5/stream2"})),
        )
        .unwrap();
        assert!(text.contains("url = \"rtsp://admin:s3cret@10.0.0.5/stream2\" # main stream"));
        assert!(
            !text.contains("audio ="),
            "an omitted setting goes back to its default"
        );
        // A brand camera keeps its password when the request omits it or says ***.
        for given in [json!({}), json!({"password": "***"})] {
            let mut request = fields(json!({"brand": "hikvision", "host": "10.0.0.9"}));
            request.extend(fields(given));
            let text = replace_camera(FILE, "garage", &request).unwrap();
            assert!(text.contains("password = \"hunter2\""), "{text}");
            assert!(!text.contains("username"), "{text}");
        }
        // null removes it.
        let text = replace_camera(
            FILE,
            "garage",
            &fields(json!({"brand": "hikvision", "host": "10.0.0.9", "password": null})),
        )
        .unwrap();
        assert!(!text.contains("hunter2"));
        assert!(matches!(
            replace_camera(FILE, "porch", &fields(json!({"password": "***"}))),
            Err(EditError::Invalid(_))
        ));
        assert!(matches!(
            replace_camera(FILE, "attic", &Map::new()),
            Err(EditError::NotFound(_))
        ));
    }

    #[test]
    fn a_removed_camera_takes_only_its_table() {
        let text = remove_camera(FILE, "porch").unwrap();
        assert!(!text.contains("porch") && !text.contains("s3cret"));
        assert!(text.contains("listen = \"127.0.0.1:8080\" # the UI"));
        assert_eq!(Config::parse(&text, "t").unwrap().cameras.len(), 1);
        assert!(matches!(
            remove_camera(FILE, "attic"),
            Err(EditError::NotFound(_))
        ));
    }

    #[test]
    fn a_table_read_back_hides_every_secret() {
        let porch = camera_fields(FILE, "porch").unwrap().unwrap();
        assert_eq!(porch["url"], "rtsp://***:***@10.0.0.5/stream1");
        let garage = camera_fields(FILE, "garage").unwrap().unwrap();
        assert_eq!(garage["password"], HIDDEN);
        assert_eq!(garage["username"], "admin");
        let shown = serde_json::to_string(&[porch, garage]).unwrap();
        assert!(!shown.contains("s3cret") && !shown.contains("hunter2"));
        assert_eq!(camera_fields(FILE, "attic").unwrap(), None);
    }

    #[test]
    fn values_that_are_no_setting_are_refused_with_the_key() {
        for (request, words) in [
            (json!({"url": ["a"]}), "url: a camera's settings are text"),
            (
                json!({"name": "x"}),
                "the camera's name is the one in the request's path",
            ),
        ] {
            let Err(EditError::Invalid(message)) = add_camera(FILE, "yard", &fields(request))
            else {
                panic!("refused expected");
            };
            assert!(message.contains(words), "{message}");
        }
        assert!(matches!(
            add_camera("camera = 3", "yard", &Map::new()),
            Err(EditError::File(_))
        ));
    }

    #[test]
    fn a_written_file_replaces_the_old_one_whole_and_keeps_its_mode() {
        let dir = std::env::temp_dir().join(format!("lockstep-edit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("lockstep.toml");
        std::fs::write(&path, FILE).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let file = ConfigFile::new(Some(path.clone()), "");
        let text = remove_camera(&file.read().unwrap(), "garage").unwrap();
        file.write(&text).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file is left");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
