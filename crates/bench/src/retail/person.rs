//! The underlying population: the true people behind every source record.
//!
//! A person is drawn from its own random stream, so any person can be rebuilt on demand
//! from the seed and its id. One pass over the population coordinates the attributes that
//! must be unique across people (mailbox addresses and telephone numbers), as real
//! providers guarantee, and keeps only a few bytes per person.

use rand::Rng;

use super::dates::days_from_civil;
use super::names::{
    nicknames, CITIES, DIRECTIONS, FIRST_NAMES, LAST_NAMES, PERSONAL_DOMAINS, STREET_NAMES,
    STREET_TYPES, WORK_DOMAINS,
};
use super::rng::{chance, pick, pick_weighted, rng_for, Stream};

/// The kind of a secondary address unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UnitKind {
    Apartment,
    Unit,
    Suite,
}

/// An apartment, unit or suite within a building.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unit {
    pub kind: UnitKind,
    pub label: String,
}

/// A US street address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Address {
    pub number: u32,
    pub direction: Option<usize>,
    pub street: usize,
    pub street_type: usize,
    pub unit: Option<Unit>,
    pub city: usize,
    pub zip: u32,
}

/// A North American telephone number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Phone {
    pub area: u16,
    pub exchange: u16,
    pub line: u16,
}

/// One true person.
#[derive(Debug, Clone)]
pub(crate) struct Person {
    pub id: u32,
    pub first: &'static str,
    pub middle: char,
    pub last: String,
    pub birth_days: i64,
    pub email: String,
    pub second_email: Option<String>,
    pub mobile: Phone,
    pub landline: Option<Phone>,
    pub address: Address,
    pub previous_address: Option<Address>,
}

impl Person {
    /// The ground-truth identifier of the person, e.g. `P0000042`.
    pub fn key(&self) -> String {
        person_key(self.id)
    }

    /// The short forms of the person's given name.
    pub fn nicknames(&self) -> &'static [&'static str] {
        nicknames(self.first)
    }
}

/// The ground-truth identifier of person `id`.
pub(crate) fn person_key(id: u32) -> String {
    format!("P{:07}", u64::from(id) + 1)
}

/// How a mailbox name is built from a name.
#[derive(Debug, Clone, Copy)]
struct EmailSpec {
    pattern: u8,
    domain: &'static str,
    digits: u16,
}

/// Attributes drawn from one person's stream, before households are resolved.
#[derive(Debug, Clone)]
struct Core {
    joins_household: bool,
    keeps_family_name: bool,
    first: usize,
    middle: char,
    last: usize,
    second_last: Option<usize>,
    birth_days: i64,
    email: EmailSpec,
    second_email: Option<EmailSpec>,
    area: u16,
    has_landline: bool,
    address: Address,
    previous_address: Option<Address>,
}

const BIRTH_FIRST: i64 = days_from_civil(1940, 1, 1);
const BIRTH_LAST: i64 = days_from_civil(2007, 12, 31);

fn draw_address(rng: &mut impl Rng, city: usize) -> Address {
    let c = &CITIES[city];
    let number = if chance(rng, 300) {
        rng.random_range(1..200)
    } else {
        rng.random_range(100..20_000)
    };
    let street = rng.random_range(0..STREET_NAMES.len());
    let numbered = STREET_NAMES[street].starts_with(|ch: char| ch.is_ascii_digit());
    let direction = (numbered && chance(rng, 700) || chance(rng, 60))
        .then(|| rng.random_range(0..DIRECTIONS.len()));
    let street_type = pick_weighted(rng, STREET_TYPES.iter().map(|t| t.2));
    let unit = chance(rng, 220).then(|| {
        let kind = match rng.random_range(0..10) {
            0..=6 => UnitKind::Apartment,
            7..=8 => UnitKind::Unit,
            _ => UnitKind::Suite,
        };
        let label = match kind {
            UnitKind::Suite => {
                format!("{}", rng.random_range(1..40) * 10 + rng.random_range(0..10))
            }
            _ if chance(rng, 400) => format!(
                "{}{}",
                rng.random_range(1..30),
                char::from(b'A' + rng.random_range(0..6u8))
            ),
            _ => format!("{}", rng.random_range(1..1_200)),
        };
        Unit { kind, label }
    });
    let zip = c.zip_low + rng.random_range(0..c.zip_count);
    Address {
        number,
        direction,
        street,
        street_type,
        unit,
        city,
        zip,
    }
}

fn draw_email(rng: &mut impl Rng, work: bool) -> EmailSpec {
    if work {
        EmailSpec {
            pattern: [0u8, 0, 0, 2, 2, 7][rng.random_range(0..6)],
            domain: WORK_DOMAINS[rng.random_range(0..WORK_DOMAINS.len())],
            digits: 0,
        }
    } else {
        let pattern = pick_weighted(rng, [25u32, 12, 12, 6, 12, 8, 5, 10, 5, 5].into_iter());
        let domain = PERSONAL_DOMAINS[pick_weighted(rng, PERSONAL_DOMAINS.iter().map(|d| d.1))].0;
        EmailSpec {
            pattern: pattern as u8,
            domain,
            digits: rng.random_range(1..100),
        }
    }
}

fn draw_core(seed: u64, id: u32) -> Core {
    let mut rng = rng_for(seed, Stream::Person, u64::from(id));
    let joins_household = chance(&mut rng, 110);
    let keeps_family_name = chance(&mut rng, 750);
    let first = rng.random_range(0..FIRST_NAMES.len());
    let middle = char::from(b'A' + rng.random_range(0..26u8));
    let last = rng.random_range(0..LAST_NAMES.len());
    let second_last = chance(&mut rng, 25).then(|| rng.random_range(0..LAST_NAMES.len()));
    let a = rng.random_range(BIRTH_FIRST..=BIRTH_LAST);
    let b = rng.random_range(BIRTH_FIRST..=BIRTH_LAST);
    let birth_days = (a + b) / 2;
    let email = draw_email(&mut rng, false);
    let second_email = chance(&mut rng, 350).then(|| {
        let work = chance(&mut rng, 600);
        draw_email(&mut rng, work)
    });
    let city = pick_weighted(&mut rng, CITIES.iter().map(|c| c.weight));
    let home_city = if chance(&mut rng, 150) {
        pick_weighted(&mut rng, CITIES.iter().map(|c| c.weight))
    } else {
        city
    };
    let area = *pick(&mut rng, CITIES[home_city].area_codes);
    let has_landline = chance(&mut rng, 200);
    let address = draw_address(&mut rng, city);
    let previous_address = chance(&mut rng, 90).then(|| {
        let previous_city = if chance(&mut rng, 500) {
            city
        } else {
            pick_weighted(&mut rng, CITIES.iter().map(|c| c.weight))
        };
        draw_address(&mut rng, previous_city)
    });
    Core {
        joins_household,
        keeps_family_name,
        first,
        middle,
        last,
        second_last,
        birth_days,
        email,
        second_email,
        area,
        has_landline,
        address,
        previous_address,
    }
}

/// Applies household membership: a person who joins the household of the previous person
/// (when that one heads its own) shares the address and usually the family name.
fn resolve(mut core: Core, previous: Option<&Core>) -> Core {
    if let Some(head) = previous.filter(|head| core.joins_household && !head.joins_household) {
        core.address = head.address.clone();
        if core.keeps_family_name {
            core.last = head.last;
            core.second_last = head.second_last;
        }
    }
    core
}

fn family_name(core: &Core) -> String {
    match core.second_last {
        Some(second) if second != core.last => {
            format!("{}-{}", LAST_NAMES[core.last], LAST_NAMES[second])
        }
        _ => LAST_NAMES[core.last].to_string(),
    }
}

/// Lowercase ASCII letters and digits of a name, with diacritics removed.
pub(crate) fn mailbox_token(name: &str) -> String {
    super::vary::strip_accents(name)
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

fn mailbox(spec: EmailSpec, core: &Core, last: &str) -> String {
    let first_name = FIRST_NAMES[core.first];
    let first = mailbox_token(first_name);
    let last = mailbox_token(last);
    let initial = first.chars().next().unwrap_or('x');
    let year = super::dates::civil_from_days(core.birth_days).0;
    match spec.pattern {
        0 => format!("{first}.{last}"),
        1 => format!("{first}{last}"),
        2 => format!("{initial}{last}"),
        3 => format!("{first}_{last}"),
        4 => format!("{first}.{last}{:02}", year % 100),
        5 => format!("{first}{year}"),
        6 => format!("{last}.{first}"),
        7 => format!(
            "{first}{}{:02}",
            last.chars().next().unwrap_or('x'),
            spec.digits
        ),
        8 => format!("{first}.{}.{last}", core.middle.to_ascii_lowercase()),
        _ => {
            let short = nicknames(first_name)
                .first()
                .map_or(first.clone(), |n| mailbox_token(n));
            format!("{short}{last}")
        }
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

const NO_PHONE: u32 = u32::MAX;
const SUFFIX_EMAIL: u8 = 1;
const SUFFIX_SECOND_EMAIL: u8 = 2;

/// The population of one seed, with the coordination data that keeps mailboxes and
/// telephone numbers unique.
pub(crate) struct Population {
    seed: u64,
    email_suffix: Vec<u8>,
    mobile_seq: Vec<u32>,
    landline_seq: Vec<u32>,
}

impl Population {
    /// Draws `size` people for `seed`.
    pub fn new(seed: u64, size: u32) -> Self {
        let n = size as usize;
        let mut email_suffix = vec![0u8; n];
        let mut mobile_seq = vec![NO_PHONE; n];
        let mut landline_seq = vec![NO_PHONE; n];
        let mut next_in_area = vec![0u32; 1_000];
        let mut mailboxes: Vec<(u64, u32)> = Vec::with_capacity(n + n / 2);
        let mut previous: Option<Core> = None;
        for id in 0..size {
            let raw = draw_core(seed, id);
            let core = resolve(raw.clone(), previous.as_ref());
            let last = family_name(&core);
            let email = format!(
                "{}@{}",
                mailbox(core.email, &core, &last),
                core.email.domain
            );
            mailboxes.push((fnv1a(email.as_bytes()), id << 1));
            if let Some(spec) = core.second_email {
                let second = format!("{}@{}", mailbox(spec, &core, &last), spec.domain);
                mailboxes.push((fnv1a(second.as_bytes()), (id << 1) | 1));
            }
            let area = usize::from(core.area);
            mobile_seq[id as usize] = next_in_area[area];
            next_in_area[area] += 1;
            if core.has_landline {
                let area = usize::from(
                    *CITIES[core.address.city]
                        .area_codes
                        .first()
                        .unwrap_or(&core.area),
                );
                landline_seq[id as usize] = next_in_area[area];
                next_in_area[area] += 1;
            }
            previous = Some(raw);
        }
        mailboxes.sort_unstable();
        for pair in mailboxes.windows(2) {
            if pair[0].0 == pair[1].0 {
                let (id, slot) = (pair[1].1 >> 1, pair[1].1 & 1);
                email_suffix[id as usize] |= if slot == 0 {
                    SUFFIX_EMAIL
                } else {
                    SUFFIX_SECOND_EMAIL
                };
            }
        }
        Self {
            seed,
            email_suffix,
            mobile_seq,
            landline_seq,
        }
    }

    /// Number of people.
    pub fn len(&self) -> usize {
        self.email_suffix.len()
    }

    /// Rebuilds person `id`.
    pub fn person(&self, id: u32) -> Person {
        let raw = draw_core(self.seed, id);
        let previous = id.checked_sub(1).map(|p| draw_core(self.seed, p));
        let core = resolve(raw, previous.as_ref());
        let i = id as usize;
        let last = family_name(&core);
        let suffix = |flag: u8| {
            if self.email_suffix[i] & flag != 0 {
                (u64::from(id) + 10_000).to_string()
            } else {
                String::new()
            }
        };
        let email = format!(
            "{}{}@{}",
            mailbox(core.email, &core, &last),
            suffix(SUFFIX_EMAIL),
            core.email.domain
        );
        let second_email = core.second_email.map(|spec| {
            format!(
                "{}{}@{}",
                mailbox(spec, &core, &last),
                suffix(SUFFIX_SECOND_EMAIL),
                spec.domain
            )
        });
        let landline = (self.landline_seq[i] != NO_PHONE).then(|| {
            let area = *CITIES[core.address.city]
                .area_codes
                .first()
                .unwrap_or(&core.area);
            phone(area, self.landline_seq[i])
        });
        Person {
            id,
            first: FIRST_NAMES[core.first],
            middle: core.middle,
            last,
            birth_days: core.birth_days,
            email,
            second_email,
            mobile: phone(core.area, self.mobile_seq[i]),
            landline,
            address: core.address,
            previous_address: core.previous_address,
        }
    }
}

/// The number with sequence `seq` within an area code: exchange 555 (the range reserved for
/// fiction) while it lasts, then the following exchanges.
fn phone(area: u16, seq: u32) -> Phone {
    let exchange = 555 + (seq / 10_000) % 445;
    let line = (u64::from(seq % 10_000) * 7_919 + 3_571) % 10_000;
    Phone {
        area,
        exchange: exchange as u16,
        line: line as u16,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mailboxes_and_phones_are_unique() {
        let population = Population::new(11, 3_000);
        let mut emails = Vec::new();
        let mut phones = Vec::new();
        for id in 0..3_000 {
            let p = population.person(id);
            emails.push(p.email.clone());
            emails.extend(p.second_email.clone());
            phones.push(p.mobile);
            phones.extend(p.landline);
        }
        let n = emails.len();
        emails.sort();
        emails.dedup();
        assert_eq!(emails.len(), n);
        let n = phones.len();
        phones.sort_by_key(|p| (p.area, p.exchange, p.line));
        phones.dedup();
        assert_eq!(phones.len(), n);
    }

    #[test]
    fn households_share_an_address() {
        let population = Population::new(3, 2_000);
        let shared = (1..2_000)
            .filter(|&id| population.person(id).address == population.person(id - 1).address)
            .count();
        assert!(shared > 100 && shared < 300, "{shared}");
    }

    #[test]
    fn rebuilding_a_person_is_stable() {
        let population = Population::new(5, 100);
        let a = population.person(42);
        let b = population.person(42);
        assert_eq!(a.email, b.email);
        assert_eq!(a.address, b.address);
        assert_eq!(a.key(), "P0000043");
    }
}
