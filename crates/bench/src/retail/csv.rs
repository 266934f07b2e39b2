//! A small streaming CSV writer (RFC 4180 quoting).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Writes records to a buffered file, quoting fields only when they need it.
pub(crate) struct CsvWriter {
    path: PathBuf,
    out: BufWriter<File>,
    newline: &'static str,
    line: String,
}

impl CsvWriter {
    /// Creates `path`; lines end with `newline` (`"\n"` or `"\r\n"`).
    pub fn create(path: &Path, newline: &'static str) -> Result<Self> {
        let file = File::create(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            out: BufWriter::with_capacity(1 << 16, file),
            newline,
            line: String::with_capacity(512),
        })
    }

    /// Writes one record.
    pub fn record<S: AsRef<str>>(&mut self, fields: &[S]) -> Result<()> {
        self.line.clear();
        for (i, field) in fields.iter().enumerate() {
            if i > 0 {
                self.line.push(',');
            }
            push_field(&mut self.line, field.as_ref());
        }
        self.write_line()
    }

    /// Writes one line as given, without quoting: for deliberately malformed rows.
    pub fn raw(&mut self, line: &str) -> Result<()> {
        self.line.clear();
        self.line.push_str(line);
        self.write_line()
    }

    fn write_line(&mut self) -> Result<()> {
        self.line.push_str(self.newline);
        self.out
            .write_all(self.line.as_bytes())
            .map_err(|source| Error::Io {
                path: self.path.clone(),
                source,
            })
    }

    /// Flushes the buffer and returns the file size in bytes.
    pub fn finish(mut self) -> Result<u64> {
        let io = |source| Error::Io {
            path: self.path.clone(),
            source,
        };
        self.out.flush().map_err(io)?;
        Ok(self.out.get_ref().metadata().map_err(io)?.len())
    }
}

/// Appends a field, quoted when it holds a comma, a quote or a line break.
pub(crate) fn push_field(line: &mut String, field: &str) {
    if field.contains([',', '"', '\n', '\r']) {
        line.push('"');
        line.push_str(&field.replace('"', "\"\""));
        line.push('"');
    } else {
        line.push_str(field);
    }
}

/// A record joined into one line with quoting, without the line end.
pub(crate) fn join<S: AsRef<str>>(fields: &[S]) -> String {
    let mut line = String::new();
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        push_field(&mut line, field.as_ref());
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_when_needed() {
        assert_eq!(
            join(&["a", "b,c", "say \"hi\"", ""]),
            "a,\"b,c\",\"say \"\"hi\"\"\","
        );
    }
}
