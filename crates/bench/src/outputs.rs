//! Every table an environment published, as sorted rows of text, to compare the outputs
//! of two refreshes of the same inputs (on the local engine and on a cluster).
//!
//! CustomerIds are minted from the time of the run that creates them, so two
//! environments never share them. Each is replaced by the smallest record key of its
//! profile (`Source.Table:key`, from `Unification/AlternateKey`), which names the same
//! profile in both: any difference in how records were grouped shows as a difference.

use std::collections::{BTreeMap, HashMap};

use arrow::util::display::{ArrayFormatter, FormatOptions};
use lakecdp_lake::cdm::Model;
use lakecdp_lake::Lake;

use crate::{Error, Result};

/// The published tables of `lake`: `folder/entity` → its rows, each cell rendered as text
/// (nulls as `∅`) and joined by `|`, CustomerIds made canonical, rows sorted.
pub async fn published_rows(lake: &Lake) -> Result<BTreeMap<String, Vec<String>>> {
    let mut tables: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for_each_row(lake, |table, row| {
        tables
            .entry(table.to_string())
            .or_default()
            .push(row.to_string());
    })
    .await?;
    for rows in tables.values_mut() {
        rows.sort_unstable();
    }
    Ok(tables)
}

/// What [`published_rows`] gives, with each row as a 64-bit hash (sorted): eight bytes a
/// row, for outputs too large to hold as text. Equal tables give equal digests; a
/// difference names the table and how many rows differ, not which.
pub async fn published_digests(lake: &Lake) -> Result<BTreeMap<String, Vec<u64>>> {
    use std::hash::{Hash, Hasher};
    let mut tables: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for_each_row(lake, |table, row| {
        // SipHash with fixed keys: the same row hashes alike in both lakes
        let mut h = std::hash::DefaultHasher::new();
        row.hash(&mut h);
        tables
            .entry(table.to_string())
            .or_default()
            .push(h.finish());
    })
    .await?;
    for rows in tables.values_mut() {
        rows.sort_unstable();
    }
    Ok(tables)
}

/// Call `row(table, text)` for every row of every published table of `lake`, one entity
/// in memory at a time, CustomerIds made canonical.
async fn for_each_row(lake: &Lake, mut row: impl FnMut(&str, &str)) -> Result<()> {
    let bench = |e: &dyn std::fmt::Display| Error::Bench(e.to_string());
    let mut folders: Vec<String> = Vec::new();
    for object in lake.list("").await.map_err(|e| bench(&e))? {
        let Some(relative) = lake.relative(&object.location) else {
            continue;
        };
        if relative.starts_with("_lakecdp/") {
            continue;
        }
        if let Some(folder) = relative.strip_suffix("/model.json") {
            folders.push(folder.to_string());
        }
    }
    folders.sort();
    let mut models = Vec::new();
    for folder in folders {
        let bytes = lake
            .get(&format!("{folder}/model.json"))
            .await
            .map_err(|e| bench(&e))?;
        let model: Model = serde_json::from_slice(&bytes).map_err(|e| bench(&e))?;
        models.push((folder, model));
    }
    // CustomerId → the smallest record key of its profile, from AlternateKey first
    let mut canonical: HashMap<String, String> = HashMap::new();
    for (folder, model) in &models {
        if let (true, Some(e)) = (folder == "Unification", model.entity("AlternateKey")) {
            let names: Vec<String> = e.attributes.iter().map(|a| a.name.clone()).collect();
            let mut failed = None;
            for_rows(lake, folder, e, |cells| {
                if let Err(err) = add_canonical(&mut canonical, &names, cells) {
                    failed.get_or_insert(err);
                }
            })
            .await?;
            if let Some(err) = failed {
                return Err(err);
            }
        }
    }
    for (folder, model) in &models {
        for e in &model.entities {
            let table = format!("{folder}/{}", e.name);
            for_rows(lake, folder, e, |cells| {
                let cells: Vec<&str> = cells
                    .iter()
                    .map(|c| canonical.get(c).map_or(c.as_str(), String::as_str))
                    .collect();
                row(&table, &cells.join("|"));
            })
            .await?;
        }
    }
    Ok(())
}

/// Call `f` with the cells of every row of entity `e` of `folder`, rendered as text.
async fn for_rows(
    lake: &Lake,
    folder: &str,
    e: &lakecdp_lake::cdm::Entity,
    mut f: impl FnMut(&[String]),
) -> Result<()> {
    let options = FormatOptions::default().with_null("∅");
    let batches = lakecdp_lake::partition::read_entity(lake, folder, e)
        .await
        .map_err(|err| Error::Bench(format!("{folder}/{}: {err}", e.name)))?;
    let mut cells = Vec::new();
    for batch in &batches {
        let columns = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        for i in 0..batch.num_rows() {
            cells.clear();
            cells.extend(columns.iter().map(|c| c.value(i).to_string()));
            f(&cells);
        }
    }
    Ok(())
}

/// Take one `AlternateKey` row into the map of CustomerId → smallest record key.
fn add_canonical(
    canonical: &mut HashMap<String, String>,
    names: &[String],
    row: &[String],
) -> Result<()> {
    let at = |n: &str| {
        names
            .iter()
            .position(|c| c == n)
            .ok_or_else(|| Error::Bench(format!("AlternateKey has no column {n}")))
    };
    let (source, table, value, id) = (
        at("DataSourceName")?,
        at("TableName")?,
        at("AlternateValue")?,
        at("CustomerId")?,
    );
    let key = format!("{}.{}:{}", row[source], row[table], row[value]);
    match canonical.get_mut(&row[id]) {
        Some(smallest) if key < *smallest => *smallest = key,
        Some(_) => {}
        None => {
            canonical.insert(row[id].clone(), key);
        }
    }
    Ok(())
}

/// The first difference between two sets of published tables (rows as text, or their
/// digests), described; `None` when they hold the same tables with the same rows.
pub fn first_difference<T: PartialEq + std::fmt::Debug>(
    expected: &BTreeMap<String, Vec<T>>,
    got: &BTreeMap<String, Vec<T>>,
) -> Option<String> {
    let names = |t: &BTreeMap<String, Vec<T>>| t.keys().cloned().collect::<Vec<_>>();
    if names(expected) != names(got) {
        return Some(format!(
            "the tables differ: {:?} against {:?}",
            names(expected),
            names(got)
        ));
    }
    for (table, rows) in expected {
        let other = &got[table];
        if rows == other {
            continue;
        }
        let differing = rows.iter().zip(other).filter(|(a, b)| a != b).count();
        let mut text = format!(
            "{table}: {} rows against {}, {differing} differing in sorted order",
            rows.len(),
            other.len()
        );
        if let Some(at) = rows.iter().zip(other).position(|(a, b)| a != b) {
            text.push_str(&format!(
                "; first at sorted row {at}:\n  {:?}\n  {:?}",
                rows[at], other[at]
            ));
        }
        return Some(text);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables(rows: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        rows.iter()
            .map(|(t, r)| (t.to_string(), r.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    #[test]
    fn differences_name_the_table_and_the_row() {
        let a = tables(&[("A/X", &["1|a", "2|b"]), ("A/Y", &["z"])]);
        assert_eq!(first_difference(&a, &a.clone()), None);
        let b = tables(&[("A/X", &["1|a", "2|c"]), ("A/Y", &["z"])]);
        let d = first_difference(&a, &b).unwrap();
        assert!(
            d.contains("A/X") && d.contains("2|b") && d.contains("2|c"),
            "{d}"
        );
        let c = tables(&[("A/X", &["1|a"]), ("A/Y", &["z"])]);
        assert!(first_difference(&a, &c)
            .unwrap()
            .contains("2 rows against 1"));
        let e = tables(&[("A/X", &["1|a", "2|b"])]);
        assert!(first_difference(&a, &e).unwrap().contains("tables differ"));
    }

    #[test]
    fn customer_ids_become_their_profiles_smallest_key() {
        let names = [
            "DataSourceName",
            "TableName",
            "AlternateValue",
            "CustomerId",
        ]
        .map(String::from)
        .to_vec();
        let row = |s: &str, t: &str, v: &str, id: &str| [s, t, v, id].map(String::from).to_vec();
        let mut ids = HashMap::new();
        for r in [
            row("Crm", "Contacts", "9", "ID1"),
            row("Crm", "Contacts", "10", "ID1"),
            row("Shop", "Customers", "7", "ID2"),
        ] {
            add_canonical(&mut ids, &names, &r).unwrap();
        }
        assert_eq!(ids["ID1"], "Crm.Contacts:10");
        assert_eq!(ids["ID2"], "Shop.Customers:7");
        assert!(add_canonical(&mut ids, &names[..2], &row("a", "b", "c", "d")).is_err());
    }

    #[test]
    fn digest_differences_name_the_table() {
        let a: BTreeMap<String, Vec<u64>> = [("A/X".to_string(), vec![1, 2])].into();
        assert_eq!(first_difference(&a, &a.clone()), None);
        let b: BTreeMap<String, Vec<u64>> = [("A/X".to_string(), vec![1, 3])].into();
        let d = first_difference(&a, &b).unwrap();
        assert!(d.contains("A/X") && d.contains("1 differing"), "{d}");
    }
}
