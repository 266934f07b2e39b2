//! Property-based fuzzing of the parsers that read what users and partners write: the
//! segment condition language and the project file. Whatever the input, they return a
//! value or an error and never panic or overflow the stack.
//!
//! Case counts are bounded so CI stays quick; `scripts/fuzz.sh` runs these targets for
//! minutes with `LAKECDP_FUZZ_CASES`. A failing case found becomes a named regression
//! test below.

use lakecdp_core::segment::parse_condition;
use lakecdp_core::ProjectFile;
use proptest::prelude::*;

/// Cases per target: `LAKECDP_FUZZ_CASES`, or a bounded default.
fn cases() -> u32 {
    std::env::var("LAKECDP_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

/// Pieces of the condition language, so that random text reaches the parser beyond its
/// tokenizer.
const CONDITION_PIECES: &[&str] = &[
    "(",
    ")",
    "((",
    "))",
    " ",
    "and",
    "or",
    "not",
    "in",
    "is",
    "empty",
    "contains",
    "starts_with",
    "before",
    "after",
    "within",
    "=",
    "!=",
    "<>",
    "==",
    "<",
    "<=",
    ">",
    ">=",
    ",",
    "'",
    "\"",
    "''",
    "'FR'",
    "\"x\"\"y\"",
    "1",
    "-2",
    "3.5",
    "1.2.3",
    "true",
    "false",
    "Country",
    "Customer.Age",
    "Orders.Total",
    "a.b.c",
    ".",
    "_x",
    "é",
    "北京",
    "\u{a0}",
    "30 days",
    "2024-01-01",
    "\u{0}",
    "\n",
];

/// Pieces of a project file.
const PROJECT_PIECES: &[&str] = &[
    "[environment]\n",
    "name = \"e\"\n",
    "[environment.storage]\n",
    "kind = \"local\"\n",
    "kind = \"s3\"\n",
    "kind = \"adls\"\n",
    "path = \"lake\"\n",
    "bucket = \"b\"\n",
    "[[sources]]\n",
    "name = \"Crm\"\n",
    "[[sources.tables]]\n",
    "location = \"x/*.csv\"\n",
    "format = \"csv\"\n",
    "format = \"parquet\"\n",
    "primary_key = \"Id\"\n",
    "[unification]\n",
    "[[unification.rules]]\n",
    "[[segments]]\n",
    "condition = \"Age > 3\"\n",
    "[[measures]]\n",
    "[refresh]\n",
    "schedule = \"0 * * * *\"\n",
    "retention_runs = 0\n",
    "retention_runs = -1\n",
    "output_format = \"csv\"\n",
    "account_key = { env = \"X\" }\n",
    "account_key = { file = \"/etc/passwd\" }\n",
    "x = [[[[[[1]]]]]]\n",
    "= \n",
    "\"\n",
    "[\n",
    "]]\n",
    "\u{feff}",
    "é = 1\n",
];

fn assembled(pieces: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(pieces), 0..40).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn conditions_of_arbitrary_text_parse_or_fail_cleanly(text in any::<String>()) {
        if let Err(e) = parse_condition(&text) {
            prop_assert!(!e.message.is_empty());
            prop_assert!(e.position <= text.chars().count());
        }
    }

    #[test]
    fn conditions_of_the_language_parse_or_fail_cleanly(text in assembled(CONDITION_PIECES)) {
        if let Err(e) = parse_condition(&text) {
            prop_assert!(!e.message.is_empty());
            prop_assert!(e.position <= text.chars().count());
        }
    }

    #[test]
    fn project_files_load_or_name_their_errors(text in prop_oneof![
        any::<String>(),
        assembled(PROJECT_PIECES),
    ]) {
        if let Err(errors) = ProjectFile::parse(&text) {
            prop_assert!(!errors.to_string().is_empty());
        }
    }
}

#[test]
fn a_deeply_nested_condition_is_an_error_not_a_stack_overflow() {
    for depth in [1_000, 100_000] {
        let text = format!("{}Age > 3{}", "(".repeat(depth), ")".repeat(depth));
        let e = parse_condition(&text).expect_err("nesting is bounded");
        assert!(e.message.contains("nested"), "{}", e.message);
    }
    // a reasonable depth still parses
    let text = format!("{}Age > 3{}", "(".repeat(20), ")".repeat(20));
    assert!(parse_condition(&text).is_ok());
}

#[test]
fn a_deeply_nested_project_file_is_an_error_not_a_stack_overflow() {
    let text = format!(
        "[environment]\nname = \"e\"\nx = {}1{}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert!(ProjectFile::parse(&text).is_err());
}
