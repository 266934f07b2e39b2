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
use parquet::arrow::arrow_writer::{compute_leaves, ArrowColumnChunk, ArrowColumnWriter};
use parquet::arrow::ArrowWriter;
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
            write_parquet(
                &path,
                upload,
                schema,
                &mut batches,
                &mut stats,
                ROW_GROUP_ROWS,
            )
            .await?;
        }
    }
    Ok(stats)
}

/// Rows of a Parquet row group.
const ROW_GROUP_ROWS: usize = 1024 * 1024;

/// The bytes a Parquet file writer has produced, shared with the task that uploads them.
#[derive(Clone, Default)]
struct Shared(Arc<std::sync::Mutex<Vec<u8>>>);

impl Shared {
    fn take(&self) -> Vec<u8> {
        match self.0.lock() {
            Ok(mut b) => std::mem::take(&mut *b),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        }
    }
}

impl std::io::Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut b = self
            .0
            .lock()
            .map_err(|_| std::io::Error::other("a Parquet buffer writer panicked"))?;
        b.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Write a Parquet partition (ZSTD), encoding the columns of each row group on every
/// core: each worker owns the column writers of some columns and encodes them from
/// every batch, while the next batches arrive. Row groups are written in order, as
/// [`parquet::arrow::ArrowWriter`] would write them.
async fn write_parquet<S, E>(
    path: &object_store::path::Path,
    mut upload: BufWriter,
    schema: SchemaRef,
    batches: &mut S,
    stats: &mut PartitionStats,
    row_group_rows: usize,
) -> Result<()>
where
    S: Stream<Item = std::result::Result<RecordBatch, E>> + Unpin,
    E: std::fmt::Display,
{
    let data = |e: parquet::errors::ParquetError| Error::data(path, e);
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(row_group_rows))
        .build();
    let buffer = Shared::default();
    let (mut file, factory) = ArrowWriter::try_new(buffer.clone(), schema.clone(), Some(props))
        .and_then(ArrowWriter::into_serialized_writer)
        .map_err(data)?;
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, schema.fields().len().max(1));
    let mut pending: Option<RecordBatch> = None;
    let mut done = false;
    let mut row_group = 0usize;
    while !done {
        // one row group: each worker encodes its columns of every batch sent to it
        let writers = factory.create_column_writers(row_group).map_err(data)?;
        let mut owned: Vec<Vec<(usize, ArrowColumnWriter)>> =
            (0..workers).map(|_| Vec::new()).collect();
        // one writer per leaf column, in order; a leaf belongs to one top-level column
        for (leaf, w) in writers.into_iter().enumerate() {
            let c = file.schema_descr().get_column_root_idx(leaf);
            owned[c % workers].push((c, w));
        }
        let mut senders = Vec::with_capacity(workers);
        let mut handles = Vec::with_capacity(workers);
        for mine in owned {
            let (tx, mut rx) = tokio::sync::mpsc::channel::<RecordBatch>(2);
            let schema = schema.clone();
            senders.push(tx);
            handles.push(tokio::task::spawn_blocking(
                move || -> parquet::errors::Result<Vec<(usize, ArrowColumnChunk)>> {
                    let mut mine = mine;
                    while let Some(batch) = rx.blocking_recv() {
                        let mut last: Option<usize> = None;
                        let mut leaves = Vec::new();
                        for (c, w) in mine.iter_mut() {
                            if last != Some(*c) {
                                leaves = compute_leaves(schema.field(*c), batch.column(*c))?;
                                leaves.reverse();
                                last = Some(*c);
                            }
                            let l = leaves.pop().ok_or_else(|| {
                                parquet::errors::ParquetError::General(
                                    "a column has fewer leaves than writers".into(),
                                )
                            })?;
                            w.write(&l)?;
                        }
                    }
                    let mut chunks = Vec::with_capacity(mine.len());
                    for (c, w) in mine {
                        chunks.push((c, w.close()?));
                    }
                    Ok(chunks)
                },
            ));
        }
        let mut rows = 0usize;
        while rows < row_group_rows {
            let batch = match pending.take() {
                Some(b) => b,
                None => match next_batch(path, batches).await? {
                    Some(b) => {
                        stats.rows += b.num_rows() as u64;
                        stats.batches += 1;
                        b
                    }
                    None => {
                        done = true;
                        break;
                    }
                },
            };
            let room = row_group_rows - rows;
            let batch = if batch.num_rows() > room {
                pending = Some(batch.slice(room, batch.num_rows() - room));
                batch.slice(0, room)
            } else {
                batch
            };
            if batch.num_rows() == 0 {
                continue;
            }
            rows += batch.num_rows();
            for tx in &senders {
                if tx.send(batch.clone()).await.is_err() {
                    // the worker stopped: its error comes from joining it
                    break;
                }
            }
        }
        drop(senders);
        let mut chunks = Vec::new();
        for h in handles {
            let encoded = h
                .await
                .map_err(|e| Error::data(path, format!("a Parquet encoder stopped: {e}")))?;
            chunks.extend(encoded.map_err(data)?);
        }
        if rows == 0 {
            // the end of the input (an empty input writes a file without row groups)
            break;
        }
        // chunks in column order; a column's leaves in their order (stable sort)
        chunks.sort_by_key(|(c, _)| *c);
        let mut group = file.next_row_group().map_err(data)?;
        for (_, chunk) in chunks {
            chunk.append_to_row_group(&mut group).map_err(data)?;
        }
        group.close().map_err(data)?;
        file.flush().map_err(|e| Error::data(path, e))?;
        row_group += 1;
        let bytes = buffer.take();
        upload
            .write_all(&bytes)
            .await
            .map_err(|e| Error::data(path, e))?;
    }
    file.close().map_err(data)?;
    let bytes = buffer.take();
    upload
        .write_all(&bytes)
        .await
        .map_err(|e| Error::data(path, e))?;
    upload.shutdown().await.map_err(|e| Error::data(path, e))?;
    Ok(())
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
        Some(r) => r,
        None if !p.location.contains("://") && !p.location.starts_with('/') => format!(
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

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray, StructArray};
    use arrow::compute::concat_batches;
    use object_store::memory::InMemory;
    use object_store::{ObjectStore, ObjectStoreExt};

    fn batch(schema: &SchemaRef, from: usize, n: usize) -> RecordBatch {
        let ids = Int64Array::from_iter((from..from + n).map(|i| (i % 7 != 0).then_some(i as i64)));
        let names = StringArray::from_iter_values((from..from + n).map(|i| format!("name {i}")));
        let inner = StructArray::from(vec![
            (
                Arc::new(Field::new("x", DataType::Float64, true)),
                Arc::new(Float64Array::from_iter_values(
                    (from..from + n).map(|i| i as f64 / 2.0),
                )) as ArrayRef,
            ),
            (
                Arc::new(Field::new("y", DataType::Utf8, true)),
                Arc::new(StringArray::from_iter(
                    (from..from + n).map(|i| (i % 3 != 0).then(|| format!("y{}", i % 11))),
                )) as ArrayRef,
            ),
        ]);
        RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(ids), Arc::new(names), Arc::new(inner)],
        )
        .unwrap()
    }

    #[tokio::test]
    async fn parquet_columns_encoded_in_parallel_read_back_in_order() {
        let inner = arrow::datatypes::Fields::from(vec![
            Field::new("x", DataType::Float64, true),
            Field::new("y", DataType::Utf8, true),
        ]);
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("nested", DataType::Struct(inner), true),
        ]));
        // batches of uneven sizes that straddle the row groups' boundaries
        let mut input = Vec::new();
        let mut from = 0;
        for n in [1, 999, 1000, 2500, 0, 7, 1493] {
            input.push(batch(&schema, from, n));
            from += n;
        }
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let path = object_store::path::Path::from("t/part-00000.parquet");
        let mut stats = PartitionStats::default();
        let stream = futures::stream::iter(input.clone().into_iter().map(Ok::<_, String>));
        write_parquet(
            &path,
            BufWriter::new(store.clone(), path.clone()),
            schema.clone(),
            &mut Box::pin(stream),
            &mut stats,
            1000,
        )
        .await
        .unwrap();
        assert_eq!(stats.rows, from as u64);
        let bytes = store.get(&path).await.unwrap().bytes().await.unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap();
        let groups: Vec<i64> = reader
            .metadata()
            .row_groups()
            .iter()
            .map(|g| g.num_rows())
            .collect();
        assert_eq!(groups, [1000, 1000, 1000, 1000, 1000, 1000]);
        let read: Vec<RecordBatch> = reader.build().unwrap().map(|b| b.unwrap()).collect();
        let read = concat_batches(&schema, &read).unwrap();
        assert_eq!(read, concat_batches(&schema, &input).unwrap());
    }

    #[tokio::test]
    async fn an_empty_parquet_partition_has_its_schema_and_no_rows() {
        let schema: SchemaRef =
            Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]));
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let path = object_store::path::Path::from("t/empty.parquet");
        let mut stats = PartitionStats::default();
        let stream = futures::stream::iter(Vec::<std::result::Result<RecordBatch, String>>::new());
        write_parquet(
            &path,
            BufWriter::new(store.clone(), path.clone()),
            schema.clone(),
            &mut Box::pin(stream),
            &mut stats,
            1000,
        )
        .await
        .unwrap();
        let bytes = store.get(&path).await.unwrap().bytes().await.unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap();
        assert_eq!(reader.schema().fields().len(), 1);
        assert_eq!(reader.metadata().num_row_groups(), 0);
        assert_eq!(stats.rows, 0);
    }
}
