//! `crm_contacts.csv`: a CRM export of contacts.
//!
//! Columns: `ContactId` (GUID), `FirstName`, `LastName`, `FullName` (computed by the CRM
//! from first and last name, empty on older imports), `Email`, `Phone`, `Street` (with the
//! unit, if any), `City`, `PostalCode`, `State`, `Country`, `BirthDate` (`yyyy-MM-dd`),
//! `CreatedOn` and `ModifiedOn` (`yyyy-MM-ddTHH:mm:ssZ`). Rows are in creation order and end
//! with CRLF. The CRM is the oldest system: it often keeps a previous address.

use std::path::Path;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::csv::{join, CsvWriter};
use super::dates::{civil_from_days, format_date, format_datetime, secs_from_civil, EPOCH_SECS};
use super::person::{Person, Population};
use super::plan::{defect_at, place_defects, Placed, Rows};
use super::rng::{chance, pick, pick_weighted, rng_for, Stream};
use super::truth::GroundTruth;
use super::vary::{self, PhoneStyle, StreetStyle, UnitPlacement};
use super::{
    creation_secs, FileSummary, MalformedKind, MalformedRow, RetailConfig, Written, CRM_FILE,
    CRM_SOURCE,
};
use crate::error::Result;

/// The header of `crm_contacts.csv`.
pub(crate) const HEADER: [&str; 14] = [
    "ContactId",
    "FirstName",
    "LastName",
    "FullName",
    "Email",
    "Phone",
    "Street",
    "City",
    "PostalCode",
    "State",
    "Country",
    "BirthDate",
    "CreatedOn",
    "ModifiedOn",
];

const FULL_NAME: usize = 3;
const STREET: usize = 6;
const BIRTH_DATE: usize = 11;
const CREATED_ON: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Defect {
    BirthDateNotInCalendar,
    CreatedOnMonth13,
    UnescapedQuote,
    MissingKey,
    DuplicateKey,
    TooFewFields,
    TooManyFields,
}

const DEFECTS: [Defect; 7] = [
    Defect::BirthDateNotInCalendar,
    Defect::CreatedOnMonth13,
    Defect::UnescapedQuote,
    Defect::MissingKey,
    Defect::DuplicateKey,
    Defect::TooFewFields,
    Defect::TooManyFields,
];

fn kind(defect: Defect) -> MalformedKind {
    match defect {
        Defect::BirthDateNotInCalendar | Defect::CreatedOnMonth13 => MalformedKind::BadDate,
        Defect::UnescapedQuote => MalformedKind::UnescapedQuote,
        Defect::MissingKey => MalformedKind::MissingKey,
        Defect::DuplicateKey => MalformedKind::DuplicateKey,
        Defect::TooFewFields => MalformedKind::TooFewFields,
        Defect::TooManyFields => MalformedKind::TooManyFields,
    }
}

const CREATED_FIRST: i64 = secs_from_civil(2016, 1, 4);
const CREATED_LAST: i64 = secs_from_civil(2025, 12, 31);

/// Where the malformed rows of a file of `rows` rows go.
fn defects(config: &RetailConfig, rows: usize) -> Vec<Placed<Defect>> {
    if config.malformed_rows {
        place_defects(config.seed, 1, rows, &DEFECTS)
    } else {
        Vec::new()
    }
}

/// The lines and kinds of the malformed rows.
pub(crate) fn malformed_lines(config: &RetailConfig) -> Vec<(usize, MalformedKind)> {
    defects(config, config.crm_contacts)
        .iter()
        .map(|p| (p.row + 2, kind(p.defect)))
        .collect()
}

/// When the contact of row `row` was created: rows are in creation order.
fn created_on(seed: u64, row: usize, rows: usize) -> i64 {
    let mut rng = rng_for(seed, Stream::Timeline, (1 << 40) | row as u64);
    creation_secs(&mut rng, row, rows, CREATED_FIRST, CREATED_LAST)
}

/// The GUID of the contact created in row `row`.
fn contact_id(seed: u64, row: usize) -> String {
    let mut rng = rng_for(seed, Stream::CrmKey, row as u64);
    let mut b: [u8; 16] = rng.random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// Writes `crm_contacts.csv` and its ground truth.
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

    let mut out = CsvWriter::create(path, "\r\n")?;
    out.record(&HEADER)?;
    let mut malformed = Vec::new();
    for row in 0..n {
        let person = population.person(rows.person[row]);
        let defect = defect_at(&plan, row);
        let mut rng = rng_for(seed, Stream::CrmRow, row as u64);
        let (mut key, mut fields) = match defect {
            Some(p) if p.defect == Defect::DuplicateKey => {
                let created = created_on(seed, p.source, n);
                let mut original_rng = rng_for(seed, Stream::CrmRow, p.source as u64);
                let occurrence = rows.occurrence[p.source];
                let (_, modified) = record(&mut original_rng, &person, occurrence, created, None);
                let occurrence = rows.occurrence[row];
                let (fields, _) = record(&mut rng, &person, occurrence, created, Some(modified));
                (contact_id(seed, p.source), fields)
            }
            _ => {
                let created = created_on(seed, row, n);
                let (fields, _) = record(&mut rng, &person, rows.occurrence[row], created, None);
                (contact_id(seed, row), fields)
            }
        };
        fields[0] = key.clone();
        let note = match defect {
            None => {
                out.record(&fields)?;
                if rows.occurrence[row] > 0 {
                    "duplicate".to_string()
                } else {
                    String::new()
                }
            }
            Some(p) => {
                let problem = apply(p.defect, &mut fields, &person, &mut out, &mut key)?;
                malformed.push(MalformedRow {
                    file: CRM_FILE,
                    line: row + 2,
                    kind: kind(p.defect),
                    problem,
                });
                format!("malformed:{}", kind(p.defect))
            }
        };
        truth.row(CRM_SOURCE, row + 1, &key, &person.key(), &note)?;
    }
    let bytes = out.finish()?;
    Ok(Written {
        file: FileSummary {
            file: CRM_FILE,
            format: "csv",
            rows: n,
            malformed: malformed.len(),
            duplicates: rows.duplicates(),
            people: Some(rows.people()),
            bytes,
        },
        malformed,
    })
}

/// Writes the malformed form of a row and says what is wrong with it.
fn apply(
    defect: Defect,
    fields: &mut [String; 14],
    person: &Person,
    out: &mut CsvWriter,
    key: &mut String,
) -> Result<String> {
    let problem = match defect {
        Defect::BirthDateNotInCalendar => {
            let year = civil_from_days(person.birth_days).0;
            fields[BIRTH_DATE] = format!("{year:04}-02-30");
            out.record(fields)?;
            format!("BirthDate `{}` is not a calendar date", fields[BIRTH_DATE])
        }
        Defect::CreatedOnMonth13 => {
            let good = fields[CREATED_ON].clone();
            fields[CREATED_ON] = format!("{}-13-{}", &good[..4], &good[8..]);
            out.record(fields)?;
            format!("CreatedOn `{}` has month 13", fields[CREATED_ON])
        }
        Defect::UnescapedQuote => {
            let middle = person
                .nicknames()
                .first()
                .map_or_else(|| format!("{}.", person.middle), |n| (*n).to_string());
            let full = format!("{} \"{}\" {}", person.first, middle, person.last);
            let before = join(&fields[..FULL_NAME]);
            let after = join(&fields[FULL_NAME + 1..]);
            out.raw(&format!("{before},{full},{after}"))?;
            format!("FullName `{full}` holds quotes but is not quoted")
        }
        Defect::MissingKey => {
            fields[0].clear();
            key.clear();
            out.record(fields)?;
            "ContactId is empty".to_string()
        }
        Defect::DuplicateKey => {
            out.record(fields)?;
            format!(
                "ContactId `{key}` repeats an earlier row (the same contact exported twice, \
                 with a later ModifiedOn)"
            )
        }
        Defect::TooFewFields => {
            out.raw(&join(&fields[..BIRTH_DATE]))?;
            format!(
                "{} of {} fields: the line ends after Country",
                BIRTH_DATE,
                HEADER.len()
            )
        }
        Defect::TooManyFields => {
            let unit = person
                .address
                .unit
                .as_ref()
                .map_or_else(|| "Apt 2".to_string(), |u| format!("Apt {}", u.label));
            let line = vary::street(
                &person.address,
                StreetStyle {
                    abbreviate_type: true,
                    period: false,
                    full_direction: false,
                    unit: UnitPlacement::Omitted,
                    upper: false,
                },
            )
            .0;
            let street = format!("{line}, {unit}");
            let before = join(&fields[..STREET]);
            let after = join(&fields[STREET + 1..]);
            out.raw(&format!("{before},{street},{after}"))?;
            format!(
                "{} fields: Street `{street}` holds a comma but is not quoted",
                HEADER.len() + 1
            )
        }
    };
    Ok(problem)
}

/// The fields of one contact, with an empty `ContactId`, and its modification time (after
/// `modified_after` when given).
fn record(
    rng: &mut ChaCha8Rng,
    person: &Person,
    occurrence: u8,
    created: i64,
    modified_after: Option<i64>,
) -> ([String; 14], i64) {
    let nicks = person.nicknames();
    let first = if !nicks.is_empty() && chance(rng, 120) {
        *pick(rng, nicks)
    } else {
        person.first
    };
    let first = vary::name(rng, first, 15, 20, 10);
    let last = vary::name(rng, &person.last, 15, 20, 5);
    let full = if chance(rng, 150) {
        String::new()
    } else {
        format!("{first} {last}")
    };

    let email = if chance(rng, 70) {
        String::new()
    } else {
        let use_second = match (&person.second_email, occurrence) {
            (Some(_), 0) => chance(rng, 400),
            (Some(_), _) => chance(rng, 600),
            (None, _) => false,
        };
        let address = match (&person.second_email, use_second) {
            (Some(second), true) => second,
            _ => &person.email,
        };
        vary::email(rng, address, 120, 8)
    };

    let phone = if chance(rng, 60) {
        String::new()
    } else {
        let number = match person.landline {
            Some(landline) if chance(rng, 300) => landline,
            _ => person.mobile,
        };
        let styles = [
            (PhoneStyle::International, 45),
            (PhoneStyle::Parenthesised, 25),
            (PhoneStyle::Dashed, 15),
            (PhoneStyle::E164, 10),
            (PhoneStyle::Spaced, 5),
        ];
        let style = styles[pick_weighted(rng, styles.iter().map(|s| s.1))].0;
        let mut phone = vary::phone(number, style);
        if chance(rng, 10) {
            phone.push_str(&format!(" x{}", rng.random_range(10..400)));
        }
        phone
    };

    let address = match &person.previous_address {
        Some(previous) if chance(rng, 500) => previous,
        _ => &person.address,
    };
    let placement = match rng.random_range(0..10) {
        0..=4 => UnitPlacement::SameLine,
        5..=7 => UnitPlacement::AfterComma,
        _ => UnitPlacement::Hash,
    };
    let style = StreetStyle::draw(rng, 600, placement, 25);
    let street = if chance(rng, 40) {
        String::new()
    } else {
        vary::street(address, style).0
    };
    let city = vary::name(rng, vary::city(address), 5, 0, 5);
    let city = if style.upper {
        city.to_uppercase()
    } else {
        city
    };
    let mut postal = vary::zip(address);
    if chance(rng, 100) {
        postal.push_str(&format!("-{:04}", rng.random_range(0..10_000)));
    } else if postal.starts_with('0') && chance(rng, 300) {
        postal = address.zip.to_string();
    }
    let state = vary::state(address, chance(rng, 150)).to_string();
    let state = if chance(rng, 10) {
        state.to_lowercase()
    } else {
        state
    };
    let countries = [
        ("US", 650),
        ("USA", 150),
        ("United States", 120),
        ("United States of America", 30),
        ("", 50),
    ];
    let country = countries[pick_weighted(rng, countries.iter().map(|c| c.1))].0;

    let birth = if chance(rng, 300) {
        String::new()
    } else {
        let (y, m, d) = civil_from_days(person.birth_days);
        if d <= 12 && d != m && chance(rng, 5) {
            format!("{y:04}-{d:02}-{m:02}")
        } else {
            format_date(person.birth_days)
        }
    };
    let modified = match modified_after {
        Some(after) => after + rng.random_range(1..(EPOCH_SECS - after).max(2)),
        None if chance(rng, 400) => created,
        None => created + rng.random_range(0..(EPOCH_SECS - created).max(1)),
    };

    let fields = [
        String::new(),
        first,
        last,
        full,
        email,
        phone,
        street,
        city,
        postal,
        state,
        country.to_string(),
        birth,
        format_datetime(created),
        format_datetime(modified),
    ];
    (fields, modified)
}
