//! Turning source files into records: every record read is either a [`Record`] (its
//! fields as text, in column order) or a [`Corrupt`] one with the reason, so that nothing
//! read is lost.
//!
//! CSV is tokenised here rather than by a lenient parser, because the tokeniser must see
//! what lenient parsers hide: a quote inside an unquoted field, text after a closing
//! quote, a quoted field that never closes. [`CsvTokenizer`] reads record by record
//! (schema inference samples with it); loads use the parallel tokeniser of the `csv`
//! module, which follows the same grammar but takes a quote that never closes as its
//! line alone and reads on from the next line.

use std::io::BufRead;

use lakecdp_core::Encoding;

/// A record whose fields were read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// 1-based line (CSV, JSON Lines) or row (Parquet) where it starts.
    pub line: u64,
    /// The record as read, for the corrupt table.
    pub raw: String,
    /// One value per column of the table, in column order; `None` is a missing value.
    pub fields: Vec<Option<String>>,
}

/// A record that cannot be read, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corrupt {
    /// 1-based line or row.
    pub line: u64,
    /// The record as read (lossy UTF-8 for undecodable bytes).
    pub raw: String,
    /// Why it is corrupt.
    pub reason: String,
}

/// What a reader yields per record.
pub type Item = Result<Record, Corrupt>;

/// How far a quoted field may run over line ends before it is taken as an unclosed quote.
const MAX_LINES_PER_RECORD: usize = 1000;

/// The longest record [`CsvTokenizer`] reads: a longer one is corrupt, and only its
/// first bytes are kept.
pub const MAX_RECORD_BYTES: usize = 16 << 20;

/// The most fields of a record [`CsvTokenizer`] splits: a wider one is corrupt.
pub const MAX_FIELDS: usize = 16_384;

/// Read up to a line end, appending at most `room` bytes to `buf`; returns the bytes
/// consumed and whether the line did not fit (its rest is consumed and dropped).
fn read_line_capped(
    reader: &mut impl BufRead,
    buf: &mut Vec<u8>,
    room: usize,
) -> std::io::Result<(usize, bool)> {
    let mut consumed = 0;
    let mut kept = 0;
    let mut over = false;
    loop {
        let avail = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if avail.is_empty() {
            return Ok((consumed, over));
        }
        let (take, done) = match avail.iter().position(|b| *b == b'\n') {
            Some(k) => (k + 1, true),
            None => (avail.len(), false),
        };
        let fits = take.min(room - kept);
        if fits < take {
            over = true;
        }
        buf.extend_from_slice(&avail[..fits]);
        kept += fits;
        consumed += take;
        reader.consume(take);
        if done {
            return Ok((consumed, over));
        }
    }
}

/// CSV dialect.
#[derive(Debug, Clone)]
pub struct Dialect {
    /// Field delimiter.
    pub delimiter: u8,
    /// Quote character.
    pub quote: u8,
    /// Escape character inside quoted fields (`None`: the quote doubled).
    pub escape: Option<u8>,
    /// Text encoding.
    pub encoding: Encoding,
}

/// Tokenises CSV into raw records: fields as text, line numbers, raw text, and the
/// structural errors that make a record corrupt.
pub struct CsvTokenizer<R> {
    reader: R,
    dialect: Dialect,
    next_line: u64,
    first: bool,
    /// The bytes of the record being read, kept between records.
    buf: Vec<u8>,
}

/// One tokenised CSV record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawCsv {
    /// Line where it starts.
    pub line: u64,
    /// The raw text without the line end.
    pub raw: String,
    /// Decoded fields, or why the record is corrupt.
    pub fields: Result<Vec<String>, String>,
}

impl<R: BufRead> CsvTokenizer<R> {
    /// A tokenizer over a reader.
    pub fn new(reader: R, dialect: Dialect) -> Self {
        Self {
            reader,
            dialect,
            next_line: 1,
            first: true,
            buf: Vec::with_capacity(1024),
        }
    }

    fn decode(&self, bytes: Vec<u8>) -> Result<String, String> {
        match self.dialect.encoding {
            Encoding::Latin1 => Ok(bytes.iter().map(|b| *b as char).collect()),
            Encoding::Utf8 | Encoding::Utf8Bom => String::from_utf8(bytes).map_err(|e| {
                format!(
                    "not valid UTF-8 (byte {} of the record)",
                    e.utf8_error().valid_up_to() + 1
                )
            }),
        }
    }

    /// Split one complete record; `Ok(None)` when a quoted field runs past the end of
    /// `bytes` (more lines are needed).
    fn split(&self, bytes: &[u8]) -> Option<Result<Vec<Vec<u8>>, String>> {
        let Dialect {
            delimiter,
            quote,
            escape,
            ..
        } = self.dialect;
        let mut fields = Vec::new();
        let mut field = Vec::new();
        let mut error: Option<String> = None;
        #[derive(PartialEq)]
        enum S {
            Start,
            Unquoted,
            Quoted,
            AfterQuote,
        }
        let mut s = S::Start;
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            match s {
                S::Start if b == quote => s = S::Quoted,
                S::Start | S::Unquoted if b == delimiter => {
                    if fields.len() >= MAX_FIELDS {
                        return Some(Err(format!(
                            "too many fields: more than the limit of {MAX_FIELDS}"
                        )));
                    }
                    // an exact-size copy; the scratch field keeps its capacity
                    fields.push(field.clone());
                    field.clear();
                    s = S::Start;
                }
                S::Start | S::Unquoted => {
                    if b == quote && error.is_none() {
                        error = Some(format!("unescaped quote in field {}", fields.len() + 1));
                    }
                    field.push(b);
                    s = S::Unquoted;
                }
                S::Quoted if Some(b) == escape && escape != Some(quote) && i + 1 < bytes.len() => {
                    field.push(bytes[i + 1]);
                    i += 1;
                }
                S::Quoted if b == quote => s = S::AfterQuote,
                S::Quoted => field.push(b),
                S::AfterQuote if b == quote => {
                    field.push(quote);
                    s = S::Quoted;
                }
                S::AfterQuote if b == delimiter => {
                    if fields.len() >= MAX_FIELDS {
                        return Some(Err(format!(
                            "too many fields: more than the limit of {MAX_FIELDS}"
                        )));
                    }
                    // an exact-size copy; the scratch field keeps its capacity
                    fields.push(field.clone());
                    field.clear();
                    s = S::Start;
                }
                S::AfterQuote => {
                    if error.is_none() {
                        error = Some(format!(
                            "unescaped quote in field {} (text after its closing quote)",
                            fields.len() + 1
                        ));
                    }
                    field.push(quote);
                    field.push(b);
                    s = S::Unquoted;
                }
            }
            i += 1;
        }
        if s == S::Quoted {
            return None;
        }
        fields.push(field);
        Some(match error {
            Some(e) => Err(e),
            None => Ok(fields),
        })
    }

    /// The next record, `None` at the end, `Err` on an I/O failure.
    pub fn next_record(&mut self) -> std::io::Result<Option<RawCsv>> {
        let mut buf = std::mem::take(&mut self.buf);
        let record = self.read_record(&mut buf);
        self.buf = buf;
        record
    }

    fn read_record(&mut self, buf: &mut Vec<u8>) -> std::io::Result<Option<RawCsv>> {
        loop {
            buf.clear();
            let start = self.next_line;
            let mut lines = 0usize;
            // The split of the whole buffer as it stands: `None` while a quoted field is open.
            let mut split = None;
            let mut too_long = false;
            loop {
                let room = MAX_RECORD_BYTES.saturating_sub(buf.len());
                let (n, over) = read_line_capped(&mut self.reader, buf, room)?;
                if n == 0 {
                    break;
                }
                if over {
                    lines += 1;
                    too_long = true;
                    break;
                }
                lines += 1;
                if self.first {
                    self.first = false;
                    if buf.starts_with(b"\xEF\xBB\xBF") {
                        buf.drain(..3);
                    }
                }
                split = self.split(trim_line_end(buf));
                if split.is_some() || lines >= MAX_LINES_PER_RECORD {
                    break;
                }
            }
            self.next_line += lines as u64;
            if buf.is_empty() {
                return Ok(None);
            }
            let body = trim_line_end(buf);
            if body.is_empty() {
                continue; // blank lines are not records
            }
            let raw = String::from_utf8_lossy(body).into_owned();
            let fields = match split {
                _ if too_long => Err(format!(
                    "record too long: more than the limit of {MAX_RECORD_BYTES} bytes"
                )),
                None => Err(format!(
                    "a quoted field is not closed (unescaped quote or newline; {lines} lines read)"
                )),
                Some(Err(e)) => Err(e),
                Some(Ok(fields)) => fields
                    .into_iter()
                    .map(|f| self.decode(f))
                    .collect::<Result<Vec<_>, _>>(),
            };
            return Ok(Some(RawCsv {
                line: start,
                raw,
                fields,
            }));
        }
    }
}

fn trim_line_end(buf: &[u8]) -> &[u8] {
    let buf = buf.strip_suffix(b"\n").unwrap_or(buf);
    buf.strip_suffix(b"\r").unwrap_or(buf)
}

/// One JSON Lines line as a record of the given columns.
pub fn json_record(line: u64, text: &str, columns: &[String]) -> Item {
    let corrupt = |reason: String| Corrupt {
        line,
        raw: text.to_string(),
        reason,
    };
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| corrupt(format!("invalid JSON: {e}")))?;
    let serde_json::Value::Object(map) = value else {
        return Err(corrupt("the line is not a JSON object".into()));
    };
    let fields = columns
        .iter()
        .map(|c| match map.get(c) {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(other) => Some(other.to_string()),
        })
        .collect();
    Ok(Record {
        line,
        raw: text.to_string(),
        fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(text: &str) -> Vec<RawCsv> {
        let dialect = Dialect {
            delimiter: b',',
            quote: b'"',
            escape: None,
            encoding: Encoding::Utf8,
        };
        let mut t = CsvTokenizer::new(std::io::Cursor::new(text.as_bytes().to_vec()), dialect);
        std::iter::from_fn(|| t.next_record().unwrap()).collect()
    }

    #[test]
    fn rfc4180_records_with_quotes_newlines_and_crlf() {
        let r = tokens("\u{feff}a,b\r\n\"x, y\",\"say \"\"hi\"\"\"\r\n\"multi\nline\",2\n\n3,\n");
        assert_eq!(r.len(), 4);
        assert_eq!(r[0].fields, Ok(vec!["a".into(), "b".into()]));
        assert_eq!(r[1].fields, Ok(vec!["x, y".into(), "say \"hi\"".into()]));
        assert_eq!(
            (r[2].line, r[2].fields.clone()),
            (3, Ok(vec!["multi\nline".into(), "2".into()]))
        );
        assert_eq!(
            (r[3].line, r[3].fields.clone()),
            (6, Ok(vec!["3".into(), "".into()]))
        );
    }

    #[test]
    fn malformed_quotes_are_named() {
        let r = tokens("1,Kwame \"Q.\" Davis,x\n2,\"ok\"tail,y\n3,\"never closed,z\n4,a,b\n");
        assert!(r[0]
            .fields
            .as_ref()
            .unwrap_err()
            .contains("unescaped quote in field 2"));
        assert!(r[1]
            .fields
            .as_ref()
            .unwrap_err()
            .contains("text after its closing quote"));
        // an unclosed quote runs to the end of the input: one corrupt record, nothing else invented
        assert_eq!(r.len(), 3);
        assert!(r[2].fields.as_ref().unwrap_err().contains("not closed"));
        assert_eq!(r[2].line, 3);
    }

    #[test]
    fn latin1_and_invalid_utf8() {
        let bytes = b"caf\xe9,1\n".to_vec();
        let d = |encoding| Dialect {
            delimiter: b',',
            quote: b'"',
            escape: None,
            encoding,
        };
        let mut t = CsvTokenizer::new(std::io::Cursor::new(bytes.clone()), d(Encoding::Latin1));
        assert_eq!(
            t.next_record().unwrap().unwrap().fields,
            Ok(vec!["café".into(), "1".into()])
        );
        let mut t = CsvTokenizer::new(std::io::Cursor::new(bytes), d(Encoding::Utf8));
        assert!(t
            .next_record()
            .unwrap()
            .unwrap()
            .fields
            .unwrap_err()
            .contains("not valid UTF-8"));
    }

    #[test]
    fn json_lines_become_records_or_corrupt_rows() {
        let cols = vec!["id".to_string(), "n".to_string(), "tags".to_string()];
        let r = json_record(1, r#"{"id":"a","n":3,"tags":["x"]}"#, &cols).unwrap();
        assert_eq!(
            r.fields,
            vec![Some("a".into()), Some("3".into()), Some("[\"x\"]".into())]
        );
        let r = json_record(2, r#"{"id":"b"}"#, &cols).unwrap();
        assert_eq!(r.fields, vec![Some("b".into()), None, None]);
        assert!(json_record(3, r#"{"id":"c","#, &cols)
            .unwrap_err()
            .reason
            .starts_with("invalid JSON"));
        assert!(json_record(4, "[1]", &cols)
            .unwrap_err()
            .reason
            .contains("not a JSON object"));
    }
}
