//! Temporary directories named `nslab-<what>-<pid>-<n>` under the system temp dir, removed on
//! drop (on success, on error, and, with [`crate::signals::hold_interrupts`], on Ctrl-C).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// A temp directory, removed with everything in it when dropped.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Create `nslab-<what>-<pid>-<n>` under the temp dir (mode 0755, so another UID can enter
    /// it). Panics when it cannot (tests); demos use [`TempDir::create`].
    pub fn new(what: &str) -> TempDir {
        TempDir::create(what).expect("create temp dir")
    }

    /// Create `nslab-<what>-<pid>-<n>` under the temp dir.
    pub fn create(what: &str) -> Result<TempDir> {
        let path = std::env::temp_dir().join(crate::unique_name(what));
        fs::create_dir(&path).with_context(|| format!("mkdir({})", path.display()))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
            .with_context(|| format!("chmod({})", path.display()))?;
        Ok(TempDir(path))
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}
