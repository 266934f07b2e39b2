//! A population of people from several cultures, written as two customer sources with
//! known truth: the benchmark data of unification.
//!
//! [`generate`] writes into one folder:
//!
//! - `crm_people.csv`: contacts of a CRM (`Crm.Contacts`);
//! - `web_people.csv`: sign-ups of a web shop (`Web.Signups`), with other column names;
//! - `ground_truth.csv`: the true person behind every row (`Source` is the table name).
//!
//! # The population
//! People come from ten cultures (United States, Mexico, Germany, France, China, India,
//! Nigeria, Vietnam, Russia, Japan; see `cultures.rs`) with their given and family names,
//! name order, addresses, postal codes and telephone plans. Names are drawn with weights
//! falling along each list, so unrelated people often share a common name (Nguyen, Wang,
//! García, Smith) and, now and then, a name and a date of birth. About one person in
//! eight lives in the household of the previous one: same family name and address,
//! sometimes the same telephone, now and then the same date of birth (twins).
//!
//! # Duplicates
//! Each person has one record, and about 37% have more (one or two), so about 30% of the
//! records are duplicates. A duplicate is written as another system or a later form
//! would write it: a short form or another transliteration of the given name (Bob,
//! Aleksandr/Alexander, Mohammed/Muhammad), a typing mistake, dropped diacritics, the
//! family name first, a surname changed by marriage, day and month of birth swapped, a
//! missing value, another mailbox, a telephone number in another format (international,
//! national with trunk prefix, `00` prefix), an abbreviated street type, or a new
//! address after a move.
//!
//! Telephone plans with nine-digit national numbers (France, Japan) are written in their
//! international forms only, since a number's national form there cannot be told from
//! another country's without a numbering-plan database.
//!
//! # Determinism
//! Every person and every record draws from its own seeded stream (see `retail::rng`), so
//! a configuration always gives the same files.

pub mod change;
mod cultures;

use std::path::Path;

use rand::Rng;

use crate::error::{Error, Result};
use crate::retail::csv::CsvWriter;
use crate::retail::rng::{chance, pick, rng_for, Stream};
use crate::retail::vary::{strip_accents, typo};

use cultures::{Culture, CULTURES, DOMAINS, WORK_DOMAINS};

/// The project file of the people benchmark: its two sources and the unification rules a
/// data engineer would write for them.
pub const PEOPLE_PROJECT: &str = include_str!("lakecdp.toml");

/// File of the CRM contacts.
pub const CRM_FILE: &str = "crm_people.csv";
/// File of the web sign-ups.
pub const WEB_FILE: &str = "web_people.csv";
/// File of the truth.
pub const TRUTH_FILE: &str = "ground_truth.csv";

/// What to generate.
#[derive(Debug, Clone, Copy)]
pub struct PeopleConfig {
    /// Seed of every random stream.
    pub seed: u64,
    /// About how many records to write, both files together.
    pub records: usize,
}

/// What was generated.
#[derive(Debug, Clone, Default)]
pub struct PeopleSummary {
    /// People in the population.
    pub persons: usize,
    /// Rows of `crm_people.csv`.
    pub crm: usize,
    /// Rows of `web_people.csv`.
    pub web: usize,
    /// Records of a person already described by an earlier record.
    pub duplicates: usize,
}

impl PeopleSummary {
    /// Records of both files.
    pub fn records(&self) -> usize {
        self.crm + self.web
    }
}

/// Records per person: 1 + 0.32 + 2 × 0.05.
const RECORDS_PER_PERSON: f64 = 1.42;

const CRM_HEADER: [&str; 12] = [
    "ContactId",
    "FirstName",
    "LastName",
    "BirthDate",
    "Gender",
    "Email",
    "Phone",
    "Street",
    "City",
    "PostalCode",
    "Country",
    "ModifiedOn",
];

const WEB_HEADER: [&str; 11] = [
    "SignupId",
    "GivenName",
    "FamilyName",
    "DateOfBirth",
    "Email",
    "Mobile",
    "AddressLine",
    "Town",
    "Zip",
    "Country",
    "CreatedAt",
];

/// An address of a person.
#[derive(Debug, Clone)]
struct Address {
    number: u32,
    street: usize,
    city: usize,
    postal: String,
}

/// One person of the population.
/// A name: an entry of the culture's common names, or a rarer one made of two parts.
#[derive(Debug, Clone, PartialEq)]
enum Name {
    Common(usize),
    Rare(String),
}

#[derive(Debug, Clone)]
struct Person {
    culture: &'static Culture,
    female: bool,
    given: Name,
    family: Name,
    birth: (i32, u32, u32),
    email: String,
    phone: String,
    address: Address,
}

/// Weighted index into a list of `n`: weights fall as 1/(i+2), so the first entries are
/// common and the tail rare.
fn zipf(rng: &mut impl Rng, n: usize) -> usize {
    // inverse of the cumulative harmonic weight, good enough for short lists
    let total: f64 = (0..n).map(|i| 1.0 / (i as f64 + 2.0)).sum();
    let mut ticket = rng.random_range(0.0..total);
    for i in 0..n {
        let w = 1.0 / (i as f64 + 2.0);
        if ticket < w {
            return i;
        }
        ticket -= w;
    }
    n - 1
}

fn ascii_lower(s: &str) -> String {
    strip_accents(s)
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_lowercase()
}

fn address(rng: &mut impl Rng, c: &Culture) -> Address {
    let city = rng.random_range(0..c.cities.len());
    let prefix = c.cities[city].1;
    let len = match c.name {
        "cn" | "in" | "ng" | "vn" | "ru" => 6,
        "jp" => 7,
        _ => 5,
    };
    let mut postal = prefix.to_string();
    while postal.len() < len {
        postal.push(char::from(b'0' + rng.random_range(0..10u8)));
    }
    if c.name == "jp" {
        postal.insert(3, '-');
    }
    Address {
        number: rng.random_range(1..2500),
        street: rng.random_range(0..c.streets.len()),
        city,
        postal,
    }
}

fn person(seed: u64, index: usize, previous: Option<&Person>) -> Person {
    let mut rng = rng_for(seed, Stream::PeoplePerson, index as u64);
    // one person in eight joins the previous person's household
    let household = previous.filter(|_| chance(&mut rng, 125));
    let culture = match household {
        Some(p) => p.culture,
        None => {
            let i = crate::retail::rng::pick_weighted(&mut rng, CULTURES.iter().map(|c| c.weight));
            &CULTURES[i]
        }
    };
    let female = rng.random_bool(0.5);
    let names = if female { culture.female } else { culture.male };
    let rare = |rng: &mut rand_chacha::ChaCha8Rng, parts: (&[&str], &[&str])| {
        let (a, b) = parts;
        Name::Rare(format!("{}{}", pick(rng, a), pick(rng, b)))
    };
    // members of a household have different given names
    let mut given = Name::Common(usize::MAX);
    for _ in 0..8 {
        given = if chance(&mut rng, 600) {
            Name::Common(zipf(&mut rng, names.len()))
        } else {
            rare(&mut rng, culture.given_parts)
        };
        if household.is_none_or(|p| p.given != given) {
            break;
        }
    }
    let family = match household {
        Some(p) if chance(&mut rng, 850) => p.family.clone(),
        _ if chance(&mut rng, culture.common_family_pm) => {
            Name::Common(zipf(&mut rng, culture.family.len()))
        }
        _ => rare(&mut rng, culture.family_parts),
    };
    let birth = match household {
        // twins
        Some(p) if chance(&mut rng, 40) => p.birth,
        _ => (
            rng.random_range(1940..2007),
            rng.random_range(1..13),
            rng.random_range(1..29),
        ),
    };
    let address = match household {
        Some(p) => p.address.clone(),
        None => address(&mut rng, culture),
    };
    // a national number unique to the person (households share one now and then)
    let phone = match household {
        Some(p) if chance(&mut rng, 300) => p.phone.clone(),
        _ => {
            let first = rng.random_range(2..10u32);
            let rest = format!("{:0width$}", index, width = culture.national_digits - 1);
            let rest = &rest[rest.len() - (culture.national_digits - 1)..];
            format!("{first}{rest}")
        }
    };
    let g = ascii_lower(name_text(&given, names));
    let f = ascii_lower(name_text(&family, culture.family));
    let email = match rng.random_range(0..4) {
        0 => format!("{g}.{f}{index}"),
        1 => format!("{}{f}{index}", &g[..1.min(g.len())]),
        2 => format!("{f}.{g}.{index}"),
        _ => format!("{g}{index}"),
    } + "@"
        + *pick(&mut rng, DOMAINS);
    Person {
        culture,
        female,
        given,
        family,
        birth,
        email,
        phone,
        address,
    }
}

type NameList = [(&'static str, &'static [&'static str])];

fn name_text<'a>(name: &'a Name, list: &'static NameList) -> &'a str {
    match name {
        Name::Common(i) => list[*i].0,
        Name::Rare(s) => s,
    }
}

fn name_variants(name: &Name, list: &'static NameList) -> &'static [&'static str] {
    match name {
        Name::Common(i) => list[*i].1,
        Name::Rare(_) => &[],
    }
}

/// A record of a person as one system holds it.
struct Record {
    given: Option<String>,
    family: Option<String>,
    birth: Option<String>,
    gender: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    street: Option<String>,
    city: Option<String>,
    postal: Option<String>,
    country: Option<String>,
    notes: Vec<&'static str>,
}

fn format_phone(rng: &mut impl Rng, c: &Culture, national: &str) -> String {
    let grouped = |s: &str| -> String {
        let mut out = String::new();
        let cut = s.len().saturating_sub(4).max(1);
        let (head, tail) = s.split_at(cut);
        let mid = head.len().min(3);
        out.push_str(&head[..mid]);
        if head.len() > mid {
            out.push(' ');
            out.push_str(&head[mid..]);
        }
        out.push(' ');
        out.push_str(tail);
        out
    };
    let international = c.national_digits != 10 || rng.random_bool(0.5);
    match (international, rng.random_range(0..3)) {
        (true, 0) => format!("+{} {}", c.country_code, grouped(national)),
        (true, 1) => format!("00{} {}", c.country_code, national),
        (true, _) => format!("+{}{}", c.country_code, national),
        (false, 0) => format!("{}{}", c.trunk, national),
        (false, 1) => format!("({}{}) {}", c.trunk, &national[..3], &national[3..]),
        (false, _) => format!("{}{}", c.trunk, grouped(national).replace(' ', "-")),
    }
}

fn format_street(c: &Culture, a: &Address, short: bool) -> String {
    let name = c.streets[a.street];
    let (long, abbr, after) = c.street_type;
    let t = if short { abbr } else { long };
    match (c.name, after) {
        ("de", _) => format!("{name}{t} {}", a.number),
        ("fr", _) => format!("{} {t} {name}", a.number),
        (_, true) => format!("{} {name} {t}", a.number),
        (_, false) => format!("{t} {name} {}", a.number),
    }
}

/// Write `p` as a record; `duplicate` records vary more.
fn record(rng: &mut impl Rng, p: &Person, duplicate: bool, seed: u64, index: usize) -> Record {
    let c = p.culture;
    let mut notes = Vec::new();
    let rate = |base: u32| if duplicate { base } else { base / 4 };
    let names = if p.female { c.female } else { c.male };
    let given_variants = name_variants(&p.given, names);
    let mut given = name_text(&p.given, names).to_string();
    if !given_variants.is_empty() && chance(rng, rate(150)) {
        given = pick(rng, given_variants).to_string();
        notes.push("given-variant");
    }
    let mut family_name = p.family.clone();
    if p.female && duplicate && chance(rng, 40) {
        // married: a new family name
        let mut r2 = rng_for(seed, Stream::PeopleMarriage, index as u64);
        let (a, b) = c.family_parts;
        family_name = Name::Rare(format!("{}{}", pick(&mut r2, a), pick(&mut r2, b)));
        notes.push("surname-changed");
    }
    let family_variants = name_variants(&family_name, c.family);
    let mut family = name_text(&family_name, c.family).to_string();
    if !family_variants.is_empty() && chance(rng, rate(80)) {
        family = pick(rng, family_variants).to_string();
        notes.push("family-variant");
    }
    if chance(rng, rate(80)) {
        given = typo(rng, &given);
        notes.push("typo");
    }
    if chance(rng, rate(60)) {
        family = typo(rng, &family);
        notes.push("typo");
    }
    if chance(rng, 400) {
        given = strip_accents(&given);
        family = strip_accents(&family);
    }
    if chance(rng, rate(30)) {
        given = given.to_uppercase();
        family = family.to_uppercase();
    }
    let swapped = chance(
        rng,
        if duplicate {
            c.family_first_pm.max(20)
        } else {
            c.family_first_pm / 2
        },
    );
    if swapped {
        std::mem::swap(&mut given, &mut family);
        notes.push("names-swapped");
    }
    let (y, mut m, mut d) = p.birth;
    if duplicate && d <= 12 && d != m && chance(rng, 40) {
        std::mem::swap(&mut m, &mut d);
        notes.push("day-month-swapped");
    }
    let birth = (!chance(rng, rate(80))).then(|| format!("{y:04}-{m:02}-{d:02}"));
    let gender = (!chance(rng, 200)).then(|| {
        let long = rng.random_bool(0.3);
        match (p.female, long) {
            (true, true) => "Female",
            (true, false) => "F",
            (false, true) => "Male",
            (false, false) => "M",
        }
        .to_string()
    });
    let email = if chance(rng, rate(120)) {
        None
    } else if duplicate && chance(rng, 80) {
        notes.push("other-mailbox");
        // a work mailbox: unique to the person, like the personal one
        let g = ascii_lower(&given);
        let local = format!("{}{}{index}", &g[..1.min(g.len())], ascii_lower(&family));
        Some(format!("{local}@{}", pick(rng, WORK_DOMAINS)))
    } else if chance(rng, 100) {
        Some(p.email.to_uppercase())
    } else {
        Some(p.email.clone())
    };
    let phone = if chance(rng, rate(120)) {
        None
    } else if duplicate && chance(rng, 40) {
        notes.push("new-phone");
        let n: u64 = rng.random_range(
            2 * 10u64.pow(c.national_digits as u32 - 1)..10u64.pow(c.national_digits as u32),
        );
        Some(format_phone(rng, c, &n.to_string()))
    } else {
        Some(format_phone(rng, c, &p.phone))
    };
    let moved = duplicate && chance(rng, 80);
    let a = if moved {
        notes.push("moved");
        address(rng, c)
    } else {
        p.address.clone()
    };
    let (street, city, postal) = if chance(rng, rate(80)) {
        (None, None, None)
    } else {
        (
            Some(format_street(c, &a, chance(rng, 400))),
            Some(c.cities[a.city].0.to_string()),
            (!chance(rng, 50)).then(|| a.postal.clone()),
        )
    };
    let country = (!chance(rng, 150)).then(|| c.country.to_string());
    Record {
        given: (!given.is_empty() && !chance(rng, 10)).then_some(given),
        family: Some(family),
        birth,
        gender,
        email,
        phone,
        street,
        city,
        postal,
        country,
        notes,
    }
}

fn opt(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("")
}

/// Generate the two sources and the truth into `dir`.
pub fn generate(config: &PeopleConfig, dir: &Path) -> Result<PeopleSummary> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let persons = ((config.records as f64) / RECORDS_PER_PERSON)
        .round()
        .max(1.0) as usize;
    let mut crm = CsvWriter::create(&dir.join(CRM_FILE), "\n")?;
    let mut web = CsvWriter::create(&dir.join(WEB_FILE), "\n")?;
    let mut truth = CsvWriter::create(&dir.join(TRUTH_FILE), "\n")?;
    crm.record(&CRM_HEADER)?;
    web.record(&WEB_HEADER)?;
    truth.record(&["Source", "Row", "RecordKey", "PersonId", "Note"])?;
    let mut summary = PeopleSummary {
        persons,
        ..PeopleSummary::default()
    };
    let mut previous: Option<Person> = None;
    for i in 0..persons {
        let p = person(config.seed, i, previous.as_ref());
        let mut rng = rng_for(config.seed, Stream::PeopleRecords, i as u64);
        let extras = match rng.random_range(0..100) {
            0..5 => 2,
            5..37 => 1,
            _ => 0,
        };
        let first_in_crm = chance(&mut rng, 880);
        for n in 0..=extras {
            let in_crm = if n == 0 {
                first_in_crm
            } else if chance(&mut rng, 750) {
                !first_in_crm
            } else {
                first_in_crm
            };
            let r = record(&mut rng, &p, n > 0, config.seed, i * 4 + n);
            let day = rng.random_range(1..29);
            let month = rng.random_range(1..13);
            let stamp = format!("202{}-{month:02}-{day:02}", rng.random_range(0..6));
            let person_id = format!("P{i}");
            let note = if n > 0 {
                r.notes.join(" ")
            } else {
                String::new()
            };
            if n > 0 {
                summary.duplicates += 1;
            }
            if in_crm {
                summary.crm += 1;
                let key = format!("C{:08}", summary.crm);
                crm.record(&[
                    key.as_str(),
                    opt(&r.given),
                    opt(&r.family),
                    opt(&r.birth),
                    opt(&r.gender),
                    opt(&r.email),
                    opt(&r.phone),
                    opt(&r.street),
                    opt(&r.city),
                    opt(&r.postal),
                    opt(&r.country),
                    &stamp,
                ])?;
                truth.record(&[
                    "Contacts",
                    &summary.crm.to_string(),
                    &key,
                    &person_id,
                    &note,
                ])?;
            } else {
                summary.web += 1;
                let key = format!("W{:08}", summary.web);
                web.record(&[
                    key.as_str(),
                    opt(&r.given),
                    opt(&r.family),
                    opt(&r.birth),
                    opt(&r.email),
                    opt(&r.phone),
                    opt(&r.street),
                    opt(&r.city),
                    opt(&r.postal),
                    opt(&r.country),
                    &format!("{stamp}T12:00:00Z"),
                ])?;
                truth.record(&["Signups", &summary.web.to_string(), &key, &person_id, &note])?;
            }
        }
        previous = Some(p);
    }
    crm.finish()?;
    web.finish()?;
    truth.finish()?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_population_has_about_thirty_percent_duplicates_and_is_repeatable() {
        let dir = tempfile::tempdir().unwrap();
        let config = PeopleConfig {
            seed: 7,
            records: 20_000,
        };
        let s = generate(&config, dir.path()).unwrap();
        let share = s.duplicates as f64 / s.records() as f64;
        assert!((0.27..0.33).contains(&share), "{share}");
        assert!((19_000..21_000).contains(&s.records()), "{}", s.records());
        let first = std::fs::read(dir.path().join(CRM_FILE)).unwrap();
        let again = tempfile::tempdir().unwrap();
        generate(&config, again.path()).unwrap();
        assert_eq!(first, std::fs::read(again.path().join(CRM_FILE)).unwrap());
        // every row has its truth
        let truth = std::fs::read_to_string(dir.path().join(TRUTH_FILE)).unwrap();
        assert_eq!(truth.lines().count() - 1, s.records());
    }

    #[test]
    fn records_come_from_every_culture_and_vary_as_documented() {
        let dir = tempfile::tempdir().unwrap();
        generate(
            &PeopleConfig {
                seed: 1,
                records: 20_000,
            },
            dir.path(),
        )
        .unwrap();
        let crm = std::fs::read_to_string(dir.path().join(CRM_FILE)).unwrap();
        for country in CULTURES.iter().map(|c| c.country) {
            assert!(crm.contains(country), "{country}");
        }
        let truth = std::fs::read_to_string(dir.path().join(TRUTH_FILE)).unwrap();
        for note in [
            "given-variant",
            "surname-changed",
            "typo",
            "names-swapped",
            "day-month-swapped",
            "other-mailbox",
            "new-phone",
            "moved",
        ] {
            assert!(truth.contains(note), "{note}");
        }
        // unrelated people share common names
        let mut names = std::collections::HashMap::<&str, std::collections::HashSet<&str>>::new();
        let persons: std::collections::HashMap<&str, &str> = truth
            .lines()
            .skip(1)
            .filter_map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                Some((*f.get(2)?, *f.get(3)?))
            })
            .collect();
        for line in crm.lines().skip(1) {
            let f: Vec<&str> = line.split(',').collect();
            names.entry(f[2]).or_default().insert(persons[f[0]]);
        }
        assert!(names.values().any(|p| p.len() > 100));
    }
}
