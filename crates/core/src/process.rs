//! The processes of an environment: one typed id for the refresh graph, the run
//! records, the exports and the lake folders each process writes.
//!
//! Written as text (`Display`/`FromStr`), a process is `ingest:<Source>`, `unify`,
//! `activities`, `measures`, `segments`, `reports` or `export:<Name>`; its folder in the
//! lake is [`Process::folder`].

use std::fmt;
use std::str::FromStr;

/// A process folder of the layout.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Process {
    /// `DataIngestion/<Source>`.
    Ingestion(String),
    /// `Unification`.
    Unification,
    /// `Activities`.
    Activities,
    /// `Measures`.
    Measures,
    /// `Segments`.
    Segments,
    /// `Reports`: the data of profile reports.
    Reports,
    /// `Exports/<ExportName>`.
    Export(String),
}

impl Process {
    /// The folder, relative to the environment root.
    pub fn folder(&self) -> String {
        match self {
            Process::Ingestion(source) => format!("DataIngestion/{source}"),
            Process::Unification => "Unification".into(),
            Process::Activities => "Activities".into(),
            Process::Measures => "Measures".into(),
            Process::Segments => "Segments".into(),
            Process::Reports => "Reports".into(),
            Process::Export(name) => format!("Exports/{name}"),
        }
    }

    /// The process of a folder as [`folder`](Self::folder) writes it
    /// (`Unification`, `DataIngestion/Crm`, `Exports/nightly`), if it is one.
    pub fn from_folder(folder: &str) -> Option<Process> {
        match folder.split_once('/') {
            None => match folder {
                "Unification" => Some(Process::Unification),
                "Activities" => Some(Process::Activities),
                "Measures" => Some(Process::Measures),
                "Segments" => Some(Process::Segments),
                "Reports" => Some(Process::Reports),
                _ => None,
            },
            Some(("DataIngestion", source)) if !source.is_empty() && !source.contains('/') => {
                Some(Process::Ingestion(source.to_string()))
            }
            Some(("Exports", name)) if !name.is_empty() && !name.contains('/') => {
                Some(Process::Export(name.to_string()))
            }
            Some(_) => None,
        }
    }

    /// The `name` of its `model.json`.
    pub fn model_name(&self) -> String {
        match self {
            Process::Ingestion(source) => source.clone(),
            Process::Export(name) => name.clone(),
            other => other.folder(),
        }
    }
}

impl fmt::Display for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Process::Ingestion(source) => write!(f, "ingest:{source}"),
            Process::Unification => f.write_str("unify"),
            Process::Activities => f.write_str("activities"),
            Process::Measures => f.write_str("measures"),
            Process::Segments => f.write_str("segments"),
            Process::Reports => f.write_str("reports"),
            Process::Export(name) => write!(f, "export:{name}"),
        }
    }
}

impl FromStr for Process {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let named = |prefix: &str, name: &str| {
            if name.is_empty() || name.contains('/') {
                Err(format!("`{s}` names no {prefix}: write {prefix}:<Name>"))
            } else {
                Ok(name.to_string())
            }
        };
        if let Some(source) = s.strip_prefix("ingest:") {
            return named("ingest", source).map(Process::Ingestion);
        }
        if let Some(export) = s.strip_prefix("export:") {
            return named("export", export).map(Process::Export);
        }
        match s {
            "unify" => Ok(Process::Unification),
            "activities" => Ok(Process::Activities),
            "measures" => Ok(Process::Measures),
            "segments" => Ok(Process::Segments),
            "reports" => Ok(Process::Reports),
            other => Err(format!(
                "unknown process `{other}`: the processes are ingest:<Source>, unify, activities, \
                 measures, segments, reports and export:<Name>"
            )),
        }
    }
}

impl serde::Serialize for Process {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Process {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_folder_round_trip() {
        for p in [
            Process::Ingestion("Crm".into()),
            Process::Unification,
            Process::Activities,
            Process::Measures,
            Process::Segments,
            Process::Reports,
            Process::Export("nightly".into()),
        ] {
            assert_eq!(p.to_string().parse::<Process>(), Ok(p.clone()));
            assert_eq!(Process::from_folder(&p.folder()), Some(p.clone()));
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(serde_json::from_str::<Process>(&json).unwrap(), p);
        }
        assert_eq!(Process::Ingestion("Crm".into()).to_string(), "ingest:Crm");
        assert!("ingest:".parse::<Process>().is_err());
        assert!("export:a/b".parse::<Process>().is_err());
        assert!("refresh"
            .parse::<Process>()
            .unwrap_err()
            .contains("unknown process"));
    }
}
