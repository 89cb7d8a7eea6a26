//! The sources the server runs, in the order they were configured: read by every handler,
//! changed at run time by the camera API (`camera_admin.rs`). A source's tasks stop when it
//! leaves the set; a handler that looked it up before keeps a handle that sees no more frames.

use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::camera::{CameraHandle, CameraTasks};

#[derive(Debug, Default)]
pub struct CameraSet {
    entries: RwLock<Vec<(CameraHandle, CameraTasks)>>,
}

impl CameraSet {
    pub fn get(&self, name: &str) -> Option<CameraHandle> {
        self.read()
            .iter()
            .find(|(c, _)| c.settings.name == name)
            .map(|(c, _)| c.clone())
    }

    /// Every source now (a copy: the set may change while the caller works through it).
    pub fn all(&self) -> Vec<CameraHandle> {
        self.read().iter().map(|(c, _)| c.clone()).collect()
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// Adds a source after the others, or in place of the one of the same name (whose tasks
    /// stop).
    pub fn put(&self, camera: CameraHandle, tasks: CameraTasks) {
        let mut entries = self.write();
        match entries
            .iter_mut()
            .find(|(c, _)| c.settings.name == camera.settings.name)
        {
            Some(entry) => {
                entry.1.stop();
                *entry = (camera, tasks);
            }
            None => entries.push((camera, tasks)),
        }
    }

    /// Removes source `name` and stops its tasks; false when there was none.
    pub fn remove(&self, name: &str) -> bool {
        let mut entries = self.write();
        let Some(at) = entries.iter().position(|(c, _)| c.settings.name == name) else {
            return false;
        };
        let (_, tasks) = entries.remove(at);
        tasks.stop();
        true
    }

    fn read(&self) -> RwLockReadGuard<'_, Vec<(CameraHandle, CameraTasks)>> {
        self.entries.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Vec<(CameraHandle, CameraTasks)>> {
        self.entries.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The sources' tasks end with the set: a server whose start failed part-way (or any state
/// dropped) leaves no camera session running behind it. (Dropping an abort handle aborts
/// nothing.)
impl Drop for CameraSet {
    fn drop(&mut self) {
        for (_, tasks) in self.write().iter() {
            tasks.stop();
        }
    }
}
