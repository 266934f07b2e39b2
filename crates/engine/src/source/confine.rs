//! Confinement of what a source's own metadata names to the source's declared location.
//!
//! A partner's CDM folder (`model.json` partition `location`s, a manifest's
//! `rootLocation` + `globPattern` and `entityPath`) and a Delta log (`add.path`) are
//! data, not paths to follow: each location they name must lie in the folder the
//! project declared, on the same storage. A [`SourceRoot`] is that folder; its
//! [`SourceRoot::check`] refuses, with [`Error::LocationOutsideSource`], a location on
//! another scheme (`file://` from a remote folder), another account, bucket, host or
//! container, or outside the folder's path once `.`, `..` and percent-encoding are
//! resolved. A local folder also refuses files that resolve outside it through a
//! symbolic link ([`SourceRoot::check_local_file`]).

use std::path::{Component, Path, PathBuf};

use lakecdp_core::SourceAccess;
use url::Url;

use crate::{Error, Result};

/// The declared folder of a source, against which the locations its metadata names
/// are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SourceRoot {
    /// The folder as the project declared it, for messages.
    shown: String,
    place: Place,
}

/// Where a location is, in a form that compares across spellings.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Place {
    /// An absolute local path, `.` and `..` resolved.
    Local(PathBuf),
    /// A remote object: the storage (`s3://bucket`, `azure://account/container`) and
    /// the decoded path segments.
    Remote {
        store: String,
        segments: Vec<String>,
    },
}

impl SourceRoot {
    /// The folder `folder` (a local path relative to `project_dir`, a `file://` URL, or
    /// an `s3://`, `abfss://`, `abfs://`, `az://` or Azure `https://` URL).
    pub(crate) fn new(
        folder: &str,
        access: Option<&SourceAccess>,
        project_dir: &Path,
    ) -> Result<Self> {
        let place = place_of(folder, access, project_dir).ok_or_else(|| {
            Error::Source(format!(
                "`{folder}` is not a folder lakecdp can read: use a local path, s3://, abfss:// or az://"
            ))
        })?;
        Ok(SourceRoot {
            shown: if folder.is_empty() {
                ".".to_string()
            } else {
                folder.to_string()
            },
            place,
        })
    }

    /// The folder of a table location (`partner/model.json` is in `partner`).
    pub(crate) fn of_file(
        location: &str,
        access: Option<&SourceAccess>,
        project_dir: &Path,
    ) -> Result<Self> {
        let folder = location.rsplit_once('/').map_or("", |(folder, _)| folder);
        // `file:///model.json`: the root folder
        let folder = if folder.ends_with(':') || folder.ends_with("://") {
            &location[..folder.len() + 1]
        } else {
            folder
        };
        Self::new(folder, access, project_dir)
    }

    /// Ok when `location` (as the readers resolve it: a path relative to the project,
    /// a `file://` URL, or a remote URL; globs allowed) lies in this folder.
    pub(crate) fn check(
        &self,
        table: &str,
        location: &str,
        access: Option<&SourceAccess>,
        project_dir: &Path,
    ) -> Result<()> {
        let inside = match (&self.place, place_of(location, access, project_dir)) {
            (Place::Local(root), Some(Place::Local(path))) => path.starts_with(root),
            (
                Place::Remote { store, segments },
                Some(Place::Remote {
                    store: other,
                    segments: path,
                }),
            ) => *store == other && path.starts_with(segments),
            _ => false,
        };
        if inside {
            Ok(())
        } else {
            Err(self.outside(table, location))
        }
    }

    /// Ok when the local file `file` (as listed) is in this local folder once symbolic
    /// links are resolved. Remote folders have no links: always Ok.
    pub(crate) fn check_local_file(&self, table: &str, file: &Path, name: &str) -> Result<()> {
        let Place::Local(root) = &self.place else {
            return Ok(());
        };
        let real = |p: &Path| {
            p.canonicalize()
                .map_err(|e| Error::Source(format!("cannot read {}: {e}", p.display())))
        };
        if real(file)?.starts_with(real(root)?) {
            Ok(())
        } else {
            Err(self.outside(table, name))
        }
    }

    /// The error for `location` of `table`, outside this folder.
    pub(crate) fn outside(&self, table: &str, location: &str) -> Error {
        Error::LocationOutsideSource {
            table: table.to_string(),
            location: location.to_string(),
            source_root: self.shown.clone(),
        }
    }
}

/// Where `location` is; `None` for a URL of a kind no reader reads.
fn place_of(location: &str, access: Option<&SourceAccess>, project_dir: &Path) -> Option<Place> {
    let Some((scheme, _)) = location.split_once("://") else {
        return Some(Place::Local(local_path(location, project_dir)));
    };
    let scheme = scheme.to_ascii_lowercase();
    if scheme == "file" {
        // read as the path after `file://`, as the local readers do
        return Some(Place::Local(local_path(&location[7..], project_dir)));
    }
    let url = Url::parse(location).ok()?;
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    let mut segments = decoded_segments(&url)?;
    let store = match scheme.as_str() {
        "s3" => format!("s3://{host}"),
        "abfss" | "abfs" => {
            let account = host.split('.').next().unwrap_or_default();
            format!("azure://{account}/{}", url.username())
        }
        "az" => {
            let account = match access {
                Some(SourceAccess::Adls {
                    account: Some(a), ..
                }) => a.to_ascii_lowercase(),
                _ => String::new(),
            };
            format!("azure://{account}/{host}")
        }
        "https"
            if host.ends_with(".dfs.core.windows.net")
                || host.ends_with(".blob.core.windows.net") =>
        {
            let account = host.split('.').next().unwrap_or_default();
            if segments.is_empty() {
                return None;
            }
            let container = segments.remove(0);
            format!("azure://{account}/{container}")
        }
        _ => return None,
    };
    Some(Place::Remote { store, segments })
}

/// The path segments of a URL (whose parser has resolved `.` and `..`, also written
/// `%2e`), percent-decoded; `None` when a decoded segment could still move elsewhere
/// (it is `.` or `..`, or holds a separator).
fn decoded_segments(url: &Url) -> Option<Vec<String>> {
    let mut segments = Vec::new();
    for raw in url.path_segments().into_iter().flatten() {
        if raw.is_empty() {
            continue;
        }
        let segment = percent_decode(raw)?;
        if segment == "." || segment == ".." || segment.contains(['/', '\\']) {
            return None;
        }
        segments.push(segment);
    }
    Some(segments)
}

/// `%XX` escapes decoded (as UTF-8); `None` when the result is not UTF-8.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h)? * 16 + hex(l)?) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// An absolute local path (relative ones are relative to `project_dir`), with `.` and
/// `..` resolved without touching the disk.
fn local_path(path: &str, project_dir: &Path) -> PathBuf {
    let path = Path::new(path);
    let full = if path.is_absolute() {
        path.to_path_buf()
    } else {
        project_dir.join(path)
    };
    let mut out = PathBuf::new();
    for c in full.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adls(account: &str) -> SourceAccess {
        SourceAccess::Adls {
            account: Some(account.into()),
            account_key: None,
            sas_token: None,
            endpoint: None,
            emulator: false,
            credentials: Default::default(),
        }
    }

    fn check(root: &str, location: &str) -> std::result::Result<(), String> {
        let access = adls("acct");
        let dir = Path::new("/project");
        SourceRoot::new(root, Some(&access), dir)
            .unwrap()
            .check("T", location, Some(&access), dir)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn local_locations_stay_in_the_folder() {
        assert!(check("partner", "partner/Customers/p.csv").is_ok());
        assert!(check("partner", "partner/./Customers/../Customers/*.csv").is_ok());
        assert!(check("partner", "/project/partner/p.csv").is_ok());
        assert!(check("partner", "file:///project/partner/p.csv").is_ok());
        assert!(check("/data/partner", "/data/partner/x/y.csv").is_ok());
        for outside in [
            "partner/../other/x.csv",
            "other/x.csv",
            "/etc/passwd",
            "file:///etc/passwd",
            "partner/../../etc/passwd",
            "partnerx/p.csv",
            "s3://bucket/partner/p.csv",
        ] {
            let err = check("partner", outside).unwrap_err();
            assert!(
                err.contains(&format!("`{outside}`")) && err.contains("`partner`"),
                "{err}"
            );
        }
    }

    #[test]
    fn remote_locations_stay_in_the_same_store_and_folder() {
        let root = "abfss://cont@acct.dfs.core.windows.net/partner/Sales";
        for inside in [
            "abfss://cont@acct.dfs.core.windows.net/partner/Sales/Customers/p.csv",
            "abfss://cont@acct.dfs.core.windows.net/partner/Sales/a/../b/*.csv",
            "az://cont/partner/Sales/p.csv",
            "https://acct.blob.core.windows.net/cont/partner/Sales/p.csv",
            "abfss://cont@ACCT.dfs.core.windows.net/partner/Sales/p%20q.csv",
        ] {
            assert!(check(root, inside).is_ok(), "{inside}");
        }
        for outside in [
            "abfss://cont@acct.dfs.core.windows.net/partner/Sales/../Other/p.csv",
            "abfss://cont@acct.dfs.core.windows.net/partner/Sales/%2e%2e/Other/p.csv",
            "abfss://cont@acct.dfs.core.windows.net/partner/Sales/..%2fOther/p.csv",
            "abfss://cont@acct.dfs.core.windows.net/partner/SalesX/p.csv",
            "abfss://other@acct.dfs.core.windows.net/partner/Sales/p.csv",
            "abfss://cont@evil.dfs.core.windows.net/partner/Sales/p.csv",
            "https://evil.blob.core.windows.net/cont/partner/Sales/p.csv",
            "file:///etc/passwd",
            "/etc/passwd",
            "s3://cont/partner/Sales/p.csv",
            "http://169.254.169.254/latest/meta-data",
        ] {
            assert!(check(root, outside).is_err(), "{outside}");
        }
        let s3 = "s3://bucket/partner";
        assert!(check(s3, "s3://bucket/partner/x/p.parquet").is_ok());
        assert!(check(s3, "s3://bucket/partner/x/../../secret").is_err());
        assert!(check(s3, "s3://other/partner/x").is_err());
    }

    #[test]
    fn the_folder_of_a_table_location() {
        let dir = Path::new("/project");
        let root = SourceRoot::of_file("partner/Sales/model.json", None, dir).unwrap();
        assert_eq!(root.shown, "partner/Sales");
        assert!(root.check("T", "partner/Sales/a.csv", None, dir).is_ok());
        let root = SourceRoot::of_file("model.json", None, dir).unwrap();
        assert!(root.check("T", "a/b.csv", None, dir).is_ok());
        assert!(root.check("T", "../b.csv", None, dir).is_err());
        let root = SourceRoot::of_file("s3://bucket/model.json", None, dir).unwrap();
        assert!(root.check("T", "s3://bucket/a/b.csv", None, dir).is_ok());
        assert!(root.check("T", "s3://other/a/b.csv", None, dir).is_err());
    }
}
