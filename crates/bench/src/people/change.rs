//! A batch of changes to generated people, as an incremental source brings them: records
//! of known persons added under new keys (a duplicate with a typo in the given name) and
//! existing records changed (a new modification date, and for some a phone dropped or a
//! typo in the family name). The truth file gains the new records' persons.

use std::collections::HashMap;
use std::path::Path;

use rand::Rng;

use super::{CRM_FILE, TRUTH_FILE, WEB_FILE};
use crate::error::{Error, Result};
use crate::retail::csv::join;
use crate::retail::rng::{rng_for, Stream};
use crate::retail::vary::typo;

/// What a batch changed.
#[derive(Debug, Clone, Default)]
pub struct ChangeSummary {
    /// Records added (both files).
    pub added: usize,
    /// Records changed.
    pub changed: usize,
}

/// Split one CSV line (as the generator writes them: quoted fields, no line breaks).
fn fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut field)),
            _ => field.push(c),
        }
    }
    out.push(field);
    out
}

/// Change `added + changed` records of the people in `dir` (half in each file), batch
/// number `batch` (new keys are `N<batch><n>`).
pub fn change(
    dir: &Path,
    added: usize,
    changed: usize,
    seed: u64,
    batch: u64,
) -> Result<ChangeSummary> {
    let truth_path = dir.join(TRUTH_FILE);
    let truth = std::fs::read_to_string(&truth_path).map_err(|e| Error::io(&truth_path, e))?;
    // record key -> person
    let person: HashMap<String, String> = truth
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f = fields(l);
            Some((f.get(2)?.clone(), f.get(3)?.clone()))
        })
        .collect();
    let mut rng = rng_for(seed, Stream::Selection, 1_000_000 + batch);
    let mut summary = ChangeSummary::default();
    let mut new_truth = String::new();
    for (file, table, stamp_column, family_column, phone_column) in [
        (CRM_FILE, "Contacts", 11, 2, 6),
        (WEB_FILE, "Signups", 10, 2, 5),
    ] {
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        let rows = lines.len().saturating_sub(1);
        if rows == 0 {
            continue;
        }
        for _ in 0..changed / 2 {
            let i = 1 + rng.random_range(0..rows);
            let mut f = fields(&lines[i]);
            if f.len() <= stamp_column {
                continue;
            }
            f[stamp_column] = format!("2026-12-{:02}", rng.random_range(1..29));
            match rng.random_range(0..4) {
                0 => f[phone_column].clear(),
                1 => f[family_column] = typo(&mut rng, &f[family_column]),
                _ => {}
            }
            lines[i] = join(&f);
            summary.changed += 1;
        }
        for n in 0..added / 2 {
            let i = 1 + rng.random_range(0..rows);
            let mut f = fields(&lines[i]);
            let Some(who) = person.get(&f[0]).cloned() else {
                continue;
            };
            let key = format!("N{batch}{}{n:07}", &table[..1]);
            f[0] = key.clone();
            f[1] = typo(&mut rng, &f[1]);
            lines.push(join(&f));
            new_truth.push_str(&join(&[table, "0", &key, &who, "added"]));
            new_truth.push('\n');
            summary.added += 1;
        }
        let mut out = lines.join("\n");
        out.push('\n');
        std::fs::write(&path, out).map_err(|e| Error::io(&path, e))?;
    }
    let mut truth = truth;
    truth.push_str(&new_truth);
    std::fs::write(&truth_path, truth).map_err(|e| Error::io(&truth_path, e))?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_fields_split_as_written() {
        assert_eq!(
            fields(r#"a,"b, c","d ""e""",,f"#),
            vec!["a", "b, c", "d \"e\"", "", "f"]
        );
    }

    #[test]
    fn a_batch_adds_records_of_known_persons_and_changes_others() {
        let dir = tempfile::tempdir().unwrap();
        let s = super::super::generate(
            &super::super::PeopleConfig {
                seed: 3,
                records: 2_000,
            },
            dir.path(),
        )
        .unwrap();
        let before = std::fs::read_to_string(dir.path().join(CRM_FILE)).unwrap();
        let c = change(dir.path(), 100, 60, 3, 1).unwrap();
        assert_eq!(c.added, 100);
        assert_eq!(c.changed, 60);
        let crm = std::fs::read_to_string(dir.path().join(CRM_FILE)).unwrap();
        let web = std::fs::read_to_string(dir.path().join(WEB_FILE)).unwrap();
        assert_eq!(
            crm.lines().count() + web.lines().count(),
            s.crm + s.web + 2 + 100
        );
        assert_ne!(before, crm);
        // every new record has its person in the truth
        let truth = std::fs::read_to_string(dir.path().join(TRUTH_FILE)).unwrap();
        let added: Vec<&str> = truth.lines().filter(|l| l.ends_with(",added")).collect();
        assert_eq!(added.len(), 100);
        assert!(added.iter().all(|l| fields(l)[3].starts_with('P')));
        // every line still has its columns
        assert!(crm.lines().all(|l| fields(l).len() == 12));
    }
}
