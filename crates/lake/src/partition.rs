//! Data partitions: writing Arrow record-batch streams as CSV (CDM conventions) or
//! Parquet files in the lake, and reading a `model.json` entity back.
//!
//! Writes stream through a multipart upload: a partition is never held whole in memory.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use futures::{Stream, StreamExt};
use lakecdp_core::PartitionFormat;
use object_store::buffered::BufWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::AsyncArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use tokio::io::AsyncWriteExt;

use crate::cdm::{
    default_arrow_type, ArrowTypes, Attribute, Entity, FileFormatSettings, Partition,
};
use crate::error::{Error, Result};
use crate::layout::Lake;

/// What writing one partition produced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PartitionStats {
    /// Rows written.
    pub rows: u64,
    /// Batches written.
    pub batches: u64,
}

/// Check that every column can be written in `format`.
pub fn check_writable(schema: &Schema, format: PartitionFormat) -> Result<()> {
    if format == PartitionFormat::Csv {
        for f in schema.fields() {
            if f.data_type().is_nested()
                || matches!(
                    f.data_type(),
                    DataType::Binary | DataType::LargeBinary | DataType::BinaryView
                )
            {
                return Err(Error::Unsupported(format!(
                    "column `{}` has type {} which CSV partitions cannot hold; set `output_format = \"parquet\"` for this environment",
                    f.name(),
                    f.data_type()
                )));
            }
        }
    }
    Ok(())
}

/// Write a stream of batches as one partition at `relative` (a path under the lake's
/// environment root). Batches must all have `schema`.
pub async fn write<S, E>(
    lake: &Lake,
    relative: &str,
    schema: SchemaRef,
    format: PartitionFormat,
    mut batches: S,
) -> Result<PartitionStats>
where
    S: Stream<Item = std::result::Result<RecordBatch, E>> + Unpin,
    E: std::fmt::Display,
{
    check_writable(&schema, format)?;
    let path = lake.path(relative);
    let upload = BufWriter::new(lake.store().clone(), path.clone());
    let mut stats = PartitionStats::default();
    match format {
        PartitionFormat::Csv => {
            let mut out = upload;
            let mut header = true;
            let mut buf = Vec::with_capacity(1 << 20);
            // An empty table still gets its header row.
            if let Some(first) = next_batch(&path, &mut batches).await? {
                write_csv(&path, &mut buf, &first, header)?;
                header = false;
                stats.rows += first.num_rows() as u64;
                stats.batches += 1;
            }
            if header {
                write_csv(
                    &path,
                    &mut buf,
                    &RecordBatch::new_empty(schema.clone()),
                    true,
                )?;
            }
            loop {
                if buf.len() >= 1 << 20 {
                    out.write_all(&buf)
                        .await
                        .map_err(|e| Error::data(&path, e))?;
                    buf.clear();
                }
                match next_batch(&path, &mut batches).await? {
                    Some(b) => {
                        write_csv(&path, &mut buf, &b, false)?;
                        stats.rows += b.num_rows() as u64;
                        stats.batches += 1;
                    }
                    None => break,
                }
            }
            out.write_all(&buf)
                .await
                .map_err(|e| Error::data(&path, e))?;
            out.shutdown().await.map_err(|e| Error::data(&path, e))?;
        }
        PartitionFormat::Parquet => {
            let props = WriterProperties::builder()
                .set_compression(Compression::ZSTD(ZstdLevel::default()))
                .build();
            let mut writer = AsyncArrowWriter::try_new(upload, schema.clone(), Some(props))
                .map_err(|e| Error::data(&path, e))?;
            while let Some(b) = next_batch(&path, &mut batches).await? {
                stats.rows += b.num_rows() as u64;
                stats.batches += 1;
                writer.write(&b).await.map_err(|e| Error::data(&path, e))?;
            }
            writer.close().await.map_err(|e| Error::data(&path, e))?;
        }
    }
    Ok(stats)
}

async fn next_batch<S, E>(
    path: &object_store::path::Path,
    batches: &mut S,
) -> Result<Option<RecordBatch>>
where
    S: Stream<Item = std::result::Result<RecordBatch, E>> + Unpin,
    E: std::fmt::Display,
{
    match batches.next().await {
        Some(Ok(b)) => Ok(Some(b)),
        Some(Err(e)) => Err(Error::data(path, format!("the input failed: {e}"))),
        None => Ok(None),
    }
}

fn write_csv(
    path: &object_store::path::Path,
    buf: &mut Vec<u8>,
    batch: &RecordBatch,
    header: bool,
) -> Result<()> {
    let mut w = arrow::csv::WriterBuilder::new()
        .with_header(header)
        .with_timestamp_format("%Y-%m-%dT%H:%M:%S%.f".into())
        .with_timestamp_tz_format("%Y-%m-%dT%H:%M:%S%.f%:z".into())
        .build(&mut *buf);
    w.write(batch).map_err(|e| Error::data(path, e))
}

/// The Arrow schema of an entity of lakecdp's own lake, from its attributes and their
/// exact annotated types. An annotation refused as too long or too deeply nested (see
/// [`crate::cdm::MAX_ARROW_TYPE_LEN`]) is left out with a warning: the attribute reads
/// with its CDM type. [`entity_schema_of`] reports it as an error instead, and reads
/// other tools' documents without their annotations.
pub fn entity_schema(entity: &Entity) -> SchemaRef {
    schema_of(entity, |a| {
        a.arrow_type(ArrowTypes::Annotated).unwrap_or_else(|e| {
            tracing::warn!(entity = %entity.name, error = %e, "annotation ignored");
            default_arrow_type(a.data_type)
        })
    })
}

/// The Arrow schema of an entity, from its attributes: with [`ArrowTypes::Annotated`]
/// (only for lakecdp's own lake) their exact annotated types, an annotation refused as
/// too long or too deeply nested being an error; with [`ArrowTypes::CdmOnly`] the
/// default types of their CDM data types.
pub fn entity_schema_of(entity: &Entity, types: ArrowTypes) -> Result<SchemaRef> {
    let mut fields = Vec::with_capacity(entity.attributes.len());
    for a in &entity.attributes {
        fields.push(Field::new(&a.name, a.arrow_type(types)?, true));
    }
    Ok(Arc::new(Schema::new(fields)))
}

fn schema_of(entity: &Entity, type_of: impl Fn(&Attribute) -> DataType) -> SchemaRef {
    Arc::new(Schema::new(
        entity
            .attributes
            .iter()
            .map(|a| Field::new(&a.name, type_of(a), true))
            .collect::<Vec<_>>(),
    ))
}

/// Where a partition of an entity of the CDM folder `folder` is, relative to the lake;
/// a partition outside this lake is an error.
pub fn partition_relative(lake: &Lake, folder: &str, p: &Partition) -> Result<String> {
    let relative = match lake.relative_of_url(&p.location) {
        Some(r) => r.to_string(),
        None if !p.location.contains("://") => format!(
            "{}/{}",
            folder.trim_end_matches('/'),
            p.location.trim_start_matches('/')
        ),
        None => {
            return Err(Error::InvalidCdm {
                path: format!("{folder}/model.json"),
                message: format!(
                    "partition `{}` points outside this lake: {}",
                    p.name, p.location
                ),
            })
        }
    };
    Ok(relative)
}

/// Read every partition of an entity of a CDM folder of this lake into memory.
///
/// The whole table is held in memory: meant for checks, tests, small tables and
/// unification (which matches in memory). The insight processes, exports and explain
/// read published tables as DataFusion listing tables instead
/// (`lakecdp_engine::Session::published_table`). `folder` is the CDM folder (relative to
/// the environment root), used to resolve relative partition locations of other tools'
/// documents.
///
/// Attributes read with their exact annotated types; an annotation refused as too long
/// or too deeply nested is an error ([`Error::ArrowTypeAnnotation`]).
pub async fn read_entity(lake: &Lake, folder: &str, entity: &Entity) -> Result<Vec<RecordBatch>> {
    let schema = entity_schema_of(entity, ArrowTypes::Annotated)?;
    let mut out = Vec::new();
    for p in &entity.partitions {
        let relative = partition_relative(lake, folder, p)?;
        let bytes = lake.get(&relative).await?;
        let path = lake.path(&relative);
        if p.is_parquet() {
            let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
                .map_err(|e| Error::data(&path, e))?
                .build()
                .map_err(|e| Error::data(&path, e))?;
            for b in reader {
                let b = b.map_err(|e| Error::data(&path, e))?;
                out.push(b.with_schema(schema.clone()).map_err(|e| {
                    Error::data(&path, format!("schema differs from model.json: {e}"))
                })?);
            }
        } else {
            let settings = p
                .file_format_settings
                .clone()
                .unwrap_or_else(|| FileFormatSettings {
                    column_headers: false,
                    ..FileFormatSettings::csv()
                });
            let delimiter = settings.delimiter_byte().ok_or_else(|| {
                Error::data(
                    &path,
                    format!("unsupported delimiter `{}`", settings.delimiter),
                )
            })?;
            let reader = arrow::csv::ReaderBuilder::new(schema.clone())
                .with_header(settings.column_headers)
                .with_delimiter(delimiter)
                .build(std::io::Cursor::new(bytes))
                .map_err(|e| Error::data(&path, e))?;
            for b in reader {
                out.push(b.map_err(|e| Error::data(&path, e))?);
            }
        }
    }
    Ok(out)
}
