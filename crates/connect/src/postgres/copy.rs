//! The PostgreSQL binary `COPY` format, encoded straight from Arrow arrays.
//!
//! ```text
//! header   "PGCOPY\n\xff\r\n\0", flags (i32 = 0), extension length (i32 = 0)
//! row      field count (i16), then per field: length (i32, -1 for NULL) and the value
//! trailer  -1 (i16)
//! ```
//!
//! Values are big-endian in PostgreSQL's binary send format: dates are days since
//! 2000-01-01, timestamps microseconds since 2000-01-01 00:00 (nanoseconds are
//! truncated toward the past), `numeric` is base-10000 digits with a weight, a sign and
//! a display scale. The encoder covers exactly the types of [`super::types`].

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Decimal128Array, LargeBinaryArray,
    LargeStringArray, StringArray, StringViewArray,
};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{
    DataType, Date32Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type,
    Schema, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow::record_batch::RecordBatch;
use bytes::{BufMut, Bytes, BytesMut};

use super::types::pg_type_of;
use crate::error::{Error, Result};

/// The 11-byte signature of a binary `COPY` stream.
pub const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

/// Days from 1970-01-01 to 2000-01-01, PostgreSQL's epoch.
const PG_EPOCH_DAYS: i32 = 10_957;
/// Microseconds from 1970-01-01 to 2000-01-01.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

const NUMERIC_POS: u16 = 0x0000;
const NUMERIC_NEG: u16 = 0x4000;

/// Encodes record batches of one schema into a binary `COPY` stream.
///
/// Call [`CopyEncoder::encode`] for each batch (slice large batches to bound memory),
/// [`CopyEncoder::take`] to send what was encoded so far, and [`CopyEncoder::finish`]
/// once for the trailer.
#[derive(Debug)]
pub struct CopyEncoder {
    buf: BytesMut,
    columns: Vec<(String, DataType)>,
    rows: u64,
}

impl CopyEncoder {
    /// An encoder for `schema`; every column must have a PostgreSQL type. The header is
    /// the first thing [`CopyEncoder::take`] returns.
    pub fn new(schema: &Schema) -> Result<Self> {
        let mut columns = Vec::with_capacity(schema.fields().len());
        for f in schema.fields() {
            pg_type_of(f.name(), f.data_type())?;
            columns.push((f.name().clone(), f.data_type().clone()));
        }
        if columns.len() > i16::MAX as usize {
            return Err(Error::Config {
                key: "schema".into(),
                message: format!("{} columns, more than a table can hold", columns.len()),
            });
        }
        let mut buf = BytesMut::with_capacity(1 << 20);
        buf.put_slice(SIGNATURE);
        buf.put_i32(0);
        buf.put_i32(0);
        Ok(Self {
            buf,
            columns,
            rows: 0,
        })
    }

    /// Bytes encoded and not yet taken.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Rows encoded so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Take the bytes encoded so far.
    pub fn take(&mut self) -> Bytes {
        self.buf.split().freeze()
    }

    /// Append the trailer and take the rest of the stream.
    pub fn finish(mut self) -> Bytes {
        self.buf.put_i16(-1);
        self.buf.freeze()
    }

    /// Encode every row of `batch`, which must have the encoder's schema.
    pub fn encode(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_columns() != self.columns.len() {
            return Err(Error::Config {
                key: "schema".into(),
                message: format!(
                    "a batch has {} columns, the table has {}",
                    batch.num_columns(),
                    self.columns.len()
                ),
            });
        }
        let cols = batch
            .columns()
            .iter()
            .zip(&self.columns)
            .map(|(a, (name, dt))| Column::new(name, dt, a))
            .collect::<Result<Vec<_>>>()?;
        let n = cols.len() as i16;
        for row in 0..batch.num_rows() {
            self.buf.put_i16(n);
            for c in &cols {
                c.put(&mut self.buf, row)?;
            }
        }
        self.rows += batch.num_rows() as u64;
        Ok(())
    }
}

enum Kind<'a> {
    Text(&'a StringArray),
    LargeText(&'a LargeStringArray),
    TextView(&'a StringViewArray),
    Int2(Vec<i16>),
    Int2Of(&'a [i16]),
    Int4(&'a [i32]),
    Int4Of(&'a [u16]),
    Int8(&'a [i64]),
    Int8Of(&'a [u32]),
    NumericU64(&'a [u64]),
    Float4(&'a [f32]),
    Float8(&'a [f64]),
    Bool(&'a BooleanArray),
    Date(&'a [i32]),
    /// Timestamp values and their unit.
    Timestamp(&'a [i64], TimeUnit),
    Numeric(&'a Decimal128Array, u16),
    Bytea(&'a BinaryArray),
    LargeBytea(&'a LargeBinaryArray),
}

struct Column<'a> {
    name: &'a str,
    nulls: Option<&'a NullBuffer>,
    kind: Kind<'a>,
}

fn wrong_array(name: &str, dt: &DataType) -> Error {
    Error::Config {
        key: "schema".into(),
        message: format!("column `{name}`: an array does not have the declared type {dt}"),
    }
}

impl<'a> Column<'a> {
    fn new(name: &'a str, dt: &DataType, array: &'a ArrayRef) -> Result<Self> {
        if array.data_type() != dt {
            return Err(wrong_array(name, dt));
        }
        let a = array.as_ref();
        let kind = match dt {
            DataType::Utf8 => Kind::Text(a.as_string::<i32>()),
            DataType::LargeUtf8 => Kind::LargeText(a.as_string::<i64>()),
            DataType::Utf8View => Kind::TextView(a.as_string_view()),
            DataType::Int8 => Kind::Int2(
                a.as_primitive::<Int8Type>()
                    .values()
                    .iter()
                    .map(|v| *v as i16)
                    .collect(),
            ),
            DataType::UInt8 => Kind::Int2(
                a.as_primitive::<UInt8Type>()
                    .values()
                    .iter()
                    .map(|v| *v as i16)
                    .collect(),
            ),
            DataType::Int16 => Kind::Int2Of(a.as_primitive::<Int16Type>().values()),
            DataType::Int32 => Kind::Int4(a.as_primitive::<Int32Type>().values()),
            DataType::UInt16 => Kind::Int4Of(a.as_primitive::<UInt16Type>().values()),
            DataType::Int64 => Kind::Int8(a.as_primitive::<Int64Type>().values()),
            DataType::UInt32 => Kind::Int8Of(a.as_primitive::<UInt32Type>().values()),
            DataType::UInt64 => Kind::NumericU64(a.as_primitive::<UInt64Type>().values()),
            DataType::Float32 => Kind::Float4(a.as_primitive::<Float32Type>().values()),
            DataType::Float64 => Kind::Float8(a.as_primitive::<Float64Type>().values()),
            DataType::Boolean => Kind::Bool(a.as_boolean()),
            DataType::Date32 => Kind::Date(a.as_primitive::<Date32Type>().values()),
            DataType::Timestamp(unit, _) => {
                let values: &[i64] = match unit {
                    TimeUnit::Second => a.as_primitive::<TimestampSecondType>().values(),
                    TimeUnit::Millisecond => a.as_primitive::<TimestampMillisecondType>().values(),
                    TimeUnit::Microsecond => a.as_primitive::<TimestampMicrosecondType>().values(),
                    TimeUnit::Nanosecond => a.as_primitive::<TimestampNanosecondType>().values(),
                };
                Kind::Timestamp(values, *unit)
            }
            DataType::Decimal128(_, s) => {
                let scale = u16::try_from(*s).map_err(|_| wrong_array(name, dt))?;
                Kind::Numeric(a.as_primitive(), scale)
            }
            DataType::Binary => Kind::Bytea(a.as_binary::<i32>()),
            DataType::LargeBinary => Kind::LargeBytea(a.as_binary::<i64>()),
            other => {
                return Err(Error::UnsupportedType {
                    column: name.to_string(),
                    data_type: other.to_string(),
                    target: "postgres",
                })
            }
        };
        Ok(Self {
            name,
            nulls: a.nulls(),
            kind,
        })
    }

    fn out_of_range(&self, what: &str) -> Error {
        Error::Config {
            key: self.name.to_string(),
            message: format!("column `{}`: {what}", self.name),
        }
    }

    #[inline]
    fn put(&self, buf: &mut BytesMut, row: usize) -> Result<()> {
        if self.nulls.is_some_and(|n| n.is_null(row)) {
            buf.put_i32(-1);
            return Ok(());
        }
        match &self.kind {
            Kind::Text(a) => self.put_bytes(buf, a.value(row).as_bytes())?,
            Kind::LargeText(a) => self.put_bytes(buf, a.value(row).as_bytes())?,
            Kind::TextView(a) => self.put_bytes(buf, a.value(row).as_bytes())?,
            Kind::Int2(v) => {
                buf.put_i32(2);
                buf.put_i16(v[row]);
            }
            Kind::Int2Of(v) => {
                buf.put_i32(2);
                buf.put_i16(v[row]);
            }
            Kind::Int4(v) => {
                buf.put_i32(4);
                buf.put_i32(v[row]);
            }
            Kind::Int4Of(v) => {
                buf.put_i32(4);
                buf.put_i32(i32::from(v[row]));
            }
            Kind::Int8(v) => {
                buf.put_i32(8);
                buf.put_i64(v[row]);
            }
            Kind::Int8Of(v) => {
                buf.put_i32(8);
                buf.put_i64(i64::from(v[row]));
            }
            Kind::NumericU64(v) => put_numeric(buf, i128::from(v[row]), 0),
            Kind::Float4(v) => {
                buf.put_i32(4);
                buf.put_f32(v[row]);
            }
            Kind::Float8(v) => {
                buf.put_i32(8);
                buf.put_f64(v[row]);
            }
            Kind::Bool(a) => {
                buf.put_i32(1);
                buf.put_u8(u8::from(a.value(row)));
            }
            Kind::Date(v) => {
                let days = v[row]
                    .checked_sub(PG_EPOCH_DAYS)
                    .ok_or_else(|| self.out_of_range("a date is out of range"))?;
                buf.put_i32(4);
                buf.put_i32(days);
            }
            Kind::Timestamp(v, unit) => {
                let v = v[row];
                let micros = match unit {
                    TimeUnit::Second => v.checked_mul(1_000_000),
                    TimeUnit::Millisecond => v.checked_mul(1_000),
                    TimeUnit::Microsecond => Some(v),
                    TimeUnit::Nanosecond => Some(v.div_euclid(1_000)),
                }
                .and_then(|m| m.checked_sub(PG_EPOCH_MICROS))
                .ok_or_else(|| self.out_of_range("a timestamp is out of range"))?;
                buf.put_i32(8);
                buf.put_i64(micros);
            }
            Kind::Numeric(a, scale) => put_numeric(buf, a.value(row), *scale),
            Kind::Bytea(a) => self.put_bytes(buf, a.value(row))?,
            Kind::LargeBytea(a) => self.put_bytes(buf, a.value(row))?,
        }
        Ok(())
    }

    #[inline]
    fn put_bytes(&self, buf: &mut BytesMut, bytes: &[u8]) -> Result<()> {
        let len = i32::try_from(bytes.len())
            .map_err(|_| self.out_of_range("a value is larger than 2 GiB"))?;
        buf.put_i32(len);
        buf.put_slice(bytes);
        Ok(())
    }
}

/// Write `value * 10^-scale` as a PostgreSQL binary `numeric` field (length included).
pub fn put_numeric(buf: &mut BytesMut, value: i128, scale: u16) {
    let sign = if value < 0 { NUMERIC_NEG } else { NUMERIC_POS };
    let mut abs = value.unsigned_abs();
    // decimal digits, least significant first (|i128| < 10^39)
    let mut dec = [0u8; 40];
    let mut n = 0usize;
    while abs > 0 {
        dec[n] = (abs % 10) as u8;
        abs /= 10;
        n += 1;
    }
    if n == 0 {
        buf.put_i32(8);
        buf.put_i16(0); // ndigits
        buf.put_i16(0); // weight
        buf.put_u16(NUMERIC_POS);
        buf.put_u16(scale);
        return;
    }
    // digit i stands for 10^(i - scale); base-10000 group g holds powers 4g..4g+3
    let scale_i = i32::from(scale);
    let lo = (-scale_i).div_euclid(4);
    let hi = (n as i32 - 1 - scale_i).div_euclid(4);
    let mut groups = [0u16; 16];
    for (i, d) in dec.iter().enumerate().take(n) {
        let p = i as i32 - scale_i;
        let g = (p.div_euclid(4) - lo) as usize;
        groups[g] += u16::from(*d) * 10u16.pow(p.rem_euclid(4) as u32);
    }
    let top = (hi - lo) as usize;
    let mut first = 0usize;
    while groups[first] == 0 {
        first += 1;
    }
    let mut last = top;
    while groups[last] == 0 {
        last -= 1;
    }
    let ndigits = last - first + 1;
    buf.put_i32(8 + 2 * ndigits as i32);
    buf.put_i16(ndigits as i16);
    buf.put_i16((lo + last as i32) as i16);
    buf.put_u16(sign);
    buf.put_u16(scale);
    for g in (first..=last).rev() {
        buf.put_u16(groups[g]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(value: i128, scale: u16) -> (i16, i16, u16, u16, Vec<u16>) {
        let mut buf = BytesMut::new();
        put_numeric(&mut buf, value, scale);
        let b = &buf[..];
        let len = i32::from_be_bytes(b[0..4].try_into().unwrap()) as usize;
        assert_eq!(len, b.len() - 4);
        let ndigits = i16::from_be_bytes([b[4], b[5]]);
        let weight = i16::from_be_bytes([b[6], b[7]]);
        let sign = u16::from_be_bytes([b[8], b[9]]);
        let dscale = u16::from_be_bytes([b[10], b[11]]);
        let digits = b[12..]
            .chunks(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect();
        (ndigits, weight, sign, dscale, digits)
    }

    #[test]
    fn numerics_in_base_10000() {
        assert_eq!(numeric(0, 2), (0, 0, 0, 2, vec![]));
        // 123.45
        assert_eq!(numeric(12345, 2), (2, 0, 0, 2, vec![123, 4500]));
        // -0.01
        assert_eq!(numeric(-1, 2), (1, -1, NUMERIC_NEG, 2, vec![100]));
        // 10000 (trailing zero group stripped)
        assert_eq!(numeric(10000, 0), (1, 1, 0, 0, vec![1]));
        // 12345678.9 at scale 1
        assert_eq!(numeric(123456789, 1), (3, 1, 0, 1, vec![1234, 5678, 9000]));
        // 0.00001 at scale 5
        assert_eq!(numeric(1, 5), (1, -2, 0, 5, vec![1000]));
        // the largest Decimal128(38, 0)
        let max = 10i128.pow(38) - 1;
        let (n, w, s, d, digits) = numeric(max, 0);
        assert_eq!((n, w, s, d), (10, 9, 0, 0));
        assert_eq!(digits[0], 99);
        assert!(digits[1..].iter().all(|g| *g == 9999));
        // and at scale 38
        let (n, w, _, d, _) = numeric(-max, 38);
        assert_eq!((n, w, d), (10, -1, 38));
        // u64::MAX
        let (n, w, _, _, digits) = numeric(u64::MAX as i128, 0);
        assert_eq!((n, w), (5, 4));
        assert_eq!(digits, vec![1844, 6744, 737, 955, 1615]);
    }

    #[test]
    fn header_rows_and_trailer() {
        use arrow::datatypes::Field;
        use std::sync::Arc;
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int32, true),
            Field::new("b", DataType::Utf8, true),
            Field::new("d", DataType::Date32, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(arrow::array::Int32Array::from(vec![Some(1), None])),
                Arc::new(StringArray::from(vec![Some("é"), None])),
                Arc::new(arrow::array::Date32Array::from(vec![Some(10_957), Some(0)])),
            ],
        )
        .unwrap();
        let mut enc = CopyEncoder::new(&schema).unwrap();
        enc.encode(&batch).unwrap();
        assert_eq!(enc.rows(), 2);
        let mut all = enc.take().to_vec();
        all.extend_from_slice(&enc.finish());
        let mut expected = SIGNATURE.to_vec();
        expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
        expected.extend_from_slice(&[0, 3, 0, 0, 0, 4, 0, 0, 0, 1, 0, 0, 0, 2, 0xc3, 0xa9]);
        expected.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0]);
        expected.extend_from_slice(&[0, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        expected.extend_from_slice(&[0, 0, 0, 4]);
        expected.extend_from_slice(&(-10_957i32).to_be_bytes());
        expected.extend_from_slice(&[0xff, 0xff]);
        assert_eq!(all, expected);
    }
}
