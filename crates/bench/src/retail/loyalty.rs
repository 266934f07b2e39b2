//! `loyalty_members.jsonl`: loyalty programme members, one JSON object per line.
//!
//! Keys, in this order: `memberId` (`LM-` and seven digits, in joining order), `name` (one
//! free-text field: "First Last", "Last, First", with a middle initial or in capitals),
//! `email`, `phone`, `birthDate` (`yyyy-MM-dd`; these three may be `null`), `tier`
//! (`Bronze`, `Silver`, `Gold` or `Platinum`, from the points), `points` (integer) and
//! `joined` (`yyyy-MM-dd`). Most members are also shop customers.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value};

use super::dates::{civil_from_days, format_date, secs_from_civil, DAY};
use super::person::{Person, Population};
use super::plan::{defect_at, place_defects, Placed, Rows};
use super::rng::{chance, pick, pick_weighted, rng_for, Stream};
use super::truth::GroundTruth;
use super::vary::{self, PhoneStyle};
use super::{
    creation_secs, FileSummary, MalformedKind, MalformedRow, RetailConfig, Written, LOYALTY_FILE,
    LOYALTY_SOURCE,
};
use crate::error::{Error, Result};

const JOINED_FIRST: i64 = secs_from_civil(2019, 1, 1);
const JOINED_LAST: i64 = secs_from_civil(2025, 12, 31);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Defect {
    TruncatedLine,
    TrailingComma,
    PointsAsText,
    BirthDateNotInCalendar,
    MissingKey,
    DuplicateKey,
}

const DEFECTS: [Defect; 6] = [
    Defect::TruncatedLine,
    Defect::TrailingComma,
    Defect::PointsAsText,
    Defect::BirthDateNotInCalendar,
    Defect::MissingKey,
    Defect::DuplicateKey,
];

fn kind(defect: Defect) -> MalformedKind {
    match defect {
        Defect::TruncatedLine | Defect::TrailingComma => MalformedKind::InvalidJson,
        Defect::PointsAsText => MalformedKind::NonNumeric,
        Defect::BirthDateNotInCalendar => MalformedKind::BadDate,
        Defect::MissingKey => MalformedKind::MissingKey,
        Defect::DuplicateKey => MalformedKind::DuplicateKey,
    }
}

/// Where the malformed rows of a file of `rows` rows go.
fn defects(config: &RetailConfig, rows: usize) -> Vec<Placed<Defect>> {
    if config.malformed_rows {
        place_defects(config.seed, 3, rows, &DEFECTS)
    } else {
        Vec::new()
    }
}

/// The lines and kinds of the malformed rows.
pub(crate) fn malformed_lines(config: &RetailConfig) -> Vec<(usize, MalformedKind)> {
    defects(config, config.loyalty_members)
        .iter()
        .map(|p| (p.row + 1, kind(p.defect)))
        .collect()
}

fn member_id(row: usize) -> String {
    format!("LM-{:07}", 1_000_001 + row)
}

fn joined_days(seed: u64, row: usize, rows: usize) -> i64 {
    let mut rng = rng_for(seed, Stream::Timeline, (3 << 40) | row as u64);
    creation_secs(&mut rng, row, rows, JOINED_FIRST, JOINED_LAST) / DAY
}

fn tier(points: i64) -> &'static str {
    match points {
        ..1_000 => "Bronze",
        1_000..5_000 => "Silver",
        5_000..15_000 => "Gold",
        _ => "Platinum",
    }
}

/// Writes `loyalty_members.jsonl` and its ground truth.
pub(crate) fn write(
    config: &RetailConfig,
    population: &Population,
    mut rows: Rows,
    path: &Path,
    truth: &mut GroundTruth,
) -> Result<Written> {
    let seed = config.seed;
    let n = rows.len();
    let plan = defects(config, n);
    for p in plan.iter().filter(|p| p.defect == Defect::DuplicateKey) {
        rows.copy_person(p.row, p.source);
    }
    rows.recount(population.len());

    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut out = BufWriter::with_capacity(1 << 16, File::create(path).map_err(io)?);
    let mut malformed = Vec::new();
    for row in 0..n {
        let person = population.person(rows.person[row]);
        let defect = defect_at(&plan, row);
        let mut rng = rng_for(seed, Stream::LoyaltyRow, row as u64);
        let (key_row, min_points) = match defect {
            Some(p) if p.defect == Defect::DuplicateKey => {
                let mut original = rng_for(seed, Stream::LoyaltyRow, p.source as u64);
                let occurrence = rows.occurrence[p.source];
                let joined = joined_days(seed, p.source, n);
                let before = member(&mut original, &person, occurrence, 0, joined);
                let points = before.get("points").and_then(Value::as_i64).unwrap_or(0);
                (p.source, points + 1)
            }
            _ => (row, 0),
        };
        let joined = joined_days(seed, key_row, n);
        let mut object = member(&mut rng, &person, rows.occurrence[row], min_points, joined);
        let mut key = member_id(key_row);
        object.insert("memberId".into(), Value::String(key.clone()));
        let line = encode(&object);
        let (line, note) = match defect {
            None => {
                let note = if rows.occurrence[row] > 0 {
                    "duplicate"
                } else {
                    ""
                };
                (line, note.to_string())
            }
            Some(p) => {
                let (line, problem) = corrupt(p.defect, line, &mut object, &person, &mut key);
                malformed.push(MalformedRow {
                    file: LOYALTY_FILE,
                    line: row + 1,
                    kind: kind(p.defect),
                    problem,
                });
                (line, format!("malformed:{}", kind(p.defect)))
            }
        };
        out.write_all(line.as_bytes()).map_err(io)?;
        out.write_all(b"\n").map_err(io)?;
        truth.row(LOYALTY_SOURCE, row + 1, &key, &person.key(), &note)?;
    }
    out.flush().map_err(io)?;
    let bytes = out.get_ref().metadata().map_err(io)?.len();
    Ok(Written {
        file: FileSummary {
            file: LOYALTY_FILE,
            format: "jsonl",
            rows: n,
            malformed: malformed.len(),
            duplicates: rows.duplicates(),
            people: Some(rows.people()),
            bytes,
        },
        malformed,
    })
}

/// One line of compact JSON.
fn encode(object: &Map<String, Value>) -> String {
    Value::Object(object.clone()).to_string()
}

/// The malformed form of a line and what is wrong with it.
fn corrupt(
    defect: Defect,
    line: String,
    object: &mut Map<String, Value>,
    person: &Person,
    key: &mut String,
) -> (String, String) {
    match defect {
        Defect::TruncatedLine => {
            let mut cut = line.len() * 3 / 5;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            let truncated = line[..cut].to_string();
            let problem = format!(
                "invalid JSON: the line stops after {cut} of {} bytes",
                line.len()
            );
            (truncated, problem)
        }
        Defect::TrailingComma => {
            let with_comma = format!("{},}}", &line[..line.len() - 1]);
            (
                with_comma,
                "invalid JSON: a comma before the closing brace".to_string(),
            )
        }
        Defect::PointsAsText => {
            let points = object.get("points").and_then(Value::as_i64).unwrap_or(0) + 1_000;
            let text = format!("{},{:03}", points / 1_000, points % 1_000);
            object.insert("points".into(), Value::String(text.clone()));
            let problem = format!("points `\"{text}\"` is a string, not a number");
            (encode(object), problem)
        }
        Defect::BirthDateNotInCalendar => {
            let year = civil_from_days(person.birth_days).0;
            let date = format!("{year:04}-06-31");
            object.insert("birthDate".into(), Value::String(date.clone()));
            (
                encode(object),
                format!("birthDate `{date}` is not a calendar date"),
            )
        }
        Defect::MissingKey => {
            object.shift_remove("memberId");
            key.clear();
            (encode(object), "the memberId key is absent".to_string())
        }
        Defect::DuplicateKey => (
            line,
            format!("memberId `{key}` repeats an earlier line (the same member, more points)"),
        ),
    }
}

/// The JSON object of one member (without `memberId`, which comes first once inserted).
fn member(
    rng: &mut ChaCha8Rng,
    person: &Person,
    occurrence: u8,
    min_points: i64,
    joined_days: i64,
) -> Map<String, Value> {
    let nicks = person.nicknames();
    let first = if !nicks.is_empty() && chance(rng, 150) {
        *pick(rng, nicks)
    } else {
        person.first
    };
    let first = vary::name(rng, first, 15, 0, 10);
    let last = vary::name(rng, &person.last, 15, 0, 5);
    let name = match rng.random_range(0..1000) {
        0..780 => format!("{first} {last}"),
        780..860 => format!("{last}, {first}"),
        860..960 => format!("{first} {}. {last}", person.middle),
        _ => format!("{first} {last}").to_uppercase(),
    };

    let email = if chance(rng, 50) {
        Value::Null
    } else {
        let address = match &person.second_email {
            Some(second) if chance(rng, if occurrence == 0 { 150 } else { 600 }) => second,
            _ => &person.email,
        };
        Value::String(vary::email(rng, address, 60, 10))
    };

    let phone = if chance(rng, 80) {
        Value::Null
    } else {
        let number = match person.landline {
            Some(landline) if chance(rng, 200) => landline,
            _ => person.mobile,
        };
        let styles = [
            (PhoneStyle::Dashed, 45),
            (PhoneStyle::Parenthesised, 20),
            (PhoneStyle::Dotted, 15),
            (PhoneStyle::Digits, 15),
            (PhoneStyle::E164, 5),
        ];
        let style = styles[pick_weighted(rng, styles.iter().map(|s| s.1))].0;
        Value::String(vary::phone(number, style))
    };

    let birth = if chance(rng, 100) {
        Value::Null
    } else {
        Value::String(format_date(person.birth_days))
    };
    let a: i64 = rng.random_range(0..30_000);
    let b: i64 = rng.random_range(0..30_000);
    let c: i64 = rng.random_range(0..30_000);
    let points = a.min(b).min(c).max(min_points);

    let mut object = Map::new();
    object.insert("memberId".into(), Value::Null);
    object.insert("name".into(), Value::String(name));
    object.insert("email".into(), email);
    object.insert("phone".into(), phone);
    object.insert("birthDate".into(), birth);
    object.insert("tier".into(), Value::String(tier(points).into()));
    object.insert("points".into(), Value::from(points));
    object.insert("joined".into(), Value::String(format_date(joined_days)));
    object
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_follow_points() {
        assert_eq!(tier(0), "Bronze");
        assert_eq!(tier(1_000), "Silver");
        assert_eq!(tier(14_999), "Gold");
        assert_eq!(tier(15_000), "Platinum");
        assert_eq!(member_id(0), "LM-1000001");
    }
}
