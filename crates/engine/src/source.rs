//! Reading declared source tables: resolving their locations and inferring their
//! schemas from a sample with DataFusion.

use std::path::{Path, PathBuf};

use arrow::datatypes::{DataType, SchemaRef};
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use lakecdp_core::{ColumnSpec, ColumnType, SourceFormat, TableSpec};

use crate::{Error, Result};

/// How many records schema inference looks at.
pub const SAMPLE_RECORDS: usize = 1000;

/// The local files a table's location names (a path or a glob, relative to the project
/// folder), sorted. An empty match is an error that names the location.
pub fn local_files(table: &TableSpec, project_dir: &Path) -> Result<Vec<PathBuf>> {
    if let Some((scheme, _)) = table.location.split_once("://") {
        if scheme != "file" {
            return Err(Error::NotAvailable(format!(
                "`{}`: reading `{scheme}://` locations is not available yet; copy the files to a local folder",
                table.location
            )));
        }
    }
    let location = table
        .location
        .strip_prefix("file://")
        .unwrap_or(&table.location);
    let full = if Path::new(location).is_absolute() {
        PathBuf::from(location)
    } else {
        project_dir.join(location)
    };
    let pattern = full.to_string_lossy().into_owned();
    let mut files: Vec<PathBuf> = glob::glob(&pattern)
        .map_err(|e| {
            Error::Source(format!(
                "`{}` is not a valid path or glob: {e}",
                table.location
            ))
        })?
        .filter_map(|p| p.ok())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(Error::Source(format!(
            "table `{}`: no file matches `{}` (looked at {pattern})",
            table.name, table.location
        )));
    }
    Ok(files)
}

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

/// The schema DataFusion infers from a sample of the table's files.
pub async fn infer_schema(table: &TableSpec, project_dir: &Path) -> Result<SchemaRef> {
    let files = local_files(table, project_dir)?;
    let ext = extension(&files[0]);
    let paths: Vec<String> = files
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let ctx = SessionContext::new();
    let df = match table.format {
        SourceFormat::Csv => return infer_csv(table, &files[0]),
        SourceFormat::Parquet => {
            ctx.read_parquet(paths, ParquetReadOptions::default().file_extension(&ext))
                .await?
        }
        SourceFormat::Jsonl => return infer_jsonl(&files[0]),
        other => {
            return Err(Error::NotAvailable(format!(
                "inspecting `{other}` sources is not available yet"
            )))
        }
    };
    Ok(df.schema().inner().clone())
}

/// JSON Lines: the schema of the first valid objects (lines that are not JSON objects
/// are skipped here; the load puts them in the corrupt table).
fn infer_jsonl(path: &Path) -> Result<SchemaRef> {
    use std::io::BufRead;
    let file = std::fs::File::open(path)
        .map_err(|e| Error::Source(format!("cannot read {}: {e}", path.display())))?;
    let values: Vec<serde_json::Value> = std::io::BufReader::new(file)
        .lines()
        .map_while(|l| l.ok())
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(&l).ok())
        .filter(|v| v.is_object())
        .take(SAMPLE_RECORDS)
        .collect();
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
            Some(Ok(h)) => names = Some(h.into_iter().map(|n| n.trim().to_string()).collect()),
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
    let names = names.unwrap_or_else(|| (1..=width).map(|i| format!("column_{i}")).collect());
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

    fn table(location: &str, format: SourceFormat) -> TableSpec {
        TableSpec {
            name: "T".into(),
            location: location.into(),
            format,
            primary_key: None,
            last_updated: None,
            csv: None,
            entity: None,
            schema: vec![],
        }
    }

    #[tokio::test]
    async fn schemas_are_inferred_for_csv_jsonl_and_parquet() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.csv"),
            "Id,Name,Score,Joined,Active,Seen\n1,Ann,1.5,2024-01-02,true,2024-01-02T10:00:00Z\n2,\"Smith, Bob\",2,2024-02-03,false,\n",
        )
        .unwrap();
        let schema = infer_schema(&table("*.csv", SourceFormat::Csv), dir.path())
            .await
            .unwrap();
        let cols: Vec<String> = declarations(&schema)
            .iter()
            .map(|c| format!("{}:{}", c.name, c.column_type))
            .collect();
        assert_eq!(
            cols,
            [
                "Id:int64",
                "Name:string",
                "Score:double",
                "Joined:date",
                "Active:boolean",
                "Seen:datetime"
            ]
        );

        std::fs::write(
            dir.path().join("m.jsonl"),
            "{\"id\": 1, \"tier\": \"Gold\"}\n{\"id\": 2, \"tier\": null}\n",
        )
        .unwrap();
        let schema = infer_schema(&table("m.jsonl", SourceFormat::Jsonl), dir.path())
            .await
            .unwrap();
        let cols: Vec<String> = declarations(&schema)
            .iter()
            .map(|c| format!("{}:{}", c.name, c.column_type))
            .collect();
        assert_eq!(cols, ["id:int64", "tier:string"]);

        let err = infer_schema(&table("none-*.csv", SourceFormat::Csv), dir.path())
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("no file matches `none-*.csv`"),
            "{err}"
        );
        let err = infer_schema(&table("s3://bucket/x.csv", SourceFormat::Csv), dir.path())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("not available yet"), "{err}");
    }

    #[test]
    fn declared_types_win() {
        let mut t = table("x", SourceFormat::Csv);
        t.schema = vec![ColumnSpec {
            name: "Id".into(),
            column_type: ColumnType::String,
        }];
        let inferred = std::sync::Arc::new(arrow::datatypes::Schema::new(vec![
            arrow::datatypes::Field::new("Id", DataType::Int64, true),
            arrow::datatypes::Field::new("N", DataType::Float64, true),
        ]));
        let cols = effective_columns(&t, &inferred);
        assert_eq!(cols[0].column_type, ColumnType::String);
        assert_eq!(cols[1].column_type, ColumnType::Double);
    }
}
