//! The project file, `lakecdp.toml`: the environment a project declares.
//!
//! Parsing never stops at the first problem it can avoid: every validation error is
//! returned at once, each naming the dotted key, the line in the file and the fix.

use std::ops::Range;

use serde::{Deserialize, Serialize};
use toml::de::{DeTable, DeValue};

use crate::environment::{PartitionFormat, DEFAULT_RETENTION_RUNS};
use crate::error::{ConfigError, ConfigErrors};
use crate::ids::EnvironmentId;
use crate::source::SourceSpec;
use crate::storage::StorageConfig;

/// The conventional file name of a project file.
pub const PROJECT_FILE: &str = "lakecdp.toml";

/// A parsed and validated project file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectFile {
    /// The environment the project declares.
    pub environment: EnvironmentSpec,
    /// Data sources (`[[sources]]`), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<SourceSpec>,
    /// Unification (`[unification]`): which tables become customer profiles, and how.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unification: Option<crate::unify::UnificationSpec>,
    /// Activities (`[[activities]]`): source rows that tell what customers did.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub activities: Vec<crate::activity::ActivitySpec>,
    /// Measures (`[[measures]]`): values computed per customer or for the business.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub measures: Vec<crate::measure::MeasureSpec>,
    /// Segments (`[[segments]]`): sets of customers defined by rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub segments: Vec<crate::segment::SegmentSpec>,
}

/// The `[environment]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentSpec {
    /// Display name, unique in the catalog; `apply` finds the environment by it.
    pub name: String,
    /// A fixed id, when the environment must keep one (e.g. to re-attach an existing
    /// lake folder). Assigned at creation otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<EnvironmentId>,
    /// The region the environment runs in; compared with the storage's region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Partition format of process outputs: `csv` (default) or `parquet`.
    #[serde(default)]
    pub output_format: PartitionFormat,
    /// How many runs of each process are kept in the lake (default 3).
    #[serde(default = "default_retention")]
    pub retention_runs: u32,
    /// When `lakecdp scheduler` starts a refresh: `off` (the default), `daily 02:00
    /// Europe/Paris`, `daily 06:00,18:00 UTC` or `weekly mon,thu 02:00 UTC`.
    #[serde(default = "schedule_off", skip_serializing_if = "is_off")]
    pub refresh_schedule: crate::export::ExportSchedule,
    /// Where the processes run: `local` (DataFusion in this process, the default) or a
    /// Ballista cluster, standalone in this process or behind a scheduler.
    #[serde(default, skip_serializing_if = "EngineChoice::is_local")]
    pub engine: EngineChoice,
    /// Where the lake is.
    pub storage: StorageConfig,
}

/// Where an environment's processes run. Every process takes its session from this one
/// choice. Written `engine = "local"`, `engine = { kind = "ballista", mode = "standalone" }`
/// or `engine = { kind = "ballista", scheduler = "df://host:50050" }`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EngineChoice {
    /// DataFusion in the process that runs the refresh.
    #[default]
    Local,
    /// A Ballista scheduler and executor started inside the process that runs the
    /// refresh: the cluster's code paths on one machine, for tests and trials.
    BallistaStandalone,
    /// A Ballista cluster of lakecdp's own scheduler and executors
    /// (`lakecdp cluster scheduler`, `lakecdp cluster executor`).
    Ballista {
        /// The scheduler, `df://host:port`.
        scheduler: String,
        /// How many tasks a table's load and a rule's pair finding are cut into
        /// (`tasks = N`; [`DEFAULT_CLUSTER_TASKS`] when not written): about the
        /// executors' task slots in all.
        tasks: Option<u16>,
        /// Every executor mounts the project's local folders at the same paths
        /// (`shared_files = true`): tables in local folders load on the cluster too.
        /// Otherwise only tables in remote storage do, and the others load in the
        /// refreshing process.
        shared_files: bool,
    },
}

/// Tasks a table's load and a rule's pair finding are cut into on a cluster whose
/// engine does not say.
pub const DEFAULT_CLUSTER_TASKS: u16 = 4;

/// The port of a Ballista scheduler when its address names none.
pub const DEFAULT_SCHEDULER_PORT: u16 = 50050;

impl EngineChoice {
    /// True for the local engine.
    pub fn is_local(&self) -> bool {
        *self == EngineChoice::Local
    }

    /// The scheduler's host and port from `df://host[:port]`, or what is wrong with it.
    pub fn scheduler_address(url: &str) -> Result<(String, u16), String> {
        let rest = url
            .strip_prefix("df://")
            .ok_or_else(|| format!("the scheduler `{url}` is not a `df://host:port` address"))?;
        let rest = rest.trim_end_matches('/');
        let port_of = |port: &str| {
            port.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| {
                format!("the scheduler `{url}` names the port `{port}`, which is not a port number")
            })
        };
        let (bare, port) = if let Some(inside) = rest.strip_prefix('[') {
            // an IPv6 address, in brackets
            let (address, after) = inside
                .split_once(']')
                .ok_or_else(|| format!("the scheduler `{url}` opens a `[` it does not close"))?;
            let port = match after {
                "" => DEFAULT_SCHEDULER_PORT,
                p => port_of(p.strip_prefix(':').ok_or_else(|| {
                    format!("the scheduler `{url}` has `{p}` after its address")
                })?)?,
            };
            if address.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(format!("the scheduler `{url}` names no valid IPv6 address"));
            }
            (address, port)
        } else {
            let (host, port) = match rest.rsplit_once(':') {
                Some((host, port)) => (host, port_of(port)?),
                None => (rest, DEFAULT_SCHEDULER_PORT),
            };
            if host.contains(':') {
                return Err(format!(
                    "the scheduler `{url}` names an IPv6 address without brackets: write `df://[address]:port`"
                ));
            }
            if host.is_empty()
                || host.contains(['/', '@', '?', '#', ' '])
                || url::Host::parse(host).is_err()
            {
                return Err(format!("the scheduler `{url}` names no valid host"));
            }
            (host, port)
        };
        Ok((bare.to_string(), port))
    }

    fn fix() -> &'static str {
        "write `engine = \"local\"`, `engine = { kind = \"ballista\", mode = \"standalone\" }` or `engine = { kind = \"ballista\", scheduler = \"df://host:50050\" }`"
    }
}

impl Serialize for EngineChoice {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            EngineChoice::Local => s.serialize_str("local"),
            EngineChoice::BallistaStandalone => {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("kind", "ballista")?;
                m.serialize_entry("mode", "standalone")?;
                m.end()
            }
            EngineChoice::Ballista {
                scheduler,
                tasks,
                shared_files,
            } => {
                let entries = 2 + usize::from(tasks.is_some()) + usize::from(*shared_files);
                let mut m = s.serialize_map(Some(entries))?;
                m.serialize_entry("kind", "ballista")?;
                m.serialize_entry("scheduler", scheduler)?;
                if let Some(tasks) = tasks {
                    m.serialize_entry("tasks", tasks)?;
                }
                if *shared_files {
                    m.serialize_entry("shared_files", &true)?;
                }
                m.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for EngineChoice {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;

        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Table {
            kind: String,
            #[serde(default)]
            mode: Option<String>,
            #[serde(default)]
            scheduler: Option<String>,
            #[serde(default)]
            tasks: Option<i64>,
            #[serde(default)]
            shared_files: Option<bool>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Name(String),
            Table(Table),
        }
        let written = Written::deserialize(d).map_err(|_| {
            D::Error::custom(format!(
                "the engine is neither a name nor a table of `kind`, `mode`, `scheduler`, `tasks` and `shared_files`: {}",
                EngineChoice::fix()
            ))
        })?;
        let table = match written {
            Written::Name(name) if name == "local" => return Ok(EngineChoice::Local),
            Written::Name(name) if name == "ballista" => {
                return Err(D::Error::custom(format!(
                    "the Ballista engine needs a mode or a scheduler: {}",
                    EngineChoice::fix()
                )))
            }
            Written::Name(name) => {
                return Err(D::Error::custom(format!(
                    "unknown engine `{name}`: {}",
                    EngineChoice::fix()
                )))
            }
            Written::Table(table) => table,
        };
        let tasks = match table.tasks {
            None => None,
            Some(n) if (1..=4096).contains(&n) && table.scheduler.is_some() => Some(n as u16),
            Some(_) if table.scheduler.is_none() => {
                return Err(D::Error::custom(
                    "`tasks` belongs to a cluster's engine, with its `scheduler` (standalone cuts work into one task per core)",
                ))
            }
            Some(n) => {
                return Err(D::Error::custom(format!(
                    "`tasks = {n}` is not a number of tasks: write a number from 1 to 4096, about the executors' task slots in all"
                )))
            }
        };
        if table.shared_files.is_some() && table.scheduler.is_none() {
            return Err(D::Error::custom(
                "`shared_files` belongs to a cluster's engine, with its `scheduler` (a standalone cluster reads this machine's folders)",
            ));
        }
        let shared_files = table.shared_files.unwrap_or(false);
        match (table.kind.as_str(), table.mode.as_deref(), table.scheduler) {
            ("local", None, None) => Ok(EngineChoice::Local),
            ("ballista", Some("standalone"), None) => Ok(EngineChoice::BallistaStandalone),
            ("ballista", Some(mode), None) => Err(D::Error::custom(format!(
                "unknown Ballista mode `{mode}`: the only mode is `standalone` (scheduler and executor inside this process); for a cluster name its `scheduler = \"df://host:50050\"`"
            ))),
            ("ballista", None, Some(scheduler)) => {
                EngineChoice::scheduler_address(&scheduler).map_err(|e| {
                    D::Error::custom(format!("{e}: write `scheduler = \"df://host:50050\"`"))
                })?;
                Ok(EngineChoice::Ballista {
                    scheduler,
                    tasks,
                    shared_files,
                })
            }
            ("ballista", Some(_), Some(_)) => Err(D::Error::custom(
                "a Ballista engine is either `mode = \"standalone\"` or a `scheduler`, not both",
            )),
            ("ballista", None, None) => Err(D::Error::custom(format!(
                "the Ballista engine needs a mode or a scheduler: {}",
                EngineChoice::fix()
            ))),
            ("local", _, _) => Err(D::Error::custom(
                "the local engine takes no `mode` or `scheduler`: write `engine = \"local\"`",
            )),
            (kind, _, _) => Err(D::Error::custom(format!(
                "unknown engine kind `{kind}`: {}",
                EngineChoice::fix()
            ))),
        }
    }
}

fn schedule_off() -> crate::export::ExportSchedule {
    crate::export::ExportSchedule::Off
}

fn is_off(s: &crate::export::ExportSchedule) -> bool {
    *s == crate::export::ExportSchedule::Off
}

fn default_retention() -> u32 {
    DEFAULT_RETENTION_RUNS
}

impl ProjectFile {
    /// Parse and validate a project file's text.
    pub fn parse(text: &str) -> Result<Self, ConfigErrors> {
        let doc = DeTable::parse(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start));
            ConfigErrors::from(ConfigError {
                key: "(file)".into(),
                line,
                message: format!("not valid TOML: {}", e.message()),
                fix: "correct the TOML syntax at that line".into(),
            })
        })?;
        let project: ProjectFile = toml::from_str(text).map_err(|e| {
            let span = e.span();
            let mut key = span
                .as_ref()
                .and_then(|s| key_at(doc.get_ref(), s.start))
                .unwrap_or_else(|| "(file)".into());
            let mut line = span.map(|s| line_of(text, s.start));
            // Errors inside tagged tables point at the table; find the field itself.
            if let Some(field) = e
                .message()
                .strip_prefix("unknown field `")
                .and_then(|m| m.split('`').next())
            {
                let candidate = format!("{key}.{field}");
                if let Some(s) = span_of(doc.get_ref(), &candidate) {
                    key = candidate;
                    line = Some(line_of(text, s.start));
                }
            }
            ConfigErrors::from(ConfigError {
                key,
                line,
                message: e.message().to_string(),
                fix: "check the key's spelling and type against the example `lakecdp init` writes"
                    .into(),
            })
        })?;
        let mut errors = project.validate();
        for err in &mut errors {
            err.line = span_of(doc.get_ref(), &err.key).map(|s| line_of(text, s.start));
        }
        if errors.is_empty() {
            Ok(project)
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// Every problem of an already deserialized project (no line numbers).
    pub fn validate(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        let env = &self.environment;
        if env.name.trim().is_empty() {
            errors.push(ConfigError::new(
                "environment.name",
                "the environment name is empty",
                "set `name = \"my-environment\"`",
            ));
        } else if env.name.len() > 64 || env.name.chars().any(|c| c.is_control()) {
            errors.push(ConfigError::new(
                "environment.name",
                "the environment name must be at most 64 printable characters",
                "choose a shorter name",
            ));
        } else if env.name.trim().chars().all(|c| c == '.') {
            errors.push(ConfigError::new(
                "environment.name",
                "an environment name of dots only would be a step in paths and addresses",
                "choose a name with a letter or digit",
            ));
        }
        if env.retention_runs == 0 {
            errors.push(ConfigError::new(
                "environment.retention_runs",
                "retention must keep at least the run just published",
                "set `retention_runs = 1` or more (default 3)",
            ));
        }
        if env.refresh_schedule == crate::export::ExportSchedule::OnRefresh {
            errors.push(ConfigError::new(
                "environment.refresh_schedule",
                "a refresh cannot be scheduled on refresh",
                "use `off`, `daily 02:00 Europe/Paris` or `weekly mon,thu 02:00 UTC`",
            ));
        }
        errors.extend(env.storage.validate());
        let mut names = std::collections::HashSet::new();
        for (i, source) in self.sources.iter().enumerate() {
            errors.extend(source.validate(i));
            if !names.insert(source.name.to_ascii_lowercase()) {
                errors.push(ConfigError::new(
                    format!("sources.{i}.name"),
                    format!("source `{}` is declared twice", source.name),
                    "give each source its own name",
                ));
            }
        }
        errors.extend(crate::activity::validate_activities(
            &self.activities,
            &self.sources,
            self.unification.as_ref(),
        ));
        errors.extend(crate::measure::validate_measures(&self.measures));
        if !self.measures.is_empty() && self.unification.is_none() {
            errors.push(ConfigError::new(
                "measures",
                "measures are computed over unified customers, and the project has no [unification]",
                "declare the customer tables in [unification]",
            ));
        }
        errors.extend(crate::segment::validate_segments(&self.segments));
        if !self.segments.is_empty() && self.unification.is_none() {
            errors.push(ConfigError::new(
                "segments",
                "segments are sets of unified customers, and the project has no [unification]",
                "declare the customer tables in [unification]",
            ));
        }
        errors
    }

    /// The project as TOML text (secrets are references, so nothing secret is written).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }
}

/// 1-based line of a byte offset.
pub fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// The span of the key at a dotted path (array elements by index, e.g.
/// `sources.0.tables.1.location`), or of its nearest existing parent.
fn span_of(table: &DeTable<'_>, dotted: &str) -> Option<Range<usize>> {
    let mut table = Some(table);
    let mut array: Option<&toml::de::DeArray<'_>> = None;
    let mut best = None;
    for part in dotted.split('.') {
        let value = if let Some(t) = table {
            let (k, v) = t.iter().find(|(k, _)| k.get_ref().as_ref() == part)?;
            best = Some(k.span());
            v
        } else if let Some(a) = array {
            let v = a.get(part.parse::<usize>().ok()?)?;
            best = Some(v.span());
            v
        } else {
            return best;
        };
        table = None;
        array = None;
        match value.get_ref() {
            DeValue::Table(t) => table = Some(t),
            DeValue::Array(a) => array = Some(a),
            _ => return best,
        }
    }
    best
}

/// The dotted key whose entry contains `offset`, deepest first.
fn key_at(table: &DeTable<'_>, offset: usize) -> Option<String> {
    fn inside(s: &Range<usize>, offset: usize) -> bool {
        s.start <= offset && offset < s.end.max(s.start + 1)
    }
    fn walk_value(v: &toml::Spanned<DeValue<'_>>, offset: usize, name: &str) -> Option<String> {
        match v.get_ref() {
            DeValue::Table(t) => walk(t, offset, name),
            DeValue::Array(a) => a.iter().enumerate().find_map(|(i, item)| {
                let item_name = format!("{name}.{i}");
                walk_value(item, offset, &item_name)
                    .or_else(|| inside(&item.span(), offset).then_some(item_name))
            }),
            _ => None,
        }
    }
    fn walk(table: &DeTable<'_>, offset: usize, prefix: &str) -> Option<String> {
        for (k, v) in table.iter() {
            let name = if prefix.is_empty() {
                k.get_ref().to_string()
            } else {
                format!("{prefix}.{}", k.get_ref())
            };
            if let Some(deeper) = walk_value(v, offset, &name) {
                return Some(deeper);
            }
            if inside(&k.span(), offset) || inside(&v.span(), offset) {
                return Some(name);
            }
        }
        None
    }
    walk(table, offset, "")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::StorageConfig;

    const LOCAL: &str = r#"
[environment]
name = "retail"
region = "westeurope"

[environment.storage]
kind = "local"
path = "lake"
"#;

    #[test]
    fn an_environment_named_only_dots_is_refused() {
        for name in [".", ".."] {
            let text = LOCAL.replace("name = \"retail\"", &format!("name = \"{name}\""));
            let e = ProjectFile::parse(&text).unwrap_err().to_string();
            assert!(e.contains("environment.name") && e.contains("dots"), "{e}");
        }
        assert!(ProjectFile::parse(&LOCAL.replace("\"retail\"", "\"r.1\"")).is_ok());
    }

    #[test]
    fn parses_a_local_project_with_defaults() {
        let p = ProjectFile::parse(LOCAL).unwrap();
        assert_eq!(p.environment.name, "retail");
        assert_eq!(p.environment.output_format, PartitionFormat::Csv);
        assert_eq!(p.environment.retention_runs, 3);
        assert!(matches!(p.environment.storage, StorageConfig::Local(_)));
        // The written form parses back to the same project.
        assert_eq!(ProjectFile::parse(&p.to_toml()).unwrap(), p);
    }

    #[test]
    fn the_engine_is_local_unless_named_and_unknown_engines_are_refused() {
        assert_eq!(
            ProjectFile::parse(LOCAL).unwrap().environment.engine,
            EngineChoice::Local
        );
        let text = LOCAL.replace("region = \"westeurope\"", "engine = \"local\"");
        assert_eq!(
            ProjectFile::parse(&text).unwrap().environment.engine,
            EngineChoice::Local
        );
        let text = LOCAL.replace("region = \"westeurope\"", "engine = \"spark\"");
        let err = ProjectFile::parse(&text).unwrap_err();
        assert!(err.to_string().contains("spark"), "{err}");
        assert_eq!(err.0[0].line, Some(4), "{err}");
    }

    #[test]
    fn a_ballista_engine_is_standalone_or_names_its_scheduler_and_writes_back_as_read() {
        let with = |engine: &str| {
            ProjectFile::parse(
                &LOCAL.replace("region = \"westeurope\"", &format!("engine = {engine}")),
            )
        };
        let standalone = with(r#"{ kind = "ballista", mode = "standalone" }"#).unwrap();
        assert_eq!(
            standalone.environment.engine,
            EngineChoice::BallistaStandalone
        );
        let cluster = with(r#"{ kind = "ballista", scheduler = "df://10.0.0.5:50051" }"#).unwrap();
        assert_eq!(
            cluster.environment.engine,
            EngineChoice::Ballista {
                scheduler: "df://10.0.0.5:50051".into(),
                tasks: None,
                shared_files: false,
            }
        );
        let sized = with(
            r#"{ kind = "ballista", scheduler = "df://10.0.0.5:50051", tasks = 16, shared_files = true }"#,
        )
        .unwrap();
        assert_eq!(
            sized.environment.engine,
            EngineChoice::Ballista {
                scheduler: "df://10.0.0.5:50051".into(),
                tasks: Some(16),
                shared_files: true,
            }
        );
        for bad in [
            r#"{ kind = "ballista", scheduler = "df://h:1", tasks = 0 }"#,
            r#"{ kind = "ballista", mode = "standalone", tasks = 2 }"#,
        ] {
            let err = with(bad).unwrap_err().to_string();
            assert!(
                err.contains("environment.engine") && err.contains("tasks"),
                "{err}"
            );
        }
        for p in [&standalone, &cluster, &sized] {
            assert_eq!(&ProjectFile::parse(&p.to_toml()).unwrap(), p);
        }
        assert_eq!(
            EngineChoice::scheduler_address("df://sched.internal").unwrap(),
            ("sched.internal".to_string(), DEFAULT_SCHEDULER_PORT)
        );
        assert_eq!(
            EngineChoice::scheduler_address("df://[::1]:7000").unwrap(),
            ("::1".to_string(), 7000)
        );
        assert_eq!(
            EngineChoice::scheduler_address("df://[::1]").unwrap(),
            ("::1".to_string(), DEFAULT_SCHEDULER_PORT)
        );
        assert!(EngineChoice::scheduler_address("df://::1:7000")
            .unwrap_err()
            .contains("without brackets"));
        // each mistake names the engine key, its line, and what to write
        for (engine, says) in [
            (r#""ballista""#, "needs a mode or a scheduler"),
            (r#"{ kind = "ballista" }"#, "needs a mode or a scheduler"),
            (
                r#"{ kind = "ballista", mode = "cluster" }"#,
                "unknown Ballista mode `cluster`",
            ),
            (
                r#"{ kind = "ballista", mode = "standalone", scheduler = "df://h:1" }"#,
                "not both",
            ),
            (
                r#"{ kind = "ballista", scheduler = "http://h:50050" }"#,
                "not a `df://host:port`",
            ),
            (
                r#"{ kind = "ballista", scheduler = "df://h:99999" }"#,
                "not a port number",
            ),
            (
                r#"{ kind = "ballista", scheduler = "df://:50050" }"#,
                "no valid host",
            ),
            (r#"{ kind = "spark" }"#, "unknown engine kind `spark`"),
            (
                r#"{ kind = "ballista", mode = "standalone", cores = 4 }"#,
                "neither a name nor a table",
            ),
        ] {
            let err = with(engine).unwrap_err();
            assert!(err.to_string().contains(says), "{engine}: {err}");
            assert_eq!(err.0[0].key, "environment.engine", "{engine}: {err}");
            assert_eq!(err.0[0].line, Some(4), "{engine}: {err}");
        }
    }

    #[test]
    fn unknown_keys_name_the_key_and_line() {
        let text = LOCAL.replace("path = \"lake\"", "path = \"lake\"\npaht = \"x\"");
        let err = ProjectFile::parse(&text).unwrap_err();
        let e = &err.0[0];
        assert!(e.message.contains("paht"), "{err}");
        assert_eq!(e.line, Some(9), "{err}");
    }

    #[test]
    fn validation_errors_carry_lines_and_fixes() {
        let text = r#"
[environment]
name = "x"
retention_runs = 0

[environment.storage]
kind = "adls"
url = "adl://contoso.azuredatalakestore.net"
account_key = { env = "KEY" }
"#;
        let err = ProjectFile::parse(text).unwrap_err();
        let retention = err
            .0
            .iter()
            .find(|e| e.key == "environment.retention_runs")
            .unwrap();
        assert_eq!(retention.line, Some(4));
        let gen1 = err
            .0
            .iter()
            .find(|e| e.key == "environment.storage.url")
            .unwrap();
        assert_eq!(gen1.line, Some(8));
        assert!(gen1.message.contains("Gen1 is not supported"));
        assert!(err.to_string().contains("fix:"));
    }

    #[test]
    fn syntax_errors_say_where() {
        let err = ProjectFile::parse("[environment\nname = 1").unwrap_err();
        assert_eq!(err.0[0].line, Some(1), "{err}");
        assert!(err.0[0].message.contains("not valid TOML"));
    }

    #[test]
    fn sources_parse_and_their_errors_have_lines() {
        let text = format!(
            "{LOCAL}
[[sources]]
name = \"Crm\"

[[sources.tables]]
name = \"Contacts\"
location = \"data/crm_contacts.csv\"
format = \"csv\"
primary_key = \"ContactId\"
csv = {{ delimiter = \";\", null_markers = [\"\", \"NULL\"] }}
schema = [{{ name = \"ContactId\", type = \"string\" }}, {{ name = \"BirthDate\", type = \"date\" }}]

[[sources.tables]]
name = \"Orders\"
location = \"data/orders.parquet\"
format = \"parquet\"
"
        );
        let p = ProjectFile::parse(&text).unwrap();
        let crm = &p.sources[0];
        assert_eq!(crm.tables.len(), 2);
        assert_eq!(crm.tables[0].csv.as_ref().unwrap().delimiter, ";");
        assert_eq!(
            crm.tables[0].schema[1].column_type,
            crate::source::ColumnType::Date
        );
        assert_eq!(ProjectFile::parse(&p.to_toml()).unwrap(), p);

        let bad = text
            .replace("primary_key = \"ContactId\"", "primary_key = \"\"")
            .replace(
                "format = \"parquet\"",
                "format = \"parquet\"\nentity = \"X\"",
            );
        let err = ProjectFile::parse(&bad).unwrap_err();
        let pk = err
            .0
            .iter()
            .find(|e| e.key == "sources.0.tables.0.primary_key")
            .expect("primary key error");
        assert_eq!(pk.line, Some(17), "{err}");
        let entity = err
            .0
            .iter()
            .find(|e| e.key == "sources.0.tables.1.entity")
            .expect("entity error");
        assert_eq!(entity.line, Some(25), "{err}");

        let typo = text.replace("type = \"date\"", "type = \"dat\"");
        let err = ProjectFile::parse(&typo).unwrap_err();
        assert_eq!(err.0[0].line, Some(19), "{err}");
        assert!(err.0[0].message.contains("unknown column type"), "{err}");
    }

    #[test]
    fn plain_text_secrets_are_rejected() {
        let text = r#"
[environment]
name = "x"
[environment.storage]
kind = "adls"
account = "contoso"
account_key = "c2VjcmV0"
"#;
        let err = ProjectFile::parse(text).unwrap_err();
        assert!(err.0[0].line.is_some(), "{err}");
    }
}
