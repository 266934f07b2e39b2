//! Names that become tables and columns of the lake: activities, measures, segments.

/// At most this many characters.
pub const MAX_NAME: usize = 64;

fn is_name(s: &str, extra: &[char]) -> bool {
    s.len() <= MAX_NAME
        && s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || extra.contains(&c))
}

/// A name usable as a table and a column: a letter, then letters, digits and `_`.
pub fn is_identifier(s: &str) -> bool {
    is_name(s, &[])
}

/// A name usable as a table (an entity of `model.json`): an identifier that may also hold
/// `-`.
pub fn is_entity_name(s: &str) -> bool {
    is_name(s, &['-'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_start_with_a_letter_and_stay_short() {
        assert!(is_identifier("TotalSpend_90"));
        assert!(!is_identifier("9Lives") && !is_identifier("_x") && !is_identifier(""));
        assert!(!is_identifier("high-value") && is_entity_name("high-value"));
        assert!(!is_identifier("a b") && !is_entity_name("a/b"));
        assert!(!is_identifier(&"x".repeat(65)));
    }
}
