//! Reading declared source tables: resolving their locations and inferring their
//! schemas from a sample with DataFusion.

use std::path::{Path, PathBuf};

use arrow::datatypes::{DataType, SchemaRef};
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use futures::{StreamExt, TryStreamExt};
use lakecdp_core::{
    AdlsConfig, ColumnSpec, ColumnType, S3Config, SourceAccess, SourceFormat, TableSpec,
};
use object_store::path::Path as ObjectPath;
use object_store::ObjectStoreExt;
use tokio::io::AsyncWriteExt;
use url::Url;

use crate::{Error, Result};

/// How many records schema inference looks at.
pub const SAMPLE_RECORDS: usize = 1000;

/// A file of a table, ready to read: where it is on this machine and the name shown in
/// reports and corrupt rows (its path relative to the project, or its URL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Local path.
    pub path: PathBuf,
    /// Name for people.
    pub name: String,
    /// What identifies this version of the file: size and modification time locally,
    /// size and ETag remotely. Equal versions mean an unchanged file.
    pub version: String,
}

/// The files of a table; remote files are copied (streamed) into a spool folder that
/// lives as long as this value.
#[derive(Debug)]
pub struct Fetched {
    /// The files, sorted by name.
    pub files: Vec<SourceFile>,
    _spools: Vec<tempfile::TempDir>,
}

fn local_version(path: &Path) -> String {
    match std::fs::metadata(path) {
        Ok(m) => {
            let modified = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_nanos())
                .unwrap_or_default();
            format!("{}:{modified}", m.len())
        }
        Err(_) => String::new(),
    }
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// The local files a table's location names (a path or a glob, relative to the project
/// folder), sorted. An empty match is an error that names the location.
pub fn local_files(table: &TableSpec, project_dir: &Path) -> Result<Vec<PathBuf>> {
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

/// A table ready to load: for a CDM folder table, the entity's partitions as a CSV or
/// Parquet table with the entity's attributes as its declared schema (declarations of
/// the project file still win); other tables as they are.
pub async fn prepare(
    table: &TableSpec,
    access: Option<&SourceAccess>,
    project_dir: &Path,
) -> Result<(TableSpec, Fetched)> {
    if table.format != SourceFormat::Cdm {
        let fetched = fetch(table, access, project_dir).await?;
        return Ok((table.clone(), fetched));
    }
    let entity_name = table.entity.clone().ok_or_else(|| {
        Error::Source(format!(
            "table `{}`: a CDM folder table needs `entity`",
            table.name
        ))
    })?;
    let model_file = fetch(table, access, project_dir).await?;
    let [model_file] = model_file.files.as_slice() else {
        return Err(Error::Source(format!(
            "table `{}`: `{}` must name one model.json",
            table.name, table.location
        )));
    };
    let bytes = std::fs::read(&model_file.path)
        .map_err(|e| Error::Source(format!("cannot read {}: {e}", model_file.name)))?;
    if model_file.name.ends_with(".manifest.cdm.json") {
        return Err(Error::NotAvailable(format!("`{}`: reading *.manifest.cdm.json folders is not available yet; point the table at the folder's model.json", model_file.name)));
    }
    let model = lakecdp_lake::cdm::Model::from_json(&model_file.name, &bytes)?;
    let entity = model.entity(&entity_name).ok_or_else(|| {
        let known = model
            .entities
            .iter()
            .map(|e| e.name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        Error::Source(format!(
            "table `{}`: entity `{entity_name}` is not in {} (it has: {known})",
            table.name, model_file.name
        ))
    })?;
    if entity.partitions.is_empty() {
        return Err(Error::Source(format!(
            "table `{}`: entity `{entity_name}` of {} has no partitions",
            table.name, model_file.name
        )));
    }
    // the folder of model.json, as written in the table's location
    let base = table
        .location
        .rsplit_once('/')
        .map(|(b, _)| b.to_string())
        .unwrap_or_default();
    let parquet = entity.partitions[0].is_parquet();
    if entity.partitions.iter().any(|p| p.is_parquet() != parquet) {
        return Err(Error::Source(format!(
            "table `{}`: entity `{entity_name}` mixes CSV and Parquet partitions",
            table.name
        )));
    }
    let settings = entity.partitions[0].file_format_settings.clone();
    let mut schema: Vec<ColumnSpec> = entity
        .attributes
        .iter()
        .map(|a| ColumnSpec {
            name: a.name.clone(),
            column_type: column_type_of(&lakecdp_lake::cdm::arrow_type_of(
                a.data_type,
                a.arrow_type_annotation(),
            )),
        })
        .collect();
    for declared in &table.schema {
        if let Some(c) = schema.iter_mut().find(|c| c.name == declared.name) {
            c.column_type = declared.column_type;
        }
    }
    let mut effective = table.clone();
    effective.entity = None;
    effective.schema = schema;
    effective.format = if parquet {
        SourceFormat::Parquet
    } else {
        SourceFormat::Csv
    };
    if !parquet {
        let mut csv = table.csv.clone().unwrap_or_default();
        if let Some(f) = &settings {
            csv.header = f.column_headers;
            csv.delimiter = f.delimiter.clone();
        } else {
            csv.header = false;
        }
        effective.csv = Some(csv);
    }
    let mut files = Vec::new();
    let mut spools = Vec::new();
    for p in &entity.partitions {
        let location = partition_location(&base, &p.location);
        let part = TableSpec {
            location,
            format: effective.format,
            ..table.clone()
        };
        let fetched = fetch(&part, access, project_dir).await?;
        files.extend(fetched.files);
        spools.extend(fetched._spools);
    }
    effective.location = table.location.clone();
    Ok((
        effective,
        Fetched {
            files,
            _spools: spools,
        },
    ))
}

/// Where a partition is, as a table location: relative locations are relative to the
/// folder of model.json; `https://<account>.dfs|blob.core.windows.net/<container>/...`
/// becomes an `abfss://` URL.
fn partition_location(base: &str, location: &str) -> String {
    if let Ok(url) = Url::parse(location) {
        let host = url.host_str().unwrap_or_default();
        if url.scheme() == "https"
            && (host.ends_with(".dfs.core.windows.net") || host.ends_with(".blob.core.windows.net"))
        {
            let account = host.split('.').next().unwrap_or_default();
            let path = url.path().trim_start_matches('/');
            let (container, rest) = path.split_once('/').unwrap_or((path, ""));
            return format!("abfss://{container}@{account}.dfs.core.windows.net/{rest}");
        }
        return location.to_string();
    }
    if base.is_empty() {
        location.to_string()
    } else {
        format!("{base}/{}", location.trim_start_matches('/'))
    }
}

/// The files of a table: local ones as they are, remote ones (`s3://`, `abfss://`,
/// `az://`) listed and streamed into a spool folder through object_store with the
/// source's own credentials.
pub async fn fetch(
    table: &TableSpec,
    access: Option<&SourceAccess>,
    project_dir: &Path,
) -> Result<Fetched> {
    let remote = match table.location.split_once("://") {
        Some((scheme, _)) if scheme != "file" => scheme.to_string(),
        _ => {
            let files = local_files(table, project_dir)?
                .into_iter()
                .map(|path| SourceFile {
                    name: path
                        .strip_prefix(project_dir)
                        .unwrap_or(&path)
                        .display()
                        .to_string(),
                    version: local_version(&path),
                    path,
                })
                .collect();
            return Ok(Fetched {
                files,
                _spools: Vec::new(),
            });
        }
    };
    let url = Url::parse(&table.location)
        .map_err(|e| Error::Source(format!("`{}` is not a valid URL: {e}", table.location)))?;
    let (store, root_url, key) = remote_store(&url, &remote, access, project_dir)?;
    let key = key.trim_start_matches('/').to_string();
    let listed_prefix = if has_glob(&key) {
        let fixed = &key[..key.find(['*', '?', '[']).unwrap_or(key.len())];
        fixed
            .rsplit_once('/')
            .map(|(p, _)| p.to_string())
            .unwrap_or_default()
    } else {
        key.clone()
    };
    let pattern = glob::Pattern::new(&key)
        .map_err(|e| Error::Source(format!("`{}` is not a valid glob: {e}", table.location)))?;
    let prefix = ObjectPath::from(listed_prefix.as_str());
    let mut objects: Vec<object_store::ObjectMeta> = store
        .list(Some(&prefix))
        .try_collect::<Vec<_>>()
        .await
        .map_err(|e| Error::Source(format!("cannot list `{}`: {e}", table.location)))?
        .into_iter()
        .filter(|m| {
            if has_glob(&key) {
                pattern.matches(m.location.as_ref())
            } else {
                m.location.as_ref() == key
            }
        })
        .collect();
    objects.sort_by(|a, b| a.location.cmp(&b.location));
    if objects.is_empty() {
        return Err(Error::Source(format!(
            "table `{}`: no object matches `{}`",
            table.name, table.location
        )));
    }
    let spool = tempfile::tempdir()
        .map_err(|e| Error::Source(format!("cannot create a spool folder: {e}")))?;
    let mut files = Vec::with_capacity(objects.len());
    for (i, meta) in objects.iter().enumerate() {
        let object = &meta.location;
        let name = format!("{root_url}/{object}");
        let version = format!(
            "{}:{}",
            meta.size,
            meta.e_tag
                .clone()
                .unwrap_or_else(|| meta.last_modified.to_rfc3339())
        );
        let local = spool
            .path()
            .join(format!("{i:05}-{}", object.filename().unwrap_or("part")));
        let mut out = tokio::fs::File::create(&local)
            .await
            .map_err(|e| Error::Source(format!("cannot spool {name}: {e}")))?;
        let mut stream = store
            .get(object)
            .await
            .map_err(|e| Error::Source(format!("cannot read {name}: {e}")))?
            .into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| Error::Source(format!("cannot read {name}: {e}")))?;
            out.write_all(&chunk)
                .await
                .map_err(|e| Error::Source(format!("cannot spool {name}: {e}")))?;
        }
        out.flush()
            .await
            .map_err(|e| Error::Source(format!("cannot spool {name}: {e}")))?;
        files.push(SourceFile {
            path: local,
            name,
            version,
        });
    }
    Ok(Fetched {
        files,
        _spools: vec![spool],
    })
}

type Remote = (
    std::sync::Arc<dyn object_store::ObjectStore>,
    String,
    String,
);

fn remote_store(
    url: &Url,
    scheme: &str,
    access: Option<&SourceAccess>,
    project_dir: &Path,
) -> Result<Remote> {
    let missing = |kind: &str| {
        Error::Source(format!(
            "`{url}` needs the source's `access` settings (kind = \"{kind}\") with its credentials"
        ))
    };
    match (scheme, access) {
        (
            "s3",
            Some(SourceAccess::S3 {
                region,
                endpoint,
                access_key_id,
                secret_access_key,
            }),
        ) => {
            let bucket = url.host_str().unwrap_or_default().to_string();
            let config = S3Config {
                bucket: bucket.clone(),
                prefix: None,
                region: region.clone(),
                endpoint: endpoint.clone(),
                access_key_id: access_key_id.clone(),
                secret_access_key: secret_access_key.clone(),
                session_token: None,
                path_style: None,
            };
            let handle = lakecdp_lake::backend::s3::open(&config, Some(project_dir))?;
            Ok((
                handle.store,
                format!("s3://{bucket}"),
                url.path().to_string(),
            ))
        }
        ("s3", _) => Err(missing("s3")),
        (
            "abfss" | "abfs" | "az",
            Some(SourceAccess::Adls {
                account,
                account_key,
                sas_token,
                endpoint,
                emulator,
            }),
        ) => {
            let (container, account) = if scheme == "az" {
                let account = account.clone().ok_or_else(|| {
                    Error::Source(format!(
                        "`{url}`: az:// URLs need `account` in the source's access settings"
                    ))
                })?;
                (url.host_str().unwrap_or_default().to_string(), account)
            } else {
                let host = url.host_str().unwrap_or_default();
                (
                    url.username().to_string(),
                    host.split('.').next().unwrap_or_default().to_string(),
                )
            };
            let config = AdlsConfig {
                account: Some(account.clone()),
                container: Some(container.clone()),
                account_key: account_key.clone(),
                sas_token: sas_token.clone(),
                endpoint: endpoint.clone(),
                emulator: *emulator,
                allow_flat_namespace: *emulator,
                ..Default::default()
            };
            let handle = lakecdp_lake::backend::azure::open(&config, Some(project_dir))?;
            Ok((
                handle.store,
                format!("abfss://{container}@{account}.dfs.core.windows.net"),
                url.path().to_string(),
            ))
        }
        ("abfss" | "abfs" | "az", _) => Err(missing("adls")),
        (other, _) => Err(Error::Source(format!(
            "`{other}://` locations are not supported; use a local path, s3://, abfss:// or az://"
        ))),
    }
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
pub async fn infer_schema(table: &TableSpec, fetched: &Fetched) -> Result<SchemaRef> {
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
        let t = table("*.csv", SourceFormat::Csv);
        let schema = infer_schema(&t, &fetch(&t, None, dir.path()).await.unwrap())
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
        let t = table("m.jsonl", SourceFormat::Jsonl);
        let schema = infer_schema(&t, &fetch(&t, None, dir.path()).await.unwrap())
            .await
            .unwrap();
        let cols: Vec<String> = declarations(&schema)
            .iter()
            .map(|c| format!("{}:{}", c.name, c.column_type))
            .collect();
        assert_eq!(cols, ["id:int64", "tier:string"]);

        let err = fetch(&table("none-*.csv", SourceFormat::Csv), None, dir.path())
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("no file matches `none-*.csv`"),
            "{err}"
        );
        let err = fetch(
            &table("s3://bucket/x.csv", SourceFormat::Csv),
            None,
            dir.path(),
        )
        .await
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("needs the source's `access` settings"),
            "{err}"
        );
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
