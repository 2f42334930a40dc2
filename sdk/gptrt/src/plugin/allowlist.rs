//! SHA-256 pins of the plugin libraries a host accepts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

use super::plugin_error;

/// SHA-256 pins, one `HEX  FILE-NAME` per line (the format `sha256sum` prints); `#` comments.
#[derive(Debug, Clone, Default)]
pub struct Allowlist {
    pins: BTreeMap<String, String>,
    path: PathBuf,
}

impl Allowlist {
    /// Read an allowlist file.
    pub fn from_file(path: &Path) -> Result<Allowlist> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut pins = BTreeMap::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.split_whitespace();
            let (Some(hash), Some(file)) = (fields.next(), fields.next()) else {
                return Err(Error::Config {
                    path: path.to_path_buf(),
                    message: format!("line {}: expected `SHA256  FILE`", number + 1),
                });
            };
            if hash.len() != 64 || !hash.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(Error::Config {
                    path: path.to_path_buf(),
                    message: format!("line {}: {hash:?} is not a SHA-256", number + 1),
                });
            }
            let name = Path::new(file.trim_start_matches('*'))
                .file_name()
                .map(|n| n.to_string_lossy().into_owned());
            pins.insert(name.unwrap_or_default(), hash.to_ascii_lowercase());
        }
        Ok(Allowlist {
            pins,
            path: path.to_path_buf(),
        })
    }

    pub(super) fn check(&self, library: &Path, sha256: &str) -> Result<()> {
        let name = library
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match self.pins.get(&name) {
            Some(pinned) if pinned == sha256 => Ok(()),
            Some(pinned) => Err(plugin_error(
                library.display().to_string(),
                format!(
                    "SHA-256 mismatch: {} pins {pinned}, the file is {sha256}",
                    self.path.display()
                ),
            )),
            None => Err(plugin_error(
                library.display().to_string(),
                format!(
                    "not in the allowlist {} (its SHA-256 is {sha256})",
                    self.path.display()
                ),
            )),
        }
    }
}
