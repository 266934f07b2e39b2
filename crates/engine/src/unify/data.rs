//! The records of the tables that take part in unification, read from their ingested
//! entities: the primary key and mapped columns as text (for matching), and the typed
//! columns (for the merged profile).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, StringArray};
use arrow::compute::{cast, concat};
use arrow::datatypes::DataType;
use lakecdp_core::{SourceSpec, UnifyTableSpec};
use lakecdp_lake::partition::read_entity;
use lakecdp_lake::{Lake, Process};

use crate::{Error, Result};

/// One table's records.
pub struct TableData {
    /// Its declaration.
    pub spec: UnifyTableSpec,
    /// `Source.Table`.
    pub name: String,
    /// Primary key column.
    pub primary_key: String,
    /// Primary key of each record, as text.
    pub keys: Vec<String>,
    /// Mapped columns by name: typed values.
    pub typed: HashMap<String, ArrayRef>,
    /// Mapped columns by name: values as text (null as None).
    pub text: HashMap<String, Arc<StringArray>>,
}

impl TableData {
    /// Number of records.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when the table has no record.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Put the records in their canonical order: by primary key, then (for records
    /// sharing a key) by the text of their columns in name order. Everything
    /// unification derives from record positions (group and winner ties, the order
    /// pairs are joined in, the numbering of new CustomerIds) then depends on the
    /// records alone, never on the order a source listed them in. Records already in
    /// that order (strictly ascending keys) are left as they are.
    pub fn canonicalize(&mut self) -> Result<()> {
        if self.keys.windows(2).all(|w| w[0] < w[1]) {
            return Ok(());
        }
        let mut names: Vec<&String> = self.text.keys().collect();
        names.sort();
        let keys: ArrayRef = Arc::new(StringArray::from_iter_values(self.keys.iter()));
        let mut columns = vec![arrow::compute::SortColumn {
            values: keys,
            options: None,
        }];
        for name in names {
            columns.push(arrow::compute::SortColumn {
                values: self.text[name].clone(),
                options: None,
            });
        }
        let order = arrow::compute::lexsort_to_indices(&columns, None)?;
        drop(columns);
        let mut keys = Vec::with_capacity(self.keys.len());
        for i in order.values() {
            keys.push(std::mem::take(&mut self.keys[*i as usize]));
        }
        self.keys = keys;
        for a in self.typed.values_mut() {
            *a = arrow::compute::take(a.as_ref(), &order, None)?;
        }
        for a in self.text.values_mut() {
            *a = take_text(a, &order)?;
        }
        Ok(())
    }

    /// Keep only the first `n` records.
    pub fn truncate(&mut self, n: usize) {
        if n >= self.keys.len() {
            return;
        }
        self.keys.truncate(n);
        for a in self.typed.values_mut() {
            *a = a.slice(0, n);
        }
        for a in self.text.values_mut() {
            *a = Arc::new(a.slice(0, n));
        }
    }

    /// Replace the values of `column` (typed and text) at some rows by those of other
    /// rows: `source[i]` is the row whose value row `i` takes. An unknown column is left.
    pub fn overlay(&mut self, column: &str, source: &arrow::array::UInt32Array) -> Result<()> {
        if let Some(a) = self.typed.get_mut(column) {
            *a = arrow::compute::take(a.as_ref(), source, None)?;
        }
        if let Some(a) = self.text.get_mut(column) {
            *a = take_text(a, source)?;
        }
        Ok(())
    }

    /// The text of `column` at `row` (None for null or an unknown column).
    pub fn value(&self, column: &str, row: usize) -> Option<&str> {
        let a = self.text.get(column)?;
        (!a.is_null(row)).then(|| a.value(row))
    }
}

/// Read a unification table's ingested entity: its mapped columns, the columns of its
/// own rules, and `referenced` (columns other tables' rules compare with).
pub async fn load_table(
    lake: &Lake,
    spec: &UnifyTableSpec,
    sources: &[SourceSpec],
    referenced: &[String],
) -> Result<TableData> {
    let name = spec.qualified();
    let source = sources
        .iter()
        .find(|s| s.name == spec.source)
        .ok_or_else(|| {
            Error::Source(format!(
                "unification table `{name}`: no source `{}` in the project file",
                spec.source
            ))
        })?;
    let table = source
        .tables
        .iter()
        .find(|t| t.name == spec.table)
        .ok_or_else(|| {
            Error::Source(format!(
                "unification table `{name}`: source `{}` has no table `{}`",
                spec.source, spec.table
            ))
        })?;
    let primary_key = table.primary_key.clone().ok_or_else(|| {
        Error::Source(format!(
            "unification table `{name}` needs a primary key: declare `primary_key` on the table"
        ))
    })?;
    let process = Process::Ingestion(spec.source.clone());
    let model = lakecdp_lake::publish::read_model(lake, &process)
        .await?
        .ok_or_else(|| {
            Error::Source(format!(
                "unification table `{name}`: source `{}` has not been loaded yet (run `lakecdp refresh --only ingest`)",
                spec.source
            ))
        })?;
    let entity = model.entity(&spec.table).ok_or_else(|| {
        Error::Source(format!(
            "unification table `{name}`: the last load of `{}` has no entity `{}`",
            spec.source, spec.table
        ))
    })?;
    let batches = read_entity(lake, &process.folder(), entity).await?;
    let schema = lakecdp_lake::partition::entity_schema_of(
        entity,
        lakecdp_lake::cdm::ArrowTypes::Annotated,
    )?;
    let column = |col: &str| -> Result<ArrayRef> {
        let index = schema.index_of(col).map_err(|_| {
            Error::Source(format!(
                "unification table `{name}` has no column `{col}` (it has: {})",
                schema
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        let parts: Vec<&dyn Array> = batches.iter().map(|b| b.column(index).as_ref()).collect();
        if parts.is_empty() {
            return Ok(arrow::array::new_empty_array(
                schema.field(index).data_type(),
            ));
        }
        Ok(concat(&parts)?)
    };
    let key_text = as_text(&column(&primary_key)?)?;
    let keys = (0..key_text.len())
        .map(|i| key_text.value(i).to_string())
        .collect();
    let mut typed = HashMap::new();
    let mut text = HashMap::new();
    let mut needed: Vec<String> = spec.columns.iter().map(|c| c.name.clone()).collect();
    // columns that later tables' rules compare with
    needed.extend(referenced.iter().cloned());
    for rule in &spec.dedupe {
        // a dedupe condition may compare a column with another one of the same table
        for c in &rule.conditions {
            needed.push(c.column.clone());
            needed.extend(c.with.iter().cloned());
        }
    }
    for rule in &spec.match_rules {
        needed.extend(rule.conditions.iter().map(|c| c.column.clone()));
    }
    // columns of the match models: compared and blocked on
    for m in spec.dedupe_model.iter().chain(&spec.match_models) {
        needed.extend(m.compare.iter().map(|c| c.column.clone()));
        needed.extend(m.block.iter().flatten().cloned());
    }
    let policies =
        std::iter::once(&spec.dedupe_winner).chain(spec.dedupe_columns.iter().map(|c| &c.policy));
    for policy in policies {
        if let lakecdp_core::WinnerPolicy::MostRecent(c)
        | lakecdp_core::WinnerPolicy::LeastRecent(c) = policy
        {
            needed.push(c.clone());
        }
    }
    for c in &spec.dedupe_columns {
        needed.push(c.name.clone());
        needed.extend(c.group.iter().cloned());
    }
    for col in needed {
        if typed.contains_key(&col) {
            continue;
        }
        let array = column(&col)?;
        text.insert(col.clone(), Arc::new(as_text(&array)?));
        typed.insert(col, array);
    }
    let mut data = TableData {
        spec: spec.clone(),
        name,
        primary_key,
        keys,
        typed,
        text,
    };
    data.canonicalize()?;
    Ok(data)
}

/// The rows `indices` of a text column.
fn take_text(a: &StringArray, indices: &arrow::array::UInt32Array) -> Result<Arc<StringArray>> {
    let taken = arrow::compute::take(a, indices, None)?;
    taken
        .as_any()
        .downcast_ref::<StringArray>()
        .cloned()
        .map(Arc::new)
        .ok_or_else(|| Error::Internal("a text column is not text".into()))
}

fn as_text(array: &ArrayRef) -> Result<StringArray> {
    let text = cast(array, &DataType::Utf8)?;
    text.as_any()
        .downcast_ref::<StringArray>()
        .cloned()
        .ok_or_else(|| Error::Internal("a cast to text gave no text".into()))
}
