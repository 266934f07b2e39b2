//! Schemas from a sample: Parquet through DataFusion, JSON Lines through arrow-json,
//! CSV by trying casts on up to [`SAMPLE_RECORDS`] records.

use std::path::{Path, PathBuf};

use arrow::datatypes::{DataType, SchemaRef};
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use lakecdp_core::{ColumnSpec, ColumnType, SourceFormat, TableSpec};

use super::fetch::Fetched;
use crate::{Error, Result};

/// How many records schema inference looks at.
pub const SAMPLE_RECORDS: usize = 1000;

fn one_byte(what: &str, s: &str) -> Result<u8> {
    match s.as_bytes() {
        [b] => Ok(*b),
        _ => Err(Error::Source(format!(
            "the CSV {what} `{s}` is not one ASCII character"
        ))),
    }
}

fn extension(path: &Path) -> String {
    path.extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default()
}

/// The table's declared columns as a schema.
fn declared_schema(table: &TableSpec) -> SchemaRef {
    std::sync::Arc::new(arrow::datatypes::Schema::new(
        table
            .schema
            .iter()
            .map(|c| {
                arrow::datatypes::Field::new(
                    &c.name,
                    crate::ingest::convert::arrow_type(c.column_type),
                    true,
                )
            })
            .collect::<Vec<_>>(),
    ))
}

/// The schema inferred from a sample of the table's files. When the files show no
/// column at all (JSON lines none of which is an object with fields, say), the declared
/// columns stand in, and without any a table of no columns is refused: it could hold no
/// row, and its files would not read back.
pub async fn infer_schema(table: &TableSpec, fetched: &Fetched) -> Result<SchemaRef> {
    let inferred = infer_from_files(table, fetched).await?;
    if !inferred.fields().is_empty() {
        return Ok(inferred);
    }
    if !table.schema.is_empty() {
        return Ok(declared_schema(table));
    }
    Err(Error::Source(format!(
        "table `{}`: its files show no column (no header, no JSON object with fields); declare its columns with `schema = [...]`",
        table.name
    )))
}

/// The schema DataFusion infers from a sample of the table's files.
async fn infer_from_files(table: &TableSpec, fetched: &Fetched) -> Result<SchemaRef> {
    if table.format == SourceFormat::Delta {
        // the table's own schema, which prepare() put in the declaration
        return Ok(declared_schema(table));
    }
    if !fetched.is_downloaded() {
        return Err(Error::Internal(
            "schema inference needs the files downloaded first".into(),
        ));
    }
    let first = fetched
        .files
        .first()
        .ok_or_else(|| Error::Source(format!("table `{}` has no files", table.name)))?;
    let files: Vec<PathBuf> = fetched.files.iter().map(|f| f.path.clone()).collect();
    let ext = extension(&first.path);
    let paths: Vec<String> = files
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let ctx = SessionContext::new();
    let df = match table.format {
        SourceFormat::Csv => return infer_csv(table, &first.path),
        SourceFormat::Parquet => {
            ctx.read_parquet(paths, ParquetReadOptions::default().file_extension(&ext))
                .await?
        }
        SourceFormat::Jsonl => return infer_jsonl(&first.path),
        other => {
            return Err(Error::NotAvailable(format!(
                "inspecting `{other}` sources is not available yet"
            )))
        }
    };
    Ok(df.schema().inner().clone())
}

/// The most bytes of JSON lines inference parses in all: a sample of long lines stops
/// before [`SAMPLE_RECORDS`].
pub const SAMPLE_BYTES: usize = 32 << 20;

/// JSON Lines: the schema of the first valid objects (lines that are not JSON objects,
/// are not UTF-8 or are longer than the load's default record limit are skipped here;
/// the load puts them in the corrupt table). Memory stays bounded: a line is read at
/// most to the limit, and at most [`SAMPLE_BYTES`] of lines are parsed.
fn infer_jsonl(path: &Path) -> Result<SchemaRef> {
    infer_jsonl_within(path, crate::ingest::DEFAULT_MAX_RECORD_BYTES, SAMPLE_BYTES)
}

fn infer_jsonl_within(path: &Path, max_line: usize, max_sample: usize) -> Result<SchemaRef> {
    let io = |e: std::io::Error| Error::Source(format!("cannot read {}: {e}", path.display()));
    let file = std::fs::File::open(path).map_err(io)?;
    let mut reader = std::io::BufReader::with_capacity(1 << 16, file);
    let mut line = Vec::new();
    let mut values: Vec<serde_json::Value> = Vec::new();
    let mut sampled = 0usize;
    while values.len() < SAMPLE_RECORDS && sampled < max_sample {
        let Some(len) = crate::ingest::read_line(&mut reader, &mut line, max_line).map_err(io)?
        else {
            break;
        };
        if len > max_line {
            continue;
        }
        sampled += len;
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&line) {
            if v.is_object() {
                values.push(v);
            }
        }
    }
    let schema = arrow::json::reader::infer_json_schema_from_iterator(values.iter().map(Ok))?;
    Ok(std::sync::Arc::new(schema))
}

/// CSV: each column gets the narrowest type every sampled value casts to (int64,
/// double, boolean, date, datetime), else string. Malformed records are skipped here.
fn infer_csv(table: &TableSpec, path: &Path) -> Result<SchemaRef> {
    use crate::ingest::records::{CsvTokenizer, Dialect};
    use arrow::array::{Array, StringArray};
    use arrow::compute::{cast_with_options, CastOptions};
    use arrow::datatypes::{Field, Schema, TimeUnit};

    let csv = table.csv.clone().unwrap_or_default();
    let dialect = Dialect {
        delimiter: one_byte("delimiter", &csv.delimiter)?,
        quote: one_byte("quote", &csv.quote)?,
        escape: csv
            .escape
            .as_deref()
            .map(|e| one_byte("escape", e))
            .transpose()?,
        encoding: csv.encoding,
    };
    let io = |e: std::io::Error| Error::Source(format!("cannot read {}: {e}", path.display()));
    let file = std::fs::File::open(path).map_err(io)?;
    let mut tok = CsvTokenizer::new(std::io::BufReader::new(file), dialect);
    let mut names: Option<Vec<String>> = None;
    if csv.header {
        match tok.next_record().map_err(io)?.map(|r| r.fields) {
            Some(Ok(h)) => {
                names = Some(crate::ingest::csv::unique_column_names(
                    h.into_iter().map(|n| n.trim().to_string()).collect(),
                ))
            }
            Some(Err(e)) => {
                return Err(Error::Source(format!(
                    "{}: the header line is malformed: {e}",
                    path.display()
                )))
            }
            None => {
                return Err(Error::Source(format!(
                    "{}: the file is empty",
                    path.display()
                )))
            }
        }
    }
    let mut samples: Vec<Vec<Option<String>>> = Vec::new();
    let mut width = names.as_ref().map(Vec::len);
    while samples.len() < SAMPLE_RECORDS {
        let Some(rec) = tok.next_record().map_err(io)? else {
            break;
        };
        let Ok(fields) = rec.fields else { continue };
        if *width.get_or_insert(fields.len()) != fields.len() {
            continue;
        }
        samples.push(
            fields
                .into_iter()
                .map(|f| (!csv.null_markers.contains(&f)).then(|| f.trim().to_string()))
                .collect(),
        );
    }
    let width = width.unwrap_or(0);
    // Without a header, a declaration of every column names them in order.
    let names = names.unwrap_or_else(|| {
        if table.schema.len() == width {
            table.schema.iter().map(|c| c.name.clone()).collect()
        } else {
            (1..=width).map(|i| format!("column_{i}")).collect()
        }
    });
    let candidates = [
        DataType::Int64,
        DataType::Float64,
        DataType::Boolean,
        DataType::Date32,
        DataType::Timestamp(TimeUnit::Microsecond, None),
    ];
    let options = CastOptions {
        safe: true,
        ..Default::default()
    };
    let mut fields = Vec::with_capacity(width);
    for (c, name) in names.iter().enumerate() {
        let values = StringArray::from(
            samples
                .iter()
                .map(|r| r.get(c).cloned().flatten())
                .collect::<Vec<_>>(),
        );
        let mut chosen = DataType::Utf8;
        if values.null_count() < values.len() {
            for t in &candidates {
                // Arrow casts "2016-01-04T01:31:23Z" to a date by dropping the time:
                // a date column holds dates only.
                if *t == DataType::Date32 && values.iter().flatten().any(|v| v.len() > 10) {
                    continue;
                }
                let cast = cast_with_options(&values, t, &options)?;
                if cast.null_count() == values.null_count() {
                    chosen = t.clone();
                    break;
                }
            }
        }
        fields.push(Field::new(name, chosen, true));
    }
    Ok(std::sync::Arc::new(Schema::new(fields)))
}

/// The declared type that holds an Arrow type.
pub fn column_type_of(dt: &DataType) -> ColumnType {
    match dt {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32 => ColumnType::Int64,
        DataType::Float16 | DataType::Float32 | DataType::Float64 => ColumnType::Double,
        DataType::Boolean => ColumnType::Boolean,
        DataType::Date32 | DataType::Date64 => ColumnType::Date,
        DataType::Timestamp(_, None) => ColumnType::DateTime,
        DataType::Timestamp(_, Some(_)) => ColumnType::DateTimeTz,
        DataType::Decimal32(p, s)
        | DataType::Decimal64(p, s)
        | DataType::Decimal128(p, s)
        | DataType::Decimal256(p, s) => ColumnType::Decimal((*p).min(38), *s),
        DataType::UInt64 => ColumnType::Decimal(20, 0),
        _ => ColumnType::String,
    }
}

/// The columns of a schema as declarations for the project file.
pub fn declarations(schema: &SchemaRef) -> Vec<ColumnSpec> {
    schema
        .fields()
        .iter()
        .map(|f| ColumnSpec {
            name: f.name().clone(),
            column_type: column_type_of(f.data_type()),
        })
        .collect()
}

/// The table's effective columns: declared types win over inferred ones.
pub fn effective_columns(table: &TableSpec, inferred: &SchemaRef) -> Vec<ColumnSpec> {
    declarations(inferred)
        .into_iter()
        .map(|c| {
            table
                .schema
                .iter()
                .find(|d| d.name == c.name)
                .cloned()
                .unwrap_or(c)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_past_the_limits_are_skipped_and_the_sample_stops_at_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("people.jsonl");
        let mut bytes = Vec::new();
        // longer than the line limit: skipped, its field never reaches the schema
        bytes.extend_from_slice(format!("{{\"huge\":\"{}\"}}\n", "x".repeat(200)).as_bytes());
        // not UTF-8: skipped, and the sample goes on
        bytes.extend_from_slice(b"{\"bad\":\"caf\xe9\"}\n");
        bytes.extend_from_slice(b"{\"id\":1,\"name\":\"a\"}\n");
        bytes.extend_from_slice(b"{\"id\":2,\"city\":\"b\"}\r\n");
        for i in 0..100 {
            bytes.extend_from_slice(format!("{{\"id\":{i},\"n{i}\":1}}\n").as_bytes());
        }
        std::fs::write(&path, &bytes).unwrap();
        // 14 + 19 + 20 bytes, then lines of 15 and 17 bytes until 256 are passed: n0 to n13
        let schema = infer_jsonl_within(&path, 64, 256).unwrap();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        for present in ["id", "name", "city", "n0", "n13"] {
            assert!(names.contains(&present), "{present} in {names:?}");
        }
        for absent in ["huge", "bad", "n14", "n99"] {
            assert!(!names.contains(&absent), "{absent} in {names:?}");
        }
    }
}
