//! Normalisation of values before comparison.
//!
//! A [`Normalizer`] is built once from the steps a condition declares (see
//! [`Normalization`]: each variant's documentation is its contract) and is then applied
//! to every value of a column, so it is written for throughput: lookup tables are
//! static sorted arrays searched without allocating, steps work on `&str` and append to
//! a reused buffer, and [`Normalizer::apply_into`] allocates nothing once its two
//! buffers have grown to the size of the values (lower-casing text that is not ASCII
//! aside).

use lakecdp_core::unify::Normalization;

/// Normalisation steps, applied in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalizer {
    steps: Box<[Normalization]>,
}

impl Normalizer {
    /// A normaliser applying `steps` in the given order (no step: values pass unchanged).
    pub fn new(steps: &[Normalization]) -> Self {
        Normalizer {
            steps: steps.into(),
        }
    }

    /// The steps, in order.
    pub fn steps(&self) -> &[Normalization] {
        &self.steps
    }

    /// The normalised form of `value`.
    pub fn apply(&self, value: &str) -> String {
        let mut out = String::with_capacity(value.len() + 8);
        let mut scratch = String::new();
        self.apply_into(value, &mut out, &mut scratch);
        out
    }

    /// Writes the normalised form of `value` into `out` (cleared first), using
    /// `scratch` as working space; reusing both across values avoids any allocation
    /// once they have grown.
    pub fn apply_into(&self, value: &str, out: &mut String, scratch: &mut String) {
        out.clear();
        let Some((first, rest)) = self.steps.split_first() else {
            out.push_str(value);
            return;
        };
        if rest.is_empty() {
            apply_step(*first, value, out);
            return;
        }
        // Ping-pong between the two buffers so that the last step writes into `out`.
        let (mut src, mut dst) = if rest.len().is_multiple_of(2) {
            (out, scratch)
        } else {
            (scratch, out)
        };
        src.clear();
        apply_step(*first, value, src);
        for step in rest {
            dst.clear();
            apply_step(*step, src, dst);
            std::mem::swap(&mut src, &mut dst);
        }
    }
}

/// Normalises one value with `steps`, in order. For many values, build a [`Normalizer`]
/// once instead.
pub fn normalize(value: &str, steps: &[Normalization]) -> String {
    Normalizer::new(steps).apply(value)
}

/// Appends `step` applied to `input` to `out`.
fn apply_step(step: Normalization, input: &str, out: &mut String) {
    match step {
        Normalization::Numerals => numerals(input, out),
        Normalization::Symbols => symbols(input, out),
        Normalization::Lowercase => lowercase(input, out),
        Normalization::Phone => phone(input, out),
        Normalization::Name => replace_words(input, out, NICKNAMES, false),
        Normalization::Address => replace_words(input, out, ADDRESS_WORDS, true),
        Normalization::Organization => organization(input, out),
        Normalization::UnicodeToAscii => unicode_to_ascii(input, out),
        Normalization::Whitespace => whitespace(input, out),
        Normalization::Email => email(input, out),
    }
}

/// Email addresses: a `+tag` of the mailbox name is dropped (`jane+shop@example.com` is
/// `jane@example.com`); the rest is kept as it is.
fn email(input: &str, out: &mut String) {
    match input.split_once('@') {
        Some((local, domain)) => {
            out.push_str(local.split_once('+').map_or(local, |(name, _)| name));
            out.push('@');
            out.push_str(domain);
        }
        None => out.push_str(input),
    }
}

// ---------------------------------------------------------------------------------------
// Character-level steps

/// The first code point (the digit zero) of each run of ten decimal digits (Unicode
/// category Nd) outside ASCII, sorted.
const DIGIT_ZEROS: &[u32] = &[
    0x0660, 0x06F0, 0x07C0, 0x0966, 0x09E6, 0x0A66, 0x0AE6, 0x0B66, 0x0BE6, 0x0C66, 0x0CE6, 0x0D66,
    0x0DE6, 0x0E50, 0x0ED0, 0x0F20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0x1A80, 0x1A90,
    0x1B50, 0x1BB0, 0x1C40, 0x1C50, 0xA620, 0xA8D0, 0xA900, 0xA9D0, 0xA9F0, 0xAA50, 0xABF0, 0xFF10,
    0x104A0, 0x10D30, 0x11066, 0x110F0, 0x11136, 0x111D0, 0x112F0, 0x11450, 0x114D0, 0x11650,
    0x116C0, 0x11730, 0x118E0, 0x11950, 0x11C50, 0x11D50, 0x11DA0, 0x16A60, 0x16AC0, 0x16B50,
    0x1D7CE, 0x1D7D8, 0x1D7E2, 0x1D7EC, 0x1D7F6, 0x1E140, 0x1E2F0, 0x1E950, 0x1FBF0,
];

/// The value of a decimal digit of any script (ASCII `0`-`9`, Arabic-Indic, Devanagari,
/// fullwidth, ...).
pub(crate) fn digit_value(c: char) -> Option<u8> {
    if c.is_ascii_digit() {
        return Some(c as u8 - b'0');
    }
    let code = c as u32;
    if code < DIGIT_ZEROS[0] {
        return None;
    }
    let zero = match DIGIT_ZEROS.binary_search(&code) {
        Ok(i) => DIGIT_ZEROS[i],
        Err(i) => DIGIT_ZEROS[i - 1],
    };
    (code - zero < 10).then(|| (code - zero) as u8)
}

fn numerals(input: &str, out: &mut String) {
    if input.is_ascii() {
        out.push_str(input);
        return;
    }
    for c in input.chars() {
        match digit_value(c) {
            Some(d) if !c.is_ascii() => out.push((b'0' + d) as char),
            _ => out.push(c),
        }
    }
}

/// Combining marks (accents written as separate code points) belong to the letter
/// before them and are kept with it.
fn is_combining_mark(c: char) -> bool {
    matches!(c, '\u{0300}'..='\u{036F}'
        | '\u{1AB0}'..='\u{1AFF}'
        | '\u{1DC0}'..='\u{1DFF}'
        | '\u{20D0}'..='\u{20FF}'
        | '\u{FE20}'..='\u{FE2F}')
}

fn symbols(input: &str, out: &mut String) {
    if input.is_ascii() {
        // `char::is_whitespace`, as below, for ASCII: unlike `u8::is_ascii_whitespace`
        // it includes the vertical tab, so a value keeps the same characters whether or
        // not it also holds non-ASCII text.
        out.extend(
            input
                .bytes()
                .filter(|b| b.is_ascii_alphanumeric() || char::from(*b).is_whitespace())
                .map(char::from),
        );
        return;
    }
    out.extend(
        input
            .chars()
            .filter(|c| c.is_alphanumeric() || c.is_whitespace() || is_combining_mark(*c)),
    );
}

fn lowercase(input: &str, out: &mut String) {
    if input.is_ascii() {
        out.extend(input.bytes().map(|b| char::from(b.to_ascii_lowercase())));
    } else {
        // `str::to_lowercase` knows the context rules (a final Greek sigma).
        out.push_str(&input.to_lowercase());
    }
}

fn whitespace(input: &str, out: &mut String) {
    for (i, word) in input.split_whitespace().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(word);
    }
}

fn unicode_to_ascii(input: &str, out: &mut String) {
    if input.is_ascii() {
        out.push_str(input);
        return;
    }
    for c in input.chars() {
        if c.is_ascii() {
            out.push(c);
        } else if let Some(ascii) = deunicode::deunicode_char(c) {
            out.push_str(ascii);
        }
        // Characters without a transliteration (private use, unassigned) are dropped.
    }
}

/// Phone numbers: digits only (of any script, as ASCII), up to an extension (`x`,
/// `ext` after at least seven digits). An international prefix, `+` or `00`, leaves
/// the bare country code, and a trunk `(0)` written after it, as in `+44 (0)20 ...`,
/// is dropped. Then only the last ten digits are kept: how a number is written (with
/// or without its country code or trunk `0`) varies far more than its last ten digits,
/// so `+44 20 7946 0958`, `020 7946 0958` and `0044 (20) 7946-0958` are all
/// `2079460958`, and `+1 (425) 555-0134` and `425.555.0134` are both `4255550134`.
fn phone(input: &str, out: &mut String) {
    let start = out.len();
    let mut plus = false;
    for (i, c) in input.char_indices() {
        match digit_value(c) {
            Some(d) => {
                let digits = &out[start..];
                let international = plus || digits.starts_with("00");
                if d == 0
                    && international
                    && !digits.is_empty()
                    && input[..i].ends_with('(')
                    && input[i + c.len_utf8()..].starts_with(')')
                {
                    continue;
                }
                out.push((b'0' + d) as char);
            }
            None if c == '+' && out.len() == start => plus = true,
            None if matches!(c, 'x' | 'X' | 'e' | 'E' | '#') && out.len() - start >= 7 => break,
            None => {}
        }
    }
    if !plus && out[start..].starts_with("00") {
        out.replace_range(start..start + 2, "");
    }
    let digits = out.len() - start;
    if digits > 10 {
        out.replace_range(start..start + digits - 10, "");
    }
}

// ---------------------------------------------------------------------------------------
// Word-level steps

/// Letter case of a word, carried over to its replacement.
#[derive(Clone, Copy)]
enum Case {
    Lower,
    Title,
    Upper,
}

fn case_of(word: &str) -> Case {
    let mut chars = word.chars();
    match chars.next() {
        Some(c) if c.is_uppercase() => {
            let mut rest = chars.peekable();
            if rest.peek().is_some() && rest.all(|c| !c.is_lowercase()) {
                Case::Upper
            } else {
                Case::Title
            }
        }
        _ => Case::Lower,
    }
}

/// Appends `replacement` (lower case ASCII) in `case`.
fn push_cased(out: &mut String, replacement: &str, case: Case) {
    match case {
        Case::Lower => out.push_str(replacement),
        Case::Upper => out.extend(
            replacement
                .bytes()
                .map(|b| char::from(b.to_ascii_uppercase())),
        ),
        Case::Title => {
            let mut word_start = true;
            for b in replacement.bytes() {
                out.push(char::from(if word_start {
                    b.to_ascii_uppercase()
                } else {
                    b
                }));
                word_start = b == b' ';
            }
        }
    }
}

/// Longest key of the word tables, bounding the lookup buffer.
const MAX_KEY: usize = 24;

/// `word` in ASCII lower case in `buf`, or `None` when it cannot be a table key
/// (not ASCII, or too long).
fn ascii_key<'b>(word: &str, buf: &'b mut [u8; MAX_KEY]) -> Option<&'b str> {
    if word.len() > MAX_KEY || !word.is_ascii() {
        return None;
    }
    let key = &mut buf[..word.len()];
    key.copy_from_slice(word.as_bytes());
    key.make_ascii_lowercase();
    std::str::from_utf8(key).ok()
}

fn lookup(table: &'static [(&'static str, &'static str)], key: &str) -> Option<&'static str> {
    table
        .binary_search_by(|(k, _)| (*k).cmp(key))
        .ok()
        .map(|i| table[i].1)
}

/// Replaces each word (a run of letters and digits) found in `table`, compared without
/// case, keeping the word's case and everything between words. With `address`, a dot
/// right after a replaced abbreviation is dropped (`St.` is `Street`), and a word ending
/// in the German `str` (`Hauptstr.`) ends in `strasse`.
fn replace_words(
    input: &str,
    out: &mut String,
    table: &'static [(&'static str, &'static str)],
    address: bool,
) {
    let mut buf = [0u8; MAX_KEY];
    let mut word_start: Option<usize> = None;
    let mut drop_dot = false;
    let flush = |word: &str, out: &mut String, buf: &mut [u8; MAX_KEY]| -> bool {
        if let Some(replacement) = ascii_key(word, buf).and_then(|key| lookup(table, key)) {
            push_cased(out, replacement, case_of(word));
            return true;
        }
        if address && word.len() > 3 && word.is_ascii() {
            let (stem, end) = word.split_at(word.len() - 3);
            if end.eq_ignore_ascii_case("str") && stem.bytes().all(|b| b.is_ascii_alphabetic()) {
                out.push_str(stem);
                push_cased(out, "strasse", case_of(end));
                return true;
            }
        }
        out.push_str(word);
        false
    };
    for (i, c) in input.char_indices() {
        if c.is_alphanumeric() {
            word_start.get_or_insert(i);
            continue;
        }
        if let Some(start) = word_start.take() {
            drop_dot = flush(&input[start..i], out, &mut buf) && address;
        }
        if !(drop_dot && c == '.') {
            out.push(c);
        }
        drop_dot = false;
    }
    if let Some(start) = word_start {
        flush(&input[start..], out, &mut buf);
    }
}

/// Removes legal-form suffixes from the end of an organisation name: `Acme, Inc.`,
/// `Acme Holdings Pty Ltd`, `Foo S.A.`, `Bar GmbH & Co. KG` become `Acme`,
/// `Acme Holdings`, `Foo`, `Bar`. Suffixes are compared without case, dots or slashes,
/// and a suffix written in spaced letters (`S. A.`, `S.a r.l.`) counts; a connector
/// (`&`, `and`, `und`, `et`, `y`) before a removed suffix goes with it. The first word
/// always stays.
fn organization(input: &str, out: &mut String) {
    let is_sep = |c: char| c.is_whitespace() || c == ',';
    let Some(first_start) = input.find(|c: char| !is_sep(c)) else {
        out.push_str(input);
        return;
    };
    // The token ending before byte `end` (separators skipped), as a byte range.
    let prev_token = |end: usize| -> Option<(usize, usize)> {
        let stop = input[..end].trim_end_matches(is_sep).len();
        if stop == 0 {
            return None;
        }
        // A separator can be several bytes long (a no-break space is two): the token
        // begins after the whole of it.
        let begin = input[..stop]
            .char_indices()
            .rfind(|(_, c)| is_sep(*c))
            .map_or(0, |(i, c)| i + c.len_utf8());
        Some((begin, stop))
    };
    let mut cut = input.len();
    let mut removed = false;
    'outer: loop {
        let mut tokens = [(0usize, 0usize); 4];
        let mut count = 0;
        let mut end = cut;
        while count < tokens.len() {
            match prev_token(end) {
                Some(t) if t.0 > first_start => {
                    tokens[count] = t;
                    count += 1;
                    end = t.0;
                }
                _ => break,
            }
        }
        // Longest suffix first: the last `k` tokens joined.
        for k in (1..=count).rev() {
            let mut key = [0u8; MAX_KEY];
            let mut len = 0;
            let mut fits = true;
            for &(b, e) in tokens[..k].iter().rev() {
                let mut token_len = 0;
                for byte in input[b..e].bytes().filter(|b| *b != b'.' && *b != b'/') {
                    if !byte.is_ascii_alphabetic() && byte != b'&' || len == MAX_KEY {
                        fits = false;
                        break;
                    }
                    key[len] = byte.to_ascii_lowercase();
                    len += 1;
                    token_len += 1;
                }
                // Only short pieces join: `S. A.`, not `Smith Co`.
                if k > 1 && token_len > 3 {
                    fits = false;
                }
                if !fits {
                    break;
                }
            }
            let Ok(key) = std::str::from_utf8(&key[..len]) else {
                continue;
            };
            if !fits || key.is_empty() {
                continue;
            }
            if ORGANIZATION_SUFFIXES.binary_search(&key).is_ok() {
                cut = tokens[k - 1].0;
                removed = true;
                continue 'outer;
            }
            if k == 1 && removed && matches!(key, "&" | "and" | "und" | "et" | "y") {
                cut = tokens[0].0;
                continue 'outer;
            }
        }
        break;
    }
    out.push_str(input[..cut].trim_end_matches(is_sep));
}

// ---------------------------------------------------------------------------------------
// Tables (sorted by key; a test checks it)

/// Nicknames and short forms to the formal first name, English first, then a few from
/// Spanish, Italian, German, Dutch and Russian. A nickname shared by several names maps
/// to the most common one (`pat` is `patrick`); what matters for matching is that both
/// values of a pair map alike.
#[rustfmt::skip]
static NICKNAMES: &[(&str, &str)] = &[
    ("abby", "abigail"), ("abe", "abraham"), ("alex", "alexander"), ("alf", "alfred"),
    ("andy", "andrew"), ("archie", "archibald"), ("art", "arthur"), ("babs", "barbara"),
    ("barb", "barbara"), ("bea", "beatrice"), ("becca", "rebecca"), ("becky", "rebecca"),
    ("ben", "benjamin"), ("benny", "benjamin"), ("beppe", "giuseppe"),
    ("bernie", "bernard"), ("beth", "elizabeth"), ("beto", "alberto"),
    ("betsy", "elizabeth"), ("betty", "elizabeth"), ("bill", "william"),
    ("billy", "william"), ("bob", "robert"), ("bobby", "robert"), ("cathy", "katherine"),
    ("charlie", "charles"), ("charo", "rosario"), ("chas", "charles"),
    ("chema", "jose maria"), ("chico", "francisco"), ("chris", "christopher"),
    ("chucho", "jesus"), ("chuck", "charles"), ("chus", "jesus"), ("cindy", "cynthia"),
    ("cliff", "clifford"), ("concha", "concepcion"), ("connie", "constance"),
    ("curro", "francisco"), ("dan", "daniel"), ("danny", "daniel"), ("dave", "david"),
    ("davy", "david"), ("deb", "deborah"), ("debbie", "deborah"), ("dick", "richard"),
    ("dima", "dmitri"), ("dom", "dominic"), ("don", "donald"), ("donnie", "donald"),
    ("dot", "dorothy"), ("dottie", "dorothy"), ("doug", "douglas"), ("drew", "andrew"),
    ("ed", "edward"), ("eddie", "edward"), ("eliza", "elizabeth"), ("ellie", "eleanor"),
    ("fred", "frederick"), ("freddie", "frederick"), ("freddy", "frederick"),
    ("fritz", "friedrich"), ("gabe", "gabriel"), ("gene", "eugene"), ("geoff", "geoffrey"),
    ("gianni", "giovanni"), ("gigi", "luigi"), ("greg", "gregory"), ("hank", "henry"),
    ("hans", "johannes"), ("harry", "henry"), ("jack", "john"), ("jackie", "jacqueline"),
    ("jake", "jacob"), ("jamie", "james"), ("jeff", "jeffrey"), ("jen", "jennifer"),
    ("jenny", "jennifer"), ("jerry", "gerald"), ("jess", "jessica"), ("jessie", "jessica"),
    ("jim", "james"), ("jimmy", "james"), ("joe", "joseph"), ("joey", "joseph"),
    ("johnny", "john"), ("josh", "joshua"), ("judy", "judith"), ("jupp", "josef"),
    ("kate", "katherine"), ("kathy", "katherine"), ("katie", "katherine"),
    ("katya", "ekaterina"), ("kees", "cornelis"), ("ken", "kenneth"), ("kenny", "kenneth"),
    ("kike", "enrique"), ("kim", "kimberly"), ("kitty", "katherine"), ("kolya", "nikolai"),
    ("larry", "lawrence"), ("len", "leonard"), ("lenny", "leonard"), ("libby", "elizabeth"),
    ("liz", "elizabeth"), ("lizzie", "elizabeth"), ("lola", "dolores"), ("lou", "louis"),
    ("lupe", "guadalupe"), ("lyosha", "alexei"), ("maggie", "margaret"),
    ("mandy", "amanda"), ("manny", "manuel"), ("marge", "margaret"), ("marty", "martin"),
    ("masha", "maria"), ("matt", "matthew"), ("meg", "margaret"), ("memo", "guillermo"),
    ("mick", "michael"), ("mickey", "michael"), ("mike", "michael"), ("mikey", "michael"),
    ("misha", "mikhail"), ("mitch", "mitchell"), ("molly", "mary"), ("nacho", "ignacio"),
    ("natasha", "natalia"), ("nate", "nathan"), ("ned", "edward"), ("nick", "nicholas"),
    ("nicky", "nicholas"), ("paco", "francisco"), ("pam", "pamela"),
    ("pancho", "francisco"), ("pat", "patrick"), ("patty", "patricia"),
    ("peggy", "margaret"), ("pepe", "jose"), ("peppe", "giuseppe"), ("pete", "peter"),
    ("phil", "philip"), ("pippo", "filippo"), ("polly", "mary"), ("quique", "enrique"),
    ("randy", "randall"), ("ray", "raymond"), ("reg", "reginald"), ("reggie", "reginald"),
    ("rich", "richard"), ("richie", "richard"), ("rick", "richard"), ("ricky", "richard"),
    ("rob", "robert"), ("robbie", "robert"), ("robby", "robert"), ("rod", "rodney"),
    ("ron", "ronald"), ("ronnie", "ronald"), ("rosie", "rose"), ("russ", "russell"),
    ("sacha", "alexander"), ("sadie", "sarah"), ("sally", "sarah"), ("sam", "samuel"),
    ("sammy", "samuel"), ("sandy", "sandra"), ("sasha", "alexander"), ("sepp", "josef"),
    ("seryozha", "sergei"), ("sid", "sidney"), ("stan", "stanley"), ("steve", "stephen"),
    ("stu", "stuart"), ("sue", "susan"), ("susie", "susan"), ("suzy", "susan"),
    ("tanya", "tatiana"), ("ted", "edward"), ("teddy", "edward"), ("theo", "theodore"),
    ("tim", "timothy"), ("timmy", "timothy"), ("tom", "thomas"), ("tommy", "thomas"),
    ("tony", "anthony"), ("tricia", "patricia"), ("trish", "patricia"), ("val", "valerie"),
    ("vanya", "ivan"), ("vic", "victor"), ("vicky", "victoria"), ("vince", "vincent"),
    ("volodya", "vladimir"), ("wally", "walter"), ("walt", "walter"), ("wes", "wesley"),
    ("will", "william"), ("willie", "william"), ("willy", "william"), ("wim", "willem"),
    ("zach", "zachary"), ("zack", "zachary"),
];

/// Street types, directions and unit words to their full form, English first, then a few
/// French, German, Spanish, Italian and Polish ones.
#[rustfmt::skip]
static ADDRESS_WORDS: &[(&str, &str)] = &[
    ("aly", "alley"), ("apt", "apartment"), ("av", "avenue"), ("avda", "avenida"),
    ("ave", "avenue"), ("bd", "boulevard"), ("bldg", "building"), ("blvd", "boulevard"),
    ("ch", "chemin"), ("cir", "circle"), ("cl", "close"), ("cres", "crescent"),
    ("crt", "court"), ("ct", "court"), ("ctr", "center"), ("ctra", "carretera"),
    ("dr", "drive"), ("e", "east"), ("esp", "esplanade"), ("expy", "expressway"),
    ("fbg", "faubourg"), ("fl", "floor"), ("fwy", "freeway"), ("gdns", "gardens"),
    ("grv", "grove"), ("hts", "heights"), ("hwy", "highway"), ("imp", "impasse"),
    ("jct", "junction"), ("ln", "lane"), ("mt", "mount"), ("mtn", "mountain"),
    ("n", "north"), ("ne", "northeast"), ("nw", "northwest"), ("pde", "parade"),
    ("pk", "park"), ("pkwy", "parkway"), ("pl", "place"), ("plz", "plaza"), ("pt", "point"),
    ("pza", "plaza"), ("pzza", "piazza"), ("rd", "road"), ("rdg", "ridge"), ("rm", "room"),
    ("rte", "route"), ("s", "south"), ("se", "southeast"), ("sq", "square"),
    ("st", "street"), ("ste", "suite"), ("str", "strasse"), ("sw", "southwest"),
    ("ter", "terrace"), ("terr", "terrace"), ("tpke", "turnpike"), ("trl", "trail"),
    ("ul", "ulica"), ("vle", "viale"), ("vlg", "village"), ("w", "west"), ("wy", "way"),
    ("xing", "crossing"),
];

/// Legal-form suffixes of organisations, without dots, sorted.
#[rustfmt::skip]
static ORGANIZATION_SUFFIXES: &[&str] = &[
    "ab", "ag", "aps", "as", "asa", "bhd", "bv", "cie", "co", "company", "corp",
    "corporation", "gmbh", "inc", "incorporated", "kg", "kk", "limited", "llc", "llp", "lp",
    "ltd", "ltda", "ltee", "nv", "ohg", "oy", "oyj", "plc", "pte", "pty", "pvt", "sa",
    "sarl", "sas", "sdn", "sl", "spa", "sprl", "srl", "ug",
];

#[cfg(test)]
mod tests {
    use super::*;
    use lakecdp_core::unify::SemanticType;
    use Normalization::*;

    fn n(value: &str, steps: &[Normalization]) -> String {
        normalize(value, steps)
    }

    #[test]
    fn tables_are_sorted_and_unique() {
        assert!(NICKNAMES.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(ADDRESS_WORDS.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(ORGANIZATION_SUFFIXES.windows(2).all(|w| w[0] < w[1]));
        for (k, v) in NICKNAMES.iter().chain(ADDRESS_WORDS) {
            assert!(
                k.len() <= MAX_KEY && k.bytes().all(|b| b.is_ascii_lowercase()),
                "{k}"
            );
            assert!(
                v.bytes().all(|b| b.is_ascii_lowercase() || b == b' '),
                "{v}"
            );
        }
        assert!(NICKNAMES.len() >= 150, "{} nicknames", NICKNAMES.len());
        // No formal name is itself a nickname, so names normalise in one pass.
        for (_, formal) in NICKNAMES {
            for word in formal.split(' ') {
                assert!(lookup(NICKNAMES, word).is_none(), "{formal}");
            }
        }
        assert!(DIGIT_ZEROS.windows(2).all(|w| w[0] + 10 <= w[1]));
        for &zero in DIGIT_ZEROS {
            for d in 0..10 {
                let c = char::from_u32(zero + d).unwrap();
                assert!(c.is_numeric(), "U+{:04X}", zero + d);
                assert_eq!(digit_value(c), Some(d as u8));
            }
        }
    }

    #[test]
    fn numerals_become_ascii_digits() {
        assert_eq!(n("٠١٢٣٤٥٦٧٨٩", &[Numerals]), "0123456789");
        assert_eq!(n("۱۲۳ main", &[Numerals]), "123 main");
        assert_eq!(n("फ़ोन १२३४", &[Numerals]), "फ़ोन 1234");
        assert_eq!(n("ＡＢ１２３", &[Numerals]), "ＡＢ123");
        assert_eq!(n("๑๒ and ௧௨", &[Numerals]), "12 and 12");
        assert_eq!(n("one 2 three", &[Numerals]), "one 2 three");
        // Superscripts and circled digits are not decimal digits of a script.
        assert_eq!(n("x² ①", &[Numerals]), "x² ①");
    }

    #[test]
    fn symbols_are_removed() {
        assert_eq!(n("O'Brien-Smith, Jr.", &[Symbols]), "OBrienSmith Jr");
        assert_eq!(n("AT&T (US) #1!", &[Symbols]), "ATT US 1");
        assert_eq!(n("Zoë «Ana» 42€", &[Symbols]), "Zoë Ana 42");
        assert_eq!(n("e\u{301}mile", &[Symbols]), "e\u{301}mile");
        assert_eq!(n("محمد، علي", &[Symbols]), "محمد علي");
        assert_eq!(n("...", &[Symbols]), "");
    }

    #[test]
    fn symbols_keep_the_same_whitespace_in_ascii_and_other_text() {
        // The ASCII fast path once dropped a vertical tab that other text kept, so
        // removing symbols twice removed more than once.
        assert_eq!(n("a\u{b}b", &[Symbols]), "a\u{b}b");
        assert_eq!(n("\u{18d1f}\u{b}", &[Symbols]), "\u{b}");
        assert_eq!(
            n("\u{b}\u{c}", &[Symbols]),
            n("é\u{b}\u{c}", &[Symbols])[2..]
        );
        let once = n("\u{18d1f}\u{b}", &[Symbols]);
        assert_eq!(n(&once, &[Symbols]), once);
    }

    #[test]
    fn lowercase_and_whitespace() {
        assert_eq!(n("ÉLODIE McDonald", &[Lowercase]), "élodie mcdonald");
        assert_eq!(n("ΟΔΟΣ", &[Lowercase]), "οδος");
        assert_eq!(
            n("  Ann \t Marie\n Smith  ", &[Whitespace]),
            "Ann Marie Smith"
        );
        assert_eq!(n("\u{a0}a\u{3000}b ", &[Whitespace]), "a b");
        assert_eq!(n("   ", &[Whitespace]), "");
    }

    #[test]
    fn unicode_becomes_ascii() {
        assert_eq!(n("José Müller", &[UnicodeToAscii]), "Jose Muller");
        assert_eq!(n("Ærøskøbing Łódź", &[UnicodeToAscii]), "AEroskobing Lodz");
        assert_eq!(n("Straße", &[UnicodeToAscii]), "Strasse");
        assert_eq!(n("Ελένη", &[UnicodeToAscii]), "Elene");
        assert_eq!(n("北京", &[UnicodeToAscii, Whitespace]), "Bei Jing");
        assert_eq!(n("plain ascii", &[UnicodeToAscii]), "plain ascii");
    }

    #[test]
    fn email_tags_are_dropped() {
        assert_eq!(n("jane+shop@example.com", &[Email]), "jane@example.com");
        assert_eq!(n("jane@example.com", &[Email]), "jane@example.com");
        assert_eq!(n("a+b+c@x.org", &[Email]), "a@x.org");
        assert_eq!(n("not an email", &[Email]), "not an email");
    }

    #[test]
    fn phone_numbers_keep_their_last_ten_digits() {
        let uk = "2079460958";
        assert_eq!(n("+44 20 7946 0958", &[Phone]), uk);
        assert_eq!(n("0044 (20) 7946-0958", &[Phone]), uk);
        assert_eq!(n("+44 (0)20 7946 0958", &[Phone]), uk);
        assert_eq!(n("00 44 (0) 20 7946 0958", &[Phone]), uk);
        assert_eq!(n("tel: +44.20.7946.0958", &[Phone]), uk);
        // the national form, with its trunk prefix, is the same number
        assert_eq!(n("020 7946 0958", &[Phone]), uk);
        assert_eq!(n("+1 (425) 555-0134", &[Phone]), "4255550134");
        assert_eq!(n("425.555.0134", &[Phone]), "4255550134");
        assert_eq!(n("+1 425 555 0134 x123", &[Phone]), "4255550134");
        assert_eq!(n("(555) 010-9999 ext. 12", &[Phone]), "5550109999");
        assert_eq!(n("1-800-FLOWERS", &[Phone]), "1800");
        assert_eq!(n("+٩٧١ ٥٠ ١٢٣ ٤٥٦٧", &[Phone]), "1501234567");
        assert_eq!(n("n/a", &[Phone]), "");
    }

    #[test]
    fn nicknames_become_formal_names() {
        assert_eq!(n("Bob Smith", &[Name]), "Robert Smith");
        assert_eq!(n("bobby", &[Name]), "robert");
        assert_eq!(n("BILL", &[Name]), "WILLIAM");
        assert_eq!(
            n("Liz, Beth and Betty", &[Name]),
            "Elizabeth, Elizabeth and Elizabeth"
        );
        assert_eq!(n("jim-bob", &[Name]), "james-robert");
        assert_eq!(n("Mike O'Neil", &[Name]), "Michael O'Neil");
        assert_eq!(n("kate katie", &[Name]), "katherine katherine");
        assert_eq!(n("Paco Pepe Sasha", &[Name]), "Francisco Jose Alexander");
        assert_eq!(n("Chema", &[Name]), "Jose Maria");
        // Only whole words: Bobcat, Robert and non-ASCII words stay.
        assert_eq!(n("Bobcat Robert Björn", &[Name]), "Bobcat Robert Björn");
    }

    #[test]
    fn address_abbreviations_are_expanded() {
        assert_eq!(n("123 Main St.", &[Address]), "123 Main Street");
        assert_eq!(
            n("45 N. Oak Ave, Apt 4", &[Address]),
            "45 North Oak Avenue, Apartment 4"
        );
        assert_eq!(n("10 DOWNING ST", &[Address]), "10 DOWNING STREET");
        assert_eq!(n("1st st. sw", &[Address]), "1st street southwest");
        assert_eq!(
            n("9 Sunset Blvd./Hwy 1", &[Address]),
            "9 Sunset Boulevard/Highway 1"
        );
        assert_eq!(n("Hauptstr. 5", &[Address]), "Hauptstrasse 5");
        assert_eq!(n("Str. des 17. Juni", &[Address]), "Strasse des 17. Juni");
        assert_eq!(
            n("Avda. de la Constitución", &[Address]),
            "Avenida de la Constitución"
        );
        // Words that only start like an abbreviation stay.
        assert_eq!(n("Stanley Drive", &[Address]), "Stanley Drive");
    }

    #[test]
    fn legal_suffixes_are_removed() {
        let org = |v: &str| n(v, &[Organization]);
        assert_eq!(org("Acme, Inc."), "Acme");
        assert_eq!(org("Acme Incorporated"), "Acme");
        assert_eq!(org("Acme Holdings Pty Ltd"), "Acme Holdings");
        assert_eq!(org("Foo S.A."), "Foo");
        assert_eq!(org("Foo S. A."), "Foo");
        assert_eq!(org("Foo SARL"), "Foo");
        assert_eq!(org("Bar GmbH & Co. KG"), "Bar");
        assert_eq!(org("Smith and Co"), "Smith");
        assert_eq!(org("Procter & Gamble Co."), "Procter & Gamble");
        assert_eq!(org("Coca-Cola Company"), "Coca-Cola");
        assert_eq!(org("Banco Santander, S.A."), "Banco Santander");
        assert_eq!(org("Fiat S.p.A."), "Fiat");
        assert_eq!(org("Nokia Oyj"), "Nokia");
        assert_eq!(org("Volvo AB"), "Volvo");
        assert_eq!(org("Maersk A/S"), "Maersk");
        assert_eq!(org("Shell plc,"), "Shell");
        assert_eq!(org("Toyota KK"), "Toyota");
        // The first word stays, and suffixes only go from the end.
        assert_eq!(org("Company"), "Company");
        assert_eq!(org("Inc Magazine"), "Inc Magazine");
        assert_eq!(org("Ltd Ltd"), "Ltd");
        assert_eq!(org("  "), "  ");
    }

    #[test]
    fn legal_suffixes_after_multibyte_separators() {
        let org = |v: &str| n(v, &[Organization]);
        // A no-break space (two bytes) or an ideographic space (three) before a suffix
        // once cut a token inside the separator and panicked.
        assert_eq!(org("Acme\u{a0}Inc"), "Acme");
        assert_eq!(org("Acme\u{3000}GmbH\u{a0}&\u{2003}Co.\u{a0}KG"), "Acme");
        assert_eq!(org("a\u{a0}b"), "a\u{a0}b");
        assert_eq!(org("\u{a0}Acme,\u{a0}Ltd\u{a0}"), "\u{a0}Acme");
    }

    #[test]
    fn semantic_defaults_chain() {
        let apply =
            |t: SemanticType, v: &str| Normalizer::new(&t.default_normalizations()).apply(v);
        assert_eq!(
            apply(SemanticType::FirstName, "  Bób O'Neil "),
            "robert oneil"
        );
        assert_eq!(
            apply(SemanticType::FullName, "Pepe  Pérez-García"),
            "jose perezgarcia"
        );
        assert_eq!(
            apply(SemanticType::Address, "12 Église St., Apt. 3"),
            "12 eglise street apartment 3"
        );
        assert_eq!(
            apply(SemanticType::Organization, "Société Générale S.A."),
            "societe generale"
        );
        assert_eq!(apply(SemanticType::Organization, "Foo S.à r.l."), "foo");
        assert_eq!(
            apply(SemanticType::Email, " John.Smith@Example.COM "),
            "john.smith@example.com"
        );
        assert_eq!(apply(SemanticType::Phone, "+44 20 7946 0958"), "2079460958");
        assert_eq!(apply(SemanticType::PostalCode, "sw1a-1aa "), "sw1a1aa");
    }

    #[test]
    fn buffers_are_reused_for_any_number_of_steps() {
        let mut out = String::from("stale");
        let mut scratch = String::from("stale");
        let cases: &[(&[Normalization], &str)] = &[
            (&[], " Bob  St. "),
            (&[Lowercase], " bob  st. "),
            (&[Lowercase, Whitespace], "bob st."),
            (&[Lowercase, Whitespace, Name], "robert st."),
            (&[Lowercase, Whitespace, Name, Address], "robert street"),
        ];
        for (steps, expected) in cases {
            let normalizer = Normalizer::new(steps);
            assert_eq!(normalizer.steps(), *steps);
            normalizer.apply_into(" Bob  St. ", &mut out, &mut scratch);
            assert_eq!(out, *expected, "{steps:?}");
            assert_eq!(normalizer.apply(" Bob  St. "), *expected);
        }
    }
}
