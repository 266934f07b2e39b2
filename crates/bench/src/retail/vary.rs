//! The ways the same fact is written differently from one record to the next: typing
//! mistakes, letter case, short names, telephone and street formats.

use rand::Rng;

use super::names::{state_name, CITIES, DIRECTIONS, DOMAIN_TYPOS, STREET_NAMES, STREET_TYPES};
use super::person::{Address, Phone, UnitKind};
use super::rng::chance;

/// Replaces the Latin letters with diacritics that occur in the name lists by plain ones.
pub(crate) fn strip_accents(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'á' | 'à' | 'â' | 'ä' | 'å' => 'a',
            'é' | 'è' | 'ê' | 'ë' => 'e',
            'í' | 'ì' | 'î' | 'ï' => 'i',
            'ó' | 'ò' | 'ô' | 'ö' | 'ø' => 'o',
            'ú' | 'ù' | 'û' | 'ü' => 'u',
            'ñ' => 'n',
            'ç' => 'c',
            'ß' => 's',
            'Á' => 'A',
            'É' => 'E',
            'Ö' => 'O',
            'Ø' => 'O',
            other => other,
        })
        .collect()
}

/// One typing mistake: two neighbouring letters swapped, a letter dropped or doubled.
pub(crate) fn typo(rng: &mut impl Rng, s: &str) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    if chars.len() < 3 {
        return s.to_string();
    }
    let i = rng.random_range(1..chars.len() - 1);
    match rng.random_range(0..3) {
        0 => chars.swap(i, i + 1),
        1 => {
            chars.remove(i);
        }
        _ => chars.insert(i, chars[i]),
    }
    chars.into_iter().collect()
}

/// A name as typed into a form or a CRM: with rates (per mille) of typing mistakes,
/// all upper case and all lower case.
pub(crate) fn name(
    rng: &mut impl Rng,
    s: &str,
    typo_pm: u32,
    upper_pm: u32,
    lower_pm: u32,
) -> String {
    let mut out = if chance(rng, typo_pm) {
        typo(rng, s)
    } else {
        s.to_string()
    };
    if chance(rng, 60) {
        out = strip_accents(&out);
    }
    let roll = rng.random_range(0..1000u32);
    if roll < upper_pm {
        out.to_uppercase()
    } else if roll < upper_pm + lower_pm {
        out.to_lowercase()
    } else {
        out
    }
}

/// How people write a mailbox address.
pub(crate) fn email(rng: &mut impl Rng, address: &str, capitalise_pm: u32, typo_pm: u32) -> String {
    let Some((local, domain)) = address.split_once('@') else {
        return address.to_string();
    };
    let mut domain = domain.to_string();
    let mut local = local.to_string();
    if chance(rng, typo_pm) {
        if let Some((_, wrong)) = DOMAIN_TYPOS.iter().find(|(right, _)| *right == domain) {
            domain = (*wrong).to_string();
        } else {
            local = typo(rng, &local);
        }
    }
    if chance(rng, capitalise_pm) {
        if chance(rng, 150) {
            return format!("{}@{}", local.to_uppercase(), domain.to_uppercase());
        }
        local = local
            .split_inclusive(['.', '_'])
            .map(capitalise)
            .collect::<String>();
        domain = capitalise(&domain);
    }
    format!("{local}@{domain}")
}

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Written forms of a telephone number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PhoneStyle {
    /// `+14255550134`
    E164,
    /// `+1 (425) 555-0134`
    International,
    /// `+1 425 555 0134`
    Spaced,
    /// `(425) 555-0134`
    Parenthesised,
    /// `425-555-0134`
    Dashed,
    /// `425.555.0134`
    Dotted,
    /// `4255550134`
    Digits,
}

/// A telephone number in a style.
pub(crate) fn phone(p: Phone, style: PhoneStyle) -> String {
    let (a, e, l) = (p.area, p.exchange, p.line);
    match style {
        PhoneStyle::E164 => format!("+1{a}{e}{l:04}"),
        PhoneStyle::International => format!("+1 ({a}) {e}-{l:04}"),
        PhoneStyle::Spaced => format!("+1 {a} {e} {l:04}"),
        PhoneStyle::Parenthesised => format!("({a}) {e}-{l:04}"),
        PhoneStyle::Dashed => format!("{a}-{e}-{l:04}"),
        PhoneStyle::Dotted => format!("{a}.{e}.{l:04}"),
        PhoneStyle::Digits => format!("{a}{e}{l:04}"),
    }
}

/// Where and how a unit (apartment, suite) is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UnitPlacement {
    /// Not written at all.
    Omitted,
    /// `12 Oak St Apt 4`
    SameLine,
    /// `12 Oak St, Apt 4`
    AfterComma,
    /// `12 Oak St #4`
    Hash,
    /// In a separate address line.
    SecondLine,
}

/// Choices made when writing a street line.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StreetStyle {
    pub abbreviate_type: bool,
    pub period: bool,
    pub full_direction: bool,
    pub unit: UnitPlacement,
    pub upper: bool,
}

impl StreetStyle {
    /// A style with the rates (per mille) of one source's habits.
    pub fn draw(
        rng: &mut impl Rng,
        abbreviate_pm: u32,
        unit: UnitPlacement,
        upper_pm: u32,
    ) -> Self {
        let abbreviate_type = chance(rng, abbreviate_pm);
        Self {
            abbreviate_type,
            period: abbreviate_type && chance(rng, 120),
            full_direction: chance(rng, 150),
            unit,
            upper: chance(rng, upper_pm),
        }
    }
}

/// The street line of an address and, for [`UnitPlacement::SecondLine`], the unit line.
pub(crate) fn street(address: &Address, style: StreetStyle) -> (String, Option<String>) {
    let mut line = address.number.to_string();
    if let Some(d) = address.direction {
        line.push(' ');
        line.push_str(if style.full_direction {
            DIRECTIONS[d].1
        } else {
            DIRECTIONS[d].0
        });
    }
    line.push(' ');
    line.push_str(STREET_NAMES[address.street]);
    let (full, short, _) = STREET_TYPES[address.street_type];
    line.push(' ');
    if style.abbreviate_type {
        line.push_str(short);
        if style.period && short != full {
            line.push('.');
        }
    } else {
        line.push_str(full);
    }
    let unit = address.unit.as_ref().map(|u| {
        let word = match u.kind {
            UnitKind::Apartment => "Apt",
            UnitKind::Unit => "Unit",
            UnitKind::Suite => "Suite",
        };
        (word, u.label.as_str())
    });
    let mut second = None;
    if let Some((word, label)) = unit {
        match style.unit {
            UnitPlacement::Omitted => {}
            UnitPlacement::SameLine => line.push_str(&format!(" {word} {label}")),
            UnitPlacement::AfterComma => line.push_str(&format!(", {word} {label}")),
            UnitPlacement::Hash => line.push_str(&format!(" #{label}")),
            UnitPlacement::SecondLine => second = Some(format!("{word} {label}")),
        }
    }
    if style.upper {
        (line.to_uppercase(), second.map(|s| s.to_uppercase()))
    } else {
        (line, second)
    }
}

/// The city of an address.
pub(crate) fn city(address: &Address) -> &'static str {
    CITIES[address.city].name
}

/// The state of an address, as its code or, with `full`, its name.
pub(crate) fn state(address: &Address, full: bool) -> &'static str {
    let code = CITIES[address.city].state;
    if full {
        state_name(code)
    } else {
        code
    }
}

/// A five-digit ZIP code.
pub(crate) fn zip(address: &Address) -> String {
    format!("{:05}", address.zip)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retail::rng::{rng_for, Stream};

    #[test]
    fn phone_styles() {
        let p = Phone {
            area: 425,
            exchange: 555,
            line: 134,
        };
        assert_eq!(phone(p, PhoneStyle::International), "+1 (425) 555-0134");
        assert_eq!(phone(p, PhoneStyle::Digits), "4255550134");
        assert_eq!(phone(p, PhoneStyle::Dashed), "425-555-0134");
        assert_eq!(phone(p, PhoneStyle::E164), "+14255550134");
    }

    #[test]
    fn typos_change_one_letter() {
        let mut rng = rng_for(1, Stream::Selection, 0);
        for _ in 0..200 {
            let t = typo(&mut rng, "Elizabeth");
            assert_ne!(t, "Elizabeth");
            let diff = t.chars().count() as i64 - 9;
            assert!(diff.abs() <= 1, "{t}");
        }
        assert_eq!(strip_accents("Zoë Núñez"), "Zoe Nunez");
    }

    #[test]
    fn email_case() {
        let mut rng = rng_for(2, Stream::Selection, 0);
        let e = email(&mut rng, "john.smith@example.com", 1000, 0);
        assert!(e.eq_ignore_ascii_case("john.smith@example.com"), "{e}");
        assert_ne!(e, "john.smith@example.com");
    }
}
