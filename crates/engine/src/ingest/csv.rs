//! CSV at scale: a sequential, quote-aware scan finds where records start and end
//! (cheaply, with `memchr`), cutting a file into chunks of whole records; each chunk is
//! then tokenised on its own, on any thread, straight into one text buffer per column.
//!
//! The scan and the tokeniser follow one grammar, so a record's bounds never depend on
//! where a file was cut. A record is the bytes up to a line end outside quotes. What the
//! scan decides on its own:
//! - a record that spans a quoted line end and turns out malformed (a quote that never
//!   closes, text after a closing quote, an unescaped quote, or a record past the length
//!   limit) is taken as its first line only, and the scan resumes at the next line: a
//!   quote that never closes costs one corrupt row, not the records after it;
//! - a record longer than the limit without a quoted line end ends at its line end; only
//!   the first bytes of it are kept, for the corrupt table;
//! - blank lines are not records.
//!
//! Every search moves forward from the start of the record, and a record is searched
//! again only after the scan reads at least as many new bytes as it holds: the scan is
//! linear in the input.

use arrow::array::StringArray;
use arrow::buffer::{Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use lakecdp_core::Encoding;
use std::io::Read;

use super::convert::{Converted, Converter};
use super::records::{Corrupt, Dialect};

/// Bytes of an over-long record kept as its raw text in the corrupt table.
pub(crate) const RAW_PREFIX: usize = 64 * 1024;

/// The largest record length and chunk size: a chunk (a chunk's worth of records and one
/// record more, twice as long once Latin-1 is decoded) stays well within the 2 GiB that
/// 32-bit Arrow offsets address.
pub(crate) const MAX_LIMIT: usize = 256 * 1024 * 1024;

/// How the scan found a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SpanKind {
    /// A whole record.
    Whole,
    /// The first line of a record that ran over a quoted line end and did not parse.
    Cut,
    /// The first bytes of a record longer than the limit.
    TooLong,
}

/// A record found by the scan: its bytes (without the line end) in its chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub start: usize,
    pub end: usize,
    /// 1-based line where the record starts.
    pub line: u64,
    pub kind: SpanKind,
}

/// Whole records of a file, in order.
#[derive(Debug)]
pub(crate) struct Chunk {
    pub bytes: Vec<u8>,
    pub spans: Vec<Span>,
}

enum Scan {
    Record { end: usize, next: usize, lines: u64 },
    Cut { end: usize, next: usize },
    TooLong { scanned: usize },
    NeedMore,
}

fn trim_cr(buf: &[u8], start: usize, end: usize) -> usize {
    if end > start && buf[end - 1] == b'\r' {
        end - 1
    } else {
        end
    }
}

/// Scan one record starting at `start` of `buf`.
fn scan_record(buf: &[u8], start: usize, eof: bool, d: &Dialect, limit: usize) -> Scan {
    #[derive(PartialEq)]
    enum S {
        Unquoted,
        Quoted,
        AfterQuote,
    }
    let capped = buf.len() > start + limit;
    let region = if capped { start + limit + 1 } else { buf.len() };
    let bytes = &buf[..region];
    let mut s = S::Unquoted;
    let mut i = start;
    let mut malformed = false;
    let mut first_nl: Option<usize> = None;
    let mut quoted_lines = 0u64;
    let escape = d.escape.filter(|e| *e != d.quote);
    // the end of what was scanned: complete, cut, too long or waiting for more input
    let out_of_bytes = |first_nl: Option<usize>, quoted_lines: u64, at_end_ok: bool| -> Scan {
        if capped {
            match first_nl {
                Some(nl) => Scan::Cut {
                    end: trim_cr(buf, start, nl),
                    next: nl + 1,
                },
                None => Scan::TooLong { scanned: region },
            }
        } else if eof {
            match first_nl {
                Some(nl) if !at_end_ok => Scan::Cut {
                    end: trim_cr(buf, start, nl),
                    next: nl + 1,
                },
                _ => Scan::Record {
                    end: trim_cr(buf, start, buf.len()),
                    next: buf.len(),
                    lines: 1 + quoted_lines,
                },
            }
        } else {
            Scan::NeedMore
        }
    };
    loop {
        match s {
            S::Unquoted => match memchr::memchr2(d.quote, b'\n', &bytes[i..]) {
                None => return out_of_bytes(first_nl, quoted_lines, !malformed),
                Some(k) => {
                    let p = i + k;
                    if bytes[p] == b'\n' {
                        if malformed {
                            if let Some(nl) = first_nl {
                                return Scan::Cut {
                                    end: trim_cr(buf, start, nl),
                                    next: nl + 1,
                                };
                            }
                        }
                        return Scan::Record {
                            end: trim_cr(buf, start, p),
                            next: p + 1,
                            lines: 1 + quoted_lines,
                        };
                    }
                    if p == start || bytes[p - 1] == d.delimiter {
                        s = S::Quoted;
                    } else {
                        malformed = true;
                    }
                    i = p + 1;
                }
            },
            S::Quoted => {
                let found = match escape {
                    Some(e) => memchr::memchr3(d.quote, b'\n', e, &bytes[i..]),
                    None => memchr::memchr2(d.quote, b'\n', &bytes[i..]),
                };
                match found {
                    None => return out_of_bytes(first_nl, quoted_lines, false),
                    Some(k) => {
                        let p = i + k;
                        let b = bytes[p];
                        if b == b'\n' {
                            first_nl.get_or_insert(p);
                            quoted_lines += 1;
                            i = p + 1;
                        } else if b == d.quote {
                            s = S::AfterQuote;
                            i = p + 1;
                        } else if p + 1 < bytes.len() {
                            // an escaped byte, a line end included
                            if bytes[p + 1] == b'\n' {
                                first_nl.get_or_insert(p + 1);
                                quoted_lines += 1;
                            }
                            i = p + 2;
                        } else {
                            i = p + 1;
                        }
                    }
                }
            }
            S::AfterQuote => {
                if i >= bytes.len() {
                    return out_of_bytes(first_nl, quoted_lines, !malformed);
                }
                let b = bytes[i];
                if b == d.quote {
                    s = S::Quoted;
                    i += 1;
                } else if b == d.delimiter {
                    s = S::Unquoted;
                    i += 1;
                    // the next field starts here: a quote right after opens it
                    if i < bytes.len() && bytes[i] == d.quote {
                        s = S::Quoted;
                        i += 1;
                    }
                } else if b == b'\n' {
                    s = S::Unquoted;
                } else if b == b'\r' && i + 1 < bytes.len() && bytes[i + 1] == b'\n' {
                    i += 1;
                    s = S::Unquoted;
                } else if b == b'\r' && i + 1 == bytes.len() && !capped {
                    if !eof {
                        return Scan::NeedMore;
                    }
                    return Scan::Record {
                        end: i,
                        next: bytes.len(),
                        lines: 1 + quoted_lines,
                    };
                } else {
                    malformed = true;
                    s = S::Unquoted;
                    i += 1;
                }
            }
        }
    }
}

/// Cuts a CSV stream into chunks of whole records.
pub(crate) struct Scanner<R> {
    reader: R,
    dialect: Dialect,
    limit: usize,
    chunk_bytes: usize,
    buf: Vec<u8>,
    pos: usize,
    eof: bool,
    line: u64,
    first: bool,
    skipping: bool,
    spans: Vec<Span>,
}

impl<R: Read> Scanner<R> {
    /// A scanner of records up to `limit` bytes, in chunks of about `chunk_bytes`.
    pub fn new(reader: R, dialect: Dialect, limit: usize, chunk_bytes: usize) -> Self {
        Self {
            reader,
            dialect,
            limit: limit.clamp(1, MAX_LIMIT),
            chunk_bytes: chunk_bytes.clamp(1, MAX_LIMIT),
            buf: Vec::new(),
            pos: 0,
            eof: false,
            line: 1,
            first: true,
            skipping: false,
            spans: Vec::new(),
        }
    }

    /// Read at least `want` more bytes (or to the end of the input).
    fn fill(&mut self, want: usize) -> std::io::Result<()> {
        let target = self.buf.len() + want;
        self.buf.reserve(want);
        while self.buf.len() < target {
            let len = self.buf.len();
            self.buf.resize(target, 0);
            let n = loop {
                match self.reader.read(&mut self.buf[len..]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        self.buf.truncate(len);
                        return Err(e);
                    }
                }
            };
            self.buf.truncate(len + n);
            if n == 0 {
                self.eof = true;
                break;
            }
        }
        if self.first && (self.buf.len() >= 3 || self.eof) {
            self.first = false;
            if self.buf.starts_with(b"\xEF\xBB\xBF") {
                self.buf.drain(..3);
            }
        }
        Ok(())
    }

    fn take_chunk(&mut self) -> Chunk {
        let rest = self.buf[self.pos..].to_vec();
        self.buf.truncate(self.pos);
        let bytes = std::mem::replace(&mut self.buf, rest);
        self.pos = 0;
        Chunk {
            bytes,
            spans: std::mem::take(&mut self.spans),
        }
    }

    /// The next chunk: at most `max_records` records, about `chunk_bytes` bytes; `None`
    /// at the end of the input.
    pub fn next_chunk(&mut self, max_records: usize) -> std::io::Result<Option<Chunk>> {
        loop {
            if !self.spans.is_empty()
                && (self.spans.len() >= max_records || self.pos >= self.chunk_bytes)
            {
                return Ok(Some(self.take_chunk()));
            }
            if self.skipping {
                match memchr::memchr(b'\n', &self.buf[self.pos..]) {
                    Some(k) => {
                        self.buf.drain(self.pos..self.pos + k + 1);
                        self.skipping = false;
                        self.line += 1;
                    }
                    None if self.eof => {
                        self.buf.truncate(self.pos);
                        self.skipping = false;
                    }
                    None => {
                        self.buf.truncate(self.pos);
                        self.fill(self.chunk_bytes.max(1 << 16))?;
                    }
                }
                continue;
            }
            if self.pos >= self.buf.len() && self.eof {
                if self.spans.is_empty() {
                    return Ok(None);
                }
                return Ok(Some(self.take_chunk()));
            }
            let start = self.pos;
            match scan_record(&self.buf, start, self.eof, &self.dialect, self.limit) {
                Scan::Record { end, next, lines } => {
                    if end > start {
                        self.spans.push(Span {
                            start,
                            end,
                            line: self.line,
                            kind: SpanKind::Whole,
                        });
                    }
                    self.line += lines;
                    self.pos = next;
                }
                Scan::Cut { end, next } => {
                    self.spans.push(Span {
                        start,
                        end,
                        line: self.line,
                        kind: SpanKind::Cut,
                    });
                    self.line += 1;
                    self.pos = next;
                }
                Scan::TooLong { scanned } => {
                    let keep = start + RAW_PREFIX.min(self.limit);
                    self.spans.push(Span {
                        start,
                        end: keep,
                        line: self.line,
                        kind: SpanKind::TooLong,
                    });
                    // nothing scanned held a line end: the rest of the line is skipped
                    self.buf.drain(keep..scanned);
                    self.pos = keep;
                    self.skipping = true;
                }
                Scan::NeedMore => {
                    if !self.spans.is_empty() && self.pos > 0 {
                        return Ok(Some(self.take_chunk()));
                    }
                    let partial = self.buf.len() - self.pos;
                    self.fill(self.chunk_bytes.max(partial).max(1 << 16))?;
                }
            }
        }
    }
}

/// Why a record of the tokeniser is corrupt.
pub(crate) fn unclosed_reason(kind: SpanKind) -> &'static str {
    match kind {
        SpanKind::Cut => "a quoted field is not closed: the quote runs past its line into text that does not parse; the line is set aside and reading resumes at the next one",
        _ => "a quoted field is not closed: the file ends inside it",
    }
}

/// Receives the fields of a record.
pub(crate) trait Sink {
    /// A piece of field `field` (a field is one piece or more, in order).
    fn piece(&mut self, field: usize, bytes: &[u8]);
    /// Field `field` is complete.
    fn end(&mut self, field: usize);
}

/// Tokenise one record into `sink`; returns the number of fields, or why the record is
/// malformed. Stops after `max_fields` fields.
pub(crate) fn tokenise(
    rec: &[u8],
    d: &Dialect,
    kind: SpanKind,
    max_fields: usize,
    sink: &mut impl Sink,
) -> Result<usize, String> {
    let n = rec.len();
    let escape = d.escape.filter(|e| *e != d.quote);
    let mut i = 0;
    let mut field = 0usize;
    loop {
        if field >= max_fields {
            return Err(format!(
                "{TOO_MANY_FIELDS}: more than the limit of {max_fields}"
            ));
        }
        if i < n && rec[i] == d.quote {
            i += 1;
            loop {
                let found = match escape {
                    Some(e) => memchr::memchr2(d.quote, e, &rec[i..]),
                    None => memchr::memchr(d.quote, &rec[i..]),
                };
                let Some(k) = found else {
                    return Err(unclosed_reason(kind).to_string());
                };
                let p = i + k;
                sink.piece(field, &rec[i..p]);
                if rec[p] != d.quote {
                    // the escape byte
                    if p + 1 < n {
                        sink.piece(field, &rec[p + 1..p + 2]);
                        i = p + 2;
                    } else {
                        sink.piece(field, &rec[p..p + 1]);
                        i = p + 1;
                    }
                    continue;
                }
                i = p + 1;
                if i < n && rec[i] == d.quote {
                    sink.piece(field, &rec[i..i + 1]);
                    i += 1;
                    continue;
                }
                break;
            }
            sink.end(field);
            field += 1;
            if i >= n {
                return Ok(field);
            }
            if rec[i] != d.delimiter {
                return Err(format!(
                    "unescaped quote in field {field} (text after its closing quote)"
                ));
            }
            i += 1;
        } else {
            match memchr::memchr2(d.delimiter, d.quote, &rec[i..]) {
                None => {
                    sink.piece(field, &rec[i..]);
                    sink.end(field);
                    return Ok(field + 1);
                }
                Some(k) => {
                    let p = i + k;
                    if rec[p] == d.quote {
                        return Err(format!("unescaped quote in field {}", field + 1));
                    }
                    sink.piece(field, &rec[i..p]);
                    sink.end(field);
                    field += 1;
                    i = p + 1;
                }
            }
        }
    }
}

/// Builds one text column of a chunk: one values buffer, offsets and validity.
#[derive(Debug, Default)]
pub(crate) struct TextColumn {
    values: Vec<u8>,
    offsets: Vec<i32>,
    valid: Vec<bool>,
    /// Where the field being read starts in `values`.
    open: usize,
}

impl TextColumn {
    pub fn with_capacity(rows: usize, bytes: usize) -> Self {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        Self {
            values: Vec::with_capacity(bytes),
            offsets,
            valid: Vec::with_capacity(rows),
            open: 0,
        }
    }

    /// Append a piece of the current field.
    pub fn piece(&mut self, bytes: &[u8], encoding: Encoding) {
        match encoding {
            Encoding::Latin1 => {
                for &b in bytes {
                    if b < 0x80 {
                        self.values.push(b);
                    } else {
                        self.values.push(0xC0 | (b >> 6));
                        self.values.push(0x80 | (b & 0x3F));
                    }
                }
            }
            Encoding::Utf8 | Encoding::Utf8Bom => self.values.extend_from_slice(bytes),
        }
    }

    /// End the current field: null when it is one of the null markers, trimmed of
    /// surrounding whitespace when `trim`.
    pub fn end(&mut self, null_markers: &[Vec<u8>], trim: bool) {
        let start = self.open;
        let value = &self.values[start..];
        if null_markers.iter().any(|m| m.as_slice() == value) {
            self.values.truncate(start);
            self.valid.push(false);
        } else {
            if trim {
                let (a, b) = trimmed(value);
                if a > 0 || b < value.len() {
                    self.values.copy_within(start + a..start + b, start);
                    self.values.truncate(start + (b - a));
                }
            }
            self.valid.push(true);
        }
        self.offsets.push(self.values.len() as i32);
        self.open = self.values.len();
    }

    /// A missing value.
    pub fn null(&mut self) {
        self.values.truncate(self.open);
        self.valid.push(false);
        self.offsets.push(self.values.len() as i32);
    }

    /// Where the column stands, to go back to when a record turns out corrupt.
    pub fn mark(&self) -> (usize, usize) {
        (self.values.len(), self.valid.len())
    }

    /// Go back to `mark`.
    pub fn reset(&mut self, mark: (usize, usize)) {
        self.values.truncate(mark.0);
        self.valid.truncate(mark.1);
        self.offsets.truncate(mark.1 + 1);
        self.open = mark.0;
    }

    /// The column as an Arrow array; its bytes must be UTF-8.
    pub fn finish(self) -> Result<StringArray, arrow::error::ArrowError> {
        let nulls = if self.valid.iter().all(|v| *v) {
            None
        } else {
            Some(NullBuffer::from(self.valid))
        };
        let offsets = OffsetBuffer::new(ScalarBuffer::from(self.offsets));
        StringArray::try_new(offsets, Buffer::from_vec(self.values), nulls)
    }
}

/// The range of `v` without surrounding whitespace (Unicode whitespace, as `str::trim`).
fn trimmed(v: &[u8]) -> (usize, usize) {
    match (v.first(), v.last()) {
        (Some(f), Some(l)) if f.is_ascii_graphic() && l.is_ascii_graphic() => (0, v.len()),
        (None, _) | (_, None) => (0, 0),
        _ => match std::str::from_utf8(v) {
            Ok(s) => {
                let t = s.trim_start();
                let a = s.len() - t.len();
                (a, a + t.trim_end().len())
            }
            Err(_) => (0, v.len()),
        },
    }
}

/// How records are read: limits and the work split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Longest record (or JSON line), in bytes.
    pub max_record_bytes: usize,
    /// Most fields in a header or a record.
    pub max_columns: usize,
    /// Size of the pieces a file is cut into for the workers.
    pub chunk_bytes: usize,
    /// Threads that tokenise and convert.
    pub workers: usize,
}

/// The first part of the reason of a record with more fields than the limit.
pub(crate) const TOO_MANY_FIELDS: &str = "too many fields";

/// How the records of one file map to the table's columns.
pub(crate) struct Layout<'a> {
    pub dialect: Dialect,
    /// For each field of a record, the column it fills.
    pub column_of: Vec<Option<usize>>,
    /// Columns that no field fills (always null).
    pub absent: Vec<usize>,
    /// Fields a record must have.
    pub expected: usize,
    pub max_fields: usize,
    pub limit: usize,
    pub null_markers: Vec<Vec<u8>>,
    pub converter: &'a Converter,
    /// Why no record of the file can be read (its header is unusable).
    pub unreadable: Option<String>,
}

struct Columns<'a, 'b> {
    columns: &'a mut [TextColumn],
    layout: &'a Layout<'b>,
    trims: &'a [bool],
}

impl Sink for Columns<'_, '_> {
    fn piece(&mut self, field: usize, bytes: &[u8]) {
        if let Some(Some(c)) = self.layout.column_of.get(field) {
            if let Some(col) = self.columns.get_mut(*c) {
                col.piece(bytes, self.layout.dialect.encoding);
            }
        }
    }
    fn end(&mut self, field: usize) {
        if let Some(Some(c)) = self.layout.column_of.get(field) {
            if let Some(col) = self.columns.get_mut(*c) {
                col.end(
                    &self.layout.null_markers,
                    self.trims.get(*c).copied().unwrap_or(false),
                );
            }
        }
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Tokenise and convert the records of a chunk, in batches of at most `batch_rows`.
pub(crate) fn convert_chunk(
    chunk: &Chunk,
    layout: &Layout<'_>,
    batch_rows: usize,
) -> crate::Result<Vec<Converted>> {
    let ncols = layout.converter.schema().fields().len();
    let trims: Vec<bool> = (0..ncols).map(|c| layout.converter.trims(c)).collect();
    let mut out = Vec::new();
    for spans in chunk.spans.chunks(batch_rows.max(1)) {
        let (Some(first), Some(last)) = (spans.first(), spans.last()) else {
            continue;
        };
        let utf8 = match layout.dialect.encoding {
            Encoding::Latin1 => true,
            Encoding::Utf8 | Encoding::Utf8Bom => {
                std::str::from_utf8(&chunk.bytes[first.start..last.end]).is_ok()
            }
        };
        let per_col = (last.end - first.start) / ncols.max(1) + 16;
        let mut columns: Vec<TextColumn> = (0..ncols)
            .map(|_| TextColumn::with_capacity(spans.len(), per_col))
            .collect();
        let mut lines = Vec::with_capacity(spans.len());
        let mut raws: Vec<(usize, usize)> = Vec::with_capacity(spans.len());
        let mut corrupt = Vec::new();
        let mut marks = Vec::with_capacity(ncols);
        for span in spans {
            let rec = &chunk.bytes[span.start..span.end];
            let broken = |reason: String| Corrupt {
                line: span.line,
                raw: lossy(rec),
                reason,
            };
            if let Some(why) = &layout.unreadable {
                corrupt.push(broken(why.clone()));
                continue;
            }
            if span.kind == SpanKind::TooLong {
                corrupt.push(broken(format!(
                    "record too long: more than the limit of {} bytes (the raw text is its first {} bytes)",
                    layout.limit,
                    rec.len()
                )));
                continue;
            }
            marks.clear();
            marks.extend(columns.iter().map(TextColumn::mark));
            let mut sink = Columns {
                columns: &mut columns,
                layout,
                trims: &trims,
            };
            let reason = match tokenise(
                rec,
                &layout.dialect,
                span.kind,
                layout.max_fields,
                &mut sink,
            ) {
                Err(e) => Some(e),
                Ok(n) => match (utf8, std::str::from_utf8(rec)) {
                    (false, Err(e)) => Some(format!(
                        "not valid UTF-8 (byte {} of the record)",
                        e.valid_up_to() + 1
                    )),
                    _ if n != layout.expected => Some(format!(
                        "wrong number of fields: expected {}, found {n}",
                        layout.expected
                    )),
                    _ => None,
                },
            };
            match reason {
                Some(reason) => {
                    for (c, m) in columns.iter_mut().zip(&marks) {
                        c.reset(*m);
                    }
                    corrupt.push(broken(reason));
                }
                None => {
                    for c in &layout.absent {
                        if let Some(col) = columns.get_mut(*c) {
                            col.null();
                        }
                    }
                    lines.push(span.line);
                    raws.push((span.start, span.end));
                }
            }
        }
        let texts = columns
            .into_iter()
            .map(TextColumn::finish)
            .collect::<Result<Vec<_>, _>>()?;
        let mut converted = layout.converter.convert_text(texts, lines, |i| {
            raws.get(i)
                .map(|(a, b)| lossy(&chunk.bytes[*a..*b]))
                .unwrap_or_default()
        })?;
        converted.corrupt.append(&mut corrupt);
        out.push(converted);
    }
    Ok(out)
}

/// Header names made usable as column names: an empty name becomes `column_<n>` (its
/// 1-based position, as for files without a header) and a name met again (ignoring case,
/// as CDM names are compared) gets `_2`, `_3`... until it is unique. A header such as
/// `Id,,Name,name` (a trailing comma, a repeated column of an export) then still loads,
/// and `model.json` never names an attribute twice or not at all. A byte order mark that
/// starts a name (a header found after blank lines, behind the file's own mark) is not
/// part of it: readers drop it at the start of the published file, and the name would
/// then match no column.
pub(crate) fn unique_column_names(names: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(names.len());
    for (i, name) in names.into_iter().enumerate() {
        let name = name.trim_start_matches('\u{feff}');
        let base = if name.is_empty() {
            format!("column_{}", i + 1)
        } else {
            name.to_string()
        };
        let mut candidate = base.clone();
        let mut n = 1;
        while !seen.insert(candidate.to_lowercase()) {
            n += 1;
            candidate = format!("{base}_{n}");
        }
        out.push(candidate);
    }
    out
}

/// The names of a header record, or why it cannot be used: `Err(Ok(reason))` when the
/// header is too big to read (a corrupt row), `Err(Err(reason))` when it is malformed.
pub(crate) fn header_names(
    rec: &[u8],
    span: SpanKind,
    dialect: &Dialect,
    limit: usize,
    max_columns: usize,
) -> Result<Vec<String>, Result<String, String>> {
    struct Names(Vec<Vec<u8>>);
    impl Sink for Names {
        fn piece(&mut self, field: usize, bytes: &[u8]) {
            if let Some(f) = self.0.get_mut(field) {
                f.extend_from_slice(bytes);
            } else {
                self.0.push(bytes.to_vec());
            }
        }
        fn end(&mut self, field: usize) {
            if self.0.len() <= field {
                self.0.push(Vec::new());
            }
        }
    }
    if span == SpanKind::TooLong {
        return Err(Ok(format!(
            "header too long: more than the limit of {limit} bytes; no record of the file can be matched to its columns"
        )));
    }
    let mut names = Names(Vec::new());
    match tokenise(rec, dialect, span, max_columns, &mut names) {
        Ok(_) => {}
        Err(e) if e.starts_with(TOO_MANY_FIELDS) => {
            return Err(Ok(format!(
                "header too wide: more than the limit of {max_columns} columns; no record of the file can be matched to its columns"
            )))
        }
        Err(e) => return Err(Err(e)),
    }
    names
        .0
        .into_iter()
        .map(|n| {
            let text = match dialect.encoding {
                Encoding::Latin1 => n.iter().map(|b| *b as char).collect(),
                Encoding::Utf8 | Encoding::Utf8Bom => String::from_utf8(n).map_err(|e| {
                    Err(format!(
                        "not valid UTF-8 (byte {} of a name)",
                        e.utf8_error().valid_up_to() + 1
                    ))
                })?,
            };
            Ok(text.trim().to_string())
        })
        .collect::<Result<Vec<String>, _>>()
        .map(unique_column_names)
}

#[cfg(test)]
mod tests {

    #[test]
    fn header_names_are_made_unique_and_never_empty() {
        let names = |v: &[&str]| unique_column_names(v.iter().map(|s| s.to_string()).collect());
        assert_eq!(
            names(&["Id", "", "id", "Name", "ID", "column_2"]),
            ["Id", "column_2", "id_2", "Name", "ID_3", "column_2_2"]
        );
        assert_eq!(names(&["", ""]), ["column_1", "column_2"]);
        // a byte order mark before a header found after blank lines is no name
        assert_eq!(names(&["\u{feff}", "\u{feff}Id"]), ["column_1", "Id"]);
    }

    use super::*;

    fn dialect() -> Dialect {
        Dialect {
            delimiter: b',',
            quote: b'"',
            escape: None,
            encoding: Encoding::Utf8,
        }
    }

    fn spans(text: &[u8], limit: usize, chunk: usize) -> Vec<(u64, SpanKind, String)> {
        let mut s = Scanner::new(std::io::Cursor::new(text.to_vec()), dialect(), limit, chunk);
        let mut out = Vec::new();
        while let Some(c) = s.next_chunk(usize::MAX).unwrap() {
            for sp in &c.spans {
                out.push((
                    sp.line,
                    sp.kind,
                    String::from_utf8_lossy(&c.bytes[sp.start..sp.end]).into_owned(),
                ));
            }
        }
        out
    }

    struct Fields(Vec<Vec<u8>>);

    impl Sink for Fields {
        fn piece(&mut self, field: usize, bytes: &[u8]) {
            if self.0.len() <= field {
                self.0.resize(field + 1, Vec::new());
            }
            self.0[field].extend_from_slice(bytes);
        }
        fn end(&mut self, field: usize) {
            if self.0.len() <= field {
                self.0.resize(field + 1, Vec::new());
            }
        }
    }

    fn fields(rec: &str) -> Result<Vec<String>, String> {
        let mut out = Fields(Vec::new());
        let n = tokenise(
            rec.as_bytes(),
            &dialect(),
            SpanKind::Whole,
            usize::MAX,
            &mut out,
        )?;
        assert_eq!(n, out.0.len());
        Ok(out
            .0
            .into_iter()
            .map(|f| String::from_utf8(f).unwrap())
            .collect())
    }

    #[test]
    fn records_are_found_whatever_the_chunk_size() {
        let text =
            b"\xEF\xBB\xBFa,b\r\n\"x, y\",\"say \"\"hi\"\"\"\r\n\"multi\nline\",2\n\n3,\n4,\"q\"";
        let expect = vec![
            (1, SpanKind::Whole, "a,b".to_string()),
            (
                2,
                SpanKind::Whole,
                "\"x, y\",\"say \"\"hi\"\"\"".to_string(),
            ),
            (3, SpanKind::Whole, "\"multi\nline\",2".to_string()),
            (6, SpanKind::Whole, "3,".to_string()),
            (7, SpanKind::Whole, "4,\"q\"".to_string()),
        ];
        for chunk in [1, 2, 3, 5, 8, 13, 1000] {
            assert_eq!(spans(text, 1 << 20, chunk), expect, "chunk {chunk}");
        }
    }

    #[test]
    fn an_unclosed_quote_costs_its_line_only() {
        let text = b"1,a\n2,\"never closed,z\n3,b\n4,c\n";
        let s = spans(text, 1 << 20, 4);
        assert_eq!(
            s,
            vec![
                (1, SpanKind::Whole, "1,a".into()),
                (2, SpanKind::Cut, "2,\"never closed,z".into()),
                (3, SpanKind::Whole, "3,b".into()),
                (4, SpanKind::Whole, "4,c".into()),
            ]
        );
        // a quote that closes lines later on text that does not parse
        let s = spans(b"1,\"open\n2,\"x\"y\n3,z\n", 1 << 20, 1000);
        assert_eq!(
            s.iter().map(|s| (s.0, s.1)).collect::<Vec<_>>(),
            [
                (1, SpanKind::Cut),
                (2, SpanKind::Whole),
                (3, SpanKind::Whole)
            ]
        );
    }

    #[test]
    fn long_records_are_cut_to_a_prefix_and_skipped() {
        let mut text = b"1,a\n".to_vec();
        text.extend(std::iter::repeat_n(b'x', 10_000));
        text.extend(b"\n2,b\n\"");
        text.extend(std::iter::repeat_n(b'y', 10_000));
        text.extend(b"\n3,c\n");
        let s = spans(&text, 100, 7);
        assert_eq!(s.len(), 5, "{s:?}");
        assert_eq!((s[1].0, s[1].1, s[1].2.len()), (2, SpanKind::TooLong, 100));
        assert_eq!((s[2].0, s[2].2.as_str()), (3, "2,b"));
        assert_eq!((s[3].0, s[3].1), (4, SpanKind::TooLong));
        assert_eq!((s[4].0, s[4].2.as_str()), (5, "3,c"));
        // an endless line at the end of the input
        let mut text = b"1,a\n".to_vec();
        text.extend(std::iter::repeat_n(b'z', 100_000));
        let s = spans(&text, 1000, 64);
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].1, SpanKind::TooLong);
    }

    #[test]
    fn fields_and_malformed_records() {
        assert_eq!(
            fields("a,,\"b,c\",\"d\"\"e\""),
            Ok(vec!["a".into(), "".into(), "b,c".into(), "d\"e".into()])
        );
        assert_eq!(fields("3,"), Ok(vec!["3".into(), "".into()]));
        assert_eq!(
            fields("\"multi\nline\",2"),
            Ok(vec!["multi\nline".into(), "2".into()])
        );
        assert_eq!(
            fields("1,Kwame \"Q.\" Davis,x"),
            Err("unescaped quote in field 2".into())
        );
        assert_eq!(
            fields("2,\"ok\"tail,y"),
            Err("unescaped quote in field 2 (text after its closing quote)".into())
        );
        assert!(fields("3,\"never closed,z")
            .unwrap_err()
            .contains("not closed"));
    }

    #[test]
    fn text_columns_apply_null_markers_and_trim() {
        let mut c = TextColumn::with_capacity(4, 16);
        let markers = vec![b"".to_vec(), b"NULL".to_vec()];
        for (v, trim) in [(" 3 ", true), ("NULL", true), (" a ", false), ("", false)] {
            c.piece(v.as_bytes(), Encoding::Utf8);
            c.end(&markers, trim);
        }
        let m = c.mark();
        c.piece(b"gone", Encoding::Utf8);
        c.end(&markers, false);
        c.reset(m);
        c.piece(b"caf\xe9", Encoding::Latin1);
        c.end(&markers, false);
        let a = c.finish().unwrap();
        assert_eq!(
            a.iter().collect::<Vec<_>>(),
            [Some("3"), None, Some(" a "), None, Some("café")]
        );
    }

    /// A small deterministic generator of hostile CSV text.
    fn garbage(seed: u64, len: usize) -> Vec<u8> {
        let alphabet = b"\"\",,,\n\n\rab1 \xff";
        let mut x = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                alphabet[(x % alphabet.len() as u64) as usize]
            })
            .collect()
    }

    #[test]
    fn any_input_splits_into_the_same_records_whatever_the_chunk_size() {
        for seed in 0..300 {
            let text = garbage(seed, 200);
            for limit in [8, 1 << 20] {
                let whole = spans(&text, limit, 1 << 20);
                for chunk in [1, 2, 3, 7, 16, 61] {
                    assert_eq!(
                        spans(&text, limit, chunk),
                        whole,
                        "seed {seed}, limit {limit}, chunk {chunk}"
                    );
                }
                // every record tokenises without panicking
                for (_, kind, rec) in &whole {
                    let mut out = Fields(Vec::new());
                    let _ = tokenise(rec.as_bytes(), &dialect(), *kind, 64, &mut out);
                }
            }
        }
    }

    #[test]
    fn every_line_is_accounted_for() {
        // each line of the input is a record, a blank line, or inside a record
        for seed in 0..200 {
            let text = garbage(seed, 300);
            let lines = text.iter().filter(|b| **b == b'\n').count() as u64 + 1;
            let s = spans(&text, 1 << 20, 5);
            let mut previous = 0;
            for (line, _, rec) in &s {
                assert!(*line > previous && *line <= lines, "seed {seed}: {s:?}");
                previous = *line + rec.matches('\n').count() as u64;
            }
        }
    }
}
