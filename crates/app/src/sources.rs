//! Sources: list, show, inspect (the schema a sample infers), add and remove.
//!
//! Adding and removing edit the project file in place, keeping its comments and
//! layout, and refuse to write a file that would not be valid. Reading the project's
//! sources needs Viewer, inspecting a source's data or changing them Contributor (when
//! the environment exists in the catalog; before, the project file is the user's own).

use lakecdp_core::{ColumnSpec, CsvOptions, Operation, ProjectFile, SourceSpec, TableSpec};
use lakecdp_engine::source::{declarations, effective_columns, infer_schema, prepare};

use crate::app::{Actor, App};
use crate::error::{Error, Result, ResultExt};
use crate::revisions::RevisionChange;

pub use lakecdp_engine::source::SAMPLE_RECORDS;

/// The columns of one table of a source as a sample shows them.
#[derive(Debug, Clone)]
pub struct Inspection {
    /// The table as prepared for loading.
    pub table: TableSpec,
    /// Per column: the type inferred, the type declared (if any), the type used.
    pub columns: Vec<(ColumnSpec, Option<ColumnSpec>, ColumnSpec)>,
}

/// A table to add to a source (the source is created when new).
#[derive(Debug, Clone)]
pub struct NewTable {
    /// The source.
    pub source: String,
    /// The source's description, when it is new.
    pub description: Option<String>,
    /// The table.
    pub table: TableSpec,
    /// Infer and declare the schema from a sample.
    pub infer_schema: bool,
}

/// The source named, case-insensitively.
pub fn find<'a>(sources: &'a [SourceSpec], name: &str) -> Result<&'a SourceSpec> {
    sources
        .iter()
        .find(|s| s.name.eq_ignore_ascii_case(name))
        .ok_or_else(|| {
            let known = sources
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            Error::not_found(format!(
                "no source `{name}` in the project file (sources: {})",
                if known.is_empty() { "none" } else { &known }
            ))
        })
}

fn toml_error(path: &std::path::Path, e: impl std::fmt::Display) -> Error {
    Error::invalid(format!("{}: {e}", path.display()))
}

impl App {
    /// The project, once `actor` may perform `operation` in its environment (when the
    /// environment exists in the catalog).
    pub async fn project_for(&self, actor: &Actor, operation: Operation) -> Result<ProjectFile> {
        let project = self.load_project()?;
        if let Some(env) = self
            .catalog()
            .find_environment(&project.environment.name)
            .await?
        {
            self.require(actor, &env, operation).await?;
        }
        Ok(project)
    }

    /// The sources of an environment's applied revision; none before its first apply
    /// (Viewer).
    pub async fn applied_sources(
        &self,
        actor: &Actor,
        environment: &str,
    ) -> Result<Vec<SourceSpec>> {
        let env = self
            .environment_for(actor, Some(environment), Operation::ViewEnvironment)
            .await?;
        match self.catalog().revision(env.id, None).await? {
            None => Ok(Vec::new()),
            Some(r) => Ok(ProjectFile::parse(&r.text)
                .map_err(|e| Error::internal(format!("applied revision {}: {e}", r.number)))?
                .sources),
        }
    }

    /// The project's sources (Viewer).
    pub async fn list_sources(&self, actor: &Actor) -> Result<Vec<SourceSpec>> {
        Ok(self
            .project_for(actor, Operation::ViewEnvironment)
            .await?
            .sources)
    }

    /// One source (Viewer).
    pub async fn show_source(&self, actor: &Actor, name: &str) -> Result<SourceSpec> {
        let project = self.project_for(actor, Operation::ViewEnvironment).await?;
        find(&project.sources, name).cloned()
    }

    /// The schema a sample of each table (or of `table`) infers (Contributor).
    pub async fn inspect_source(
        &self,
        actor: &Actor,
        name: &str,
        table: Option<&str>,
    ) -> Result<Vec<Inspection>> {
        let project = self.project_for(actor, Operation::EditProject).await?;
        let source = find(&project.sources, name)?;
        let tables: Vec<&TableSpec> = match table {
            Some(t) => vec![source
                .tables
                .iter()
                .find(|x| x.name.eq_ignore_ascii_case(t))
                .ok_or_else(|| {
                    Error::not_found(format!("source `{}` has no table `{t}`", source.name))
                })?],
            None => source.tables.iter().collect(),
        };
        let mut out = Vec::new();
        for table in tables {
            let (table, fetched) =
                prepare(table, source.access.as_ref(), self.project_dir()).await?;
            let fetched = schema_files(&table, fetched).await?;
            let inferred = infer_schema(&table, &fetched).await?;
            let effective = effective_columns(&table, &inferred);
            let columns = declarations(&inferred)
                .into_iter()
                .zip(effective)
                .map(|(inf, used)| {
                    let declared = table.schema.iter().find(|d| d.name == inf.name).cloned();
                    (inf, declared, used)
                })
                .collect();
            out.push(Inspection { table, columns });
        }
        Ok(out)
    }

    /// The project file as an editable document (comments and layout kept).
    pub(crate) fn edit_project(&self) -> Result<toml_edit::DocumentMut> {
        let path = self.project_file();
        let text = self.read_project_file()?;
        // refuse to edit a file that is already invalid: its errors come first
        ProjectFile::parse(&text).with_context(|| format!("in {}", path.display()))?;
        text.parse::<toml_edit::DocumentMut>()
            .map_err(|e| toml_error(&path, e))
    }

    /// Validate the edited document, write it in place of the project file and apply it
    /// as the environment's next revision (when the environment exists); that revision.
    async fn save_and_apply(
        &self,
        actor: &Actor,
        doc: &toml_edit::DocumentMut,
    ) -> Result<Option<RevisionChange>> {
        let text = self.save_project(doc)?;
        let project = ProjectFile::parse(&text)?;
        match self
            .catalog()
            .find_environment(&project.environment.name)
            .await?
        {
            Some(env) => Ok(Some(self.apply_revision(actor, &env, &text).await?)),
            None => Ok(None),
        }
    }

    /// Validate the edited document and write it in place of the project file.
    pub(crate) fn save_project(&self, doc: &toml_edit::DocumentMut) -> Result<String> {
        let mut text = doc.to_string();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        ProjectFile::parse(&text)
            .context("the edited project file would not be valid; it was not changed")?;
        let path = self.project_file();
        let tmp = path.with_extension("toml.tmp");
        std::fs::write(&tmp, &text)?;
        std::fs::rename(&tmp, &path)?;
        Ok(text)
    }

    /// Add a table to a source of the project file, creating the source when new, and
    /// apply the file (Contributor); the table as written, the source's name and the
    /// revision applied.
    pub async fn add_source_table(
        &self,
        actor: &Actor,
        new: NewTable,
    ) -> Result<(TableSpec, String, Option<RevisionChange>)> {
        let project = self.project_for(actor, Operation::EditProject).await?;
        let existing = project
            .sources
            .iter()
            .find(|s| s.name.eq_ignore_ascii_case(&new.source));
        let mut spec = new.table.clone();
        if let Some(s) = existing {
            if s.tables
                .iter()
                .any(|t| t.name.eq_ignore_ascii_case(&spec.name))
            {
                return Err(Error::conflict(format!(
                    "source `{}` already has a table `{}`; remove it first (`lakecdp source remove {} --table {}`) or pick another --table name",
                    s.name, spec.name, s.name, spec.name
                )));
            }
        }
        if new.infer_schema {
            let access = existing.and_then(|s| s.access.as_ref());
            let (prepared, fetched) = prepare(&spec, access, self.project_dir()).await?;
            let fetched = schema_files(&prepared, fetched).await?;
            let inferred = infer_schema(&prepared, &fetched).await?;
            spec.schema = effective_columns(&prepared, &inferred);
        }
        let path = self.project_file();
        // the table as TOML, through the same serializer the project file is read with
        let table_toml = toml::to_string(&spec).map_err(|e| Error::internal(e.to_string()))?;
        let mut table_item = table_toml
            .parse::<toml_edit::DocumentMut>()
            .map_err(|e| toml_error(&path, e))?
            .as_table()
            .clone();
        // only the CSV options given, inline
        if let Some(csv) = &new.table.csv {
            let defaults = CsvOptions::default();
            let mut inline = toml_edit::InlineTable::new();
            if csv.delimiter != defaults.delimiter {
                inline.insert("delimiter", csv.delimiter.as_str().into());
            }
            if !csv.header {
                inline.insert("header", false.into());
            }
            table_item.insert("csv", toml_edit::value(inline));
        }
        // columns as one inline table per line, as `source inspect` prints them
        if let Some(columns) = table_item
            .get("schema")
            .and_then(|i| i.as_array_of_tables())
            .cloned()
        {
            let mut array = toml_edit::Array::new();
            for c in columns.iter() {
                let mut inline = c.clone().into_inline_table();
                inline.fmt();
                let mut v = toml_edit::Value::InlineTable(inline);
                v.decor_mut().set_prefix("\n  ");
                array.push_formatted(v);
            }
            array.set_trailing("\n");
            array.set_trailing_comma(true);
            table_item.insert("schema", toml_edit::value(array));
        }
        let mut doc = self.edit_project()?;
        let sources = sources_array(&mut doc)?;
        let position = sources
            .iter()
            .position(|s| name_of(s).is_some_and(|n| n.eq_ignore_ascii_case(&new.source)));
        let index = match position {
            Some(i) => i,
            None => {
                let mut t = toml_edit::Table::new();
                t.insert("name", toml_edit::value(new.source.clone()));
                if let Some(d) = &new.description {
                    t.insert("description", toml_edit::value(d.clone()));
                }
                sources.push(t);
                sources.len() - 1
            }
        };
        let source = sources
            .get_mut(index)
            .ok_or_else(|| Error::internal("the source table vanished"))?;
        if !source.contains_key("tables") {
            source.insert(
                "tables",
                toml_edit::Item::ArrayOfTables(toml_edit::ArrayOfTables::new()),
            );
        }
        source["tables"]
            .as_array_of_tables_mut()
            .ok_or_else(|| {
                Error::invalid("`tables` must be written as [[sources.tables]] to be edited here")
            })?
            .push(table_item);
        let revision = self.save_and_apply(actor, &doc).await?;
        let name = existing.map_or(new.source.clone(), |s| s.name.clone());
        Ok((spec, name, revision))
    }

    /// Remove a source, or one table of it, from the project file and apply the file
    /// (Contributor); what it published stays in the lake. The source, the table removed
    /// and the revision applied.
    pub async fn remove_source(
        &self,
        actor: &Actor,
        name: &str,
        table: Option<&str>,
    ) -> Result<(String, Option<String>, Option<RevisionChange>)> {
        let project = self.project_for(actor, Operation::EditProject).await?;
        let source = find(&project.sources, name)?.clone();
        let mut doc = self.edit_project()?;
        let sources = sources_array(&mut doc)?;
        let index = sources
            .iter()
            .position(|s| name_of(s) == Some(source.name.as_str()))
            .ok_or_else(|| {
                Error::invalid(format!(
                    "source `{}` is not a [[sources]] table",
                    source.name
                ))
            })?;
        let removed_table = match table {
            None => {
                sources.remove(index);
                None
            }
            Some(t) => {
                let table = source
                    .tables
                    .iter()
                    .find(|x| x.name.eq_ignore_ascii_case(t))
                    .ok_or_else(|| {
                        Error::not_found(format!("source `{}` has no table `{t}`", source.name))
                    })?;
                if source.tables.len() == 1 {
                    return Err(Error::invalid(format!(
                        "`{}` is the only table of source `{}`; remove the source instead (`lakecdp source remove {}`)",
                        table.name, source.name, source.name
                    )));
                }
                let tables = sources
                    .get_mut(index)
                    .and_then(|s| s.get_mut("tables"))
                    .and_then(|t| t.as_array_of_tables_mut())
                    .ok_or_else(|| {
                        Error::invalid(
                            "`tables` must be written as [[sources.tables]] to be edited here",
                        )
                    })?;
                let at = tables
                    .iter()
                    .position(|t| name_of(t) == Some(table.name.as_str()))
                    .ok_or_else(|| {
                        Error::invalid(format!(
                            "table `{}` is not a [[sources.tables]] table",
                            table.name
                        ))
                    })?;
                tables.remove(at);
                Some(table.name.clone())
            }
        };
        let revision = self.save_and_apply(actor, &doc).await?;
        // watermarks of what is no longer declared would only mislead a later declaration
        if let Some(env) = self
            .catalog()
            .find_environment(&project.environment.name)
            .await?
        {
            self.acting(actor, &env)
                .clear_watermarks(&env, &source.name, removed_table.as_deref())
                .await?;
        }
        Ok((source.name, removed_table, revision))
    }
}

fn sources_array(doc: &mut toml_edit::DocumentMut) -> Result<&mut toml_edit::ArrayOfTables> {
    if !doc.contains_key("sources") {
        doc.insert(
            "sources",
            toml_edit::Item::ArrayOfTables(toml_edit::ArrayOfTables::new()),
        );
    }
    doc["sources"].as_array_of_tables_mut().ok_or_else(|| {
        Error::invalid("`sources` must be written as [[sources]] tables to be edited here")
    })
}

fn name_of(t: &toml_edit::Table) -> Option<&str> {
    t.get("name").and_then(|n| n.as_str())
}

/// The files a table's schema is inferred from, downloaded: none for a Delta table,
/// whose schema is its log's (its data files stay where they are).
async fn schema_files(
    table: &lakecdp_core::TableSpec,
    fetched: lakecdp_engine::source::Fetched,
) -> lakecdp_engine::Result<lakecdp_engine::source::Fetched> {
    if table.format == lakecdp_core::SourceFormat::Delta {
        return Ok(lakecdp_engine::source::Fetched::empty());
    }
    fetched.download().await
}
