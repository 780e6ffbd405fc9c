//! The manifest: which schemas, tables and views the users created, in one small JSON
//! file (`<data_dir>/catalog.json`) that is replaced atomically on every change.
//!
//! Table *data* lives in Delta tables; the manifest only names them. It is the commit
//! point of every catalog change: a table whose directory exists but which the manifest
//! does not list was never finished (a crash mid-`CREATE TABLE AS`) and is removed the
//! next time the name is used.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// File name of the manifest inside the data dir.
pub const MANIFEST_FILE: &str = "catalog.json";

/// Why the manifest could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not a manifest this version understands.
    #[error("{path} is not a valid userql catalog file: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// Everything users created, in creation order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Format version, for future migrations.
    pub version: u32,
    /// Schemas created with `CREATE SCHEMA` (not `public` / `channels`, which always exist).
    pub schemas: Vec<String>,
    /// Tables, each a Delta table under the data dir.
    pub tables: Vec<TableEntry>,
    /// Views, as SQL re-planned when the server starts and when tables change.
    pub views: Vec<ViewEntry>,
}

/// One stored table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableEntry {
    pub schema: String,
    pub name: String,
    /// The Delta table's directory, relative to the data dir.
    pub dir: String,
    /// Set while a rename moves the directory: where it was. If the server stopped
    /// between writing this manifest and moving the directory, opening finishes the move.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moved_from: Option<String>,
}

/// One stored view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViewEntry {
    pub schema: String,
    pub name: String,
    /// The view's query.
    pub sql: String,
    /// The schema unqualified names in `sql` resolve against (the creator's
    /// `search_path` at creation, as PostgreSQL binds names when a view is created).
    pub default_schema: String,
}

impl Manifest {
    /// Read the manifest of a data dir; a data dir without one has created nothing yet.
    pub fn load(data_dir: &Path) -> Result<Self, ManifestError> {
        let path = data_dir.join(MANIFEST_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Manifest {
                    version: 1,
                    ..Default::default()
                });
            }
            Err(source) => return Err(ManifestError::Io { path, source }),
        };
        serde_json::from_str(&text).map_err(|e| ManifestError::Invalid {
            path,
            message: e.to_string(),
        })
    }

    /// Replace the manifest atomically: write a temporary file, flush it to disk, rename
    /// it over the old one and flush the directory, so a crash leaves either the old or
    /// the new manifest, never a torn one.
    pub fn save(&self, data_dir: &Path) -> Result<(), ManifestError> {
        let path = data_dir.join(MANIFEST_FILE);
        let tmp = data_dir.join(format!("{MANIFEST_FILE}.tmp"));
        let io = |source| ManifestError::Io {
            path: path.clone(),
            source,
        };
        let text = serde_json::to_string_pretty(self).map_err(|e| ManifestError::Invalid {
            path: path.clone(),
            message: e.to_string(),
        })?;
        {
            let mut f = std::fs::File::create(&tmp).map_err(io)?;
            f.write_all(text.as_bytes()).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, &path).map_err(io)?;
        if let Ok(dir) = std::fs::File::open(data_dir) {
            // Directory fsync is not supported everywhere; the rename is already atomic.
            let _ = dir.sync_all();
        }
        Ok(())
    }

    /// Whether a schema was created by a user.
    pub fn has_schema(&self, schema: &str) -> bool {
        self.schemas.iter().any(|s| s == schema)
    }

    /// The table `schema.name`, if stored.
    pub fn table(&self, schema: &str, name: &str) -> Option<&TableEntry> {
        self.tables
            .iter()
            .find(|t| t.schema == schema && t.name == name)
    }

    /// The view `schema.name`, if stored.
    pub fn view(&self, schema: &str, name: &str) -> Option<&ViewEntry> {
        self.views
            .iter()
            .find(|v| v.schema == schema && v.name == name)
    }

    /// A directory (relative to the data dir) for a new table: `<schema>/<table>`, each
    /// part made safe as a file name.
    pub fn table_dir(schema: &str, name: &str) -> String {
        format!("{}/{}", file_safe(schema), file_safe(name))
    }
}

/// A name as a file-name component: letters, digits, `_` and `-` stay; anything else
/// (`/`, `.`, spaces, non-ASCII) becomes `%XX` per UTF-8 byte, so distinct names stay
/// distinct and none can escape the data dir.
pub fn file_safe(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_then_load_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let m = Manifest {
            version: 1,
            schemas: vec!["marts".into()],
            tables: vec![TableEntry {
                schema: "marts".into(),
                name: "people".into(),
                dir: Manifest::table_dir("marts", "people"),
                moved_from: None,
            }],
            views: vec![ViewEntry {
                schema: "marts".into(),
                name: "v".into(),
                sql: "SELECT * FROM people".into(),
                default_schema: "marts".into(),
            }],
        };
        m.save(dir.path()).unwrap();
        assert_eq!(Manifest::load(dir.path()).unwrap(), m);
        assert!(!dir.path().join("catalog.json.tmp").exists());
    }

    #[test]
    fn missing_manifest_is_empty_and_garbage_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Manifest::load(dir.path()).unwrap().tables.is_empty());
        std::fs::write(dir.path().join(MANIFEST_FILE), "{not json").unwrap();
        assert!(matches!(
            Manifest::load(dir.path()),
            Err(ManifestError::Invalid { .. })
        ));
    }

    #[test]
    fn names_become_safe_distinct_file_names() {
        assert_eq!(file_safe("people_2024"), "people_2024");
        assert_eq!(file_safe("../etc"), "%2E%2E%2Fetc");
        assert_eq!(file_safe("a b"), "a%20b");
        assert_ne!(file_safe("a.b"), file_safe("a_b"));
        assert_eq!(Manifest::table_dir("marts", "T"), "marts/T");
    }
}
