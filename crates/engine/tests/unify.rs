//! Unification end to end on a local lake: sources are ingested, then unified; the
//! published tables are read back.

use lakecdp_match::random::SplitMix;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use lakecdp_core::{ColumnType, SourceSpec, UnificationSpec};
use lakecdp_engine::ingest::{ingest_source, IngestOptions};
use lakecdp_engine::unify::{unify, UnifyMode, UnifyOptions};
use lakecdp_lake::Lake;

mod common;
use common::{csv_source, lake, strings, unified};

/// A source with one CSV table whose columns are all text.
fn source(name: &str, table_name: &str, file: &str, key: &str, columns: &[&str]) -> SourceSpec {
    let typed: Vec<(&str, ColumnType)> = columns.iter().map(|c| (*c, ColumnType::String)).collect();
    csv_source(name, table_name, file, key, &typed)
}

/// `Crm.Contacts` (key `Id`) and `Shop.Customers` (key `Cid`) from the CSV texts given,
/// written to `crm.csv` and `shop.csv` in `dir`; their columns are their headers'.
fn crm_and_shop(dir: &Path, crm: &str, shop: &str) -> Vec<SourceSpec> {
    std::fs::write(dir.join("crm.csv"), crm).unwrap();
    std::fs::write(dir.join("shop.csv"), shop).unwrap();
    fn header(text: &str) -> Vec<&str> {
        text.lines().next().unwrap_or_default().split(',').collect()
    }
    vec![
        source("Crm", "Contacts", "crm.csv", "Id", &header(crm)),
        source("Shop", "Customers", "shop.csv", "Cid", &header(shop)),
    ]
}

async fn ingest(lake: &Lake, dir: &Path, sources: &[SourceSpec]) {
    for s in sources {
        ingest_source(lake, s, dir, &IngestOptions::default())
            .await
            .unwrap();
    }
}

fn spec(text: &str) -> UnificationSpec {
    #[derive(serde::Deserialize)]
    struct Wrapper {
        unification: UnificationSpec,
    }
    toml::from_str::<Wrapper>(text).unwrap().unification
}

/// Profiles as sets of `Table:Key`, from AlternateKey.
async fn profiles(lake: &Lake) -> BTreeMap<String, BTreeSet<String>> {
    let ak = unified(lake, "AlternateKey").await;
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for ((t, k), id) in strings(&ak, "TableName")
        .into_iter()
        .zip(strings(&ak, "AlternateValue"))
        .zip(strings(&ak, "CustomerId"))
    {
        out.entry(id).or_default().insert(format!("{t}:{k}"));
    }
    out
}

fn groups(p: &BTreeMap<String, BTreeSet<String>>) -> BTreeSet<Vec<String>> {
    p.values().map(|s| s.iter().cloned().collect()).collect()
}

/// Profiles as [`groups`] gives them, from `table:key` names.
fn expected_groups(groups: &[&[&str]]) -> BTreeSet<Vec<String>> {
    groups
        .iter()
        .map(|g| g.iter().map(|s| s.to_string()).collect())
        .collect()
}

fn id_of(p: &BTreeMap<String, BTreeSet<String>>, record: &str) -> String {
    p.iter()
        .find(|(_, s)| s.contains(record))
        .map(|(id, _)| id.clone())
        .unwrap()
}

const RULES: &str = r#"
[unification]
max_block = 3

[[unification.tables]]
source = "Crm"
table = "Contacts"
columns = [
  { name = "First", type = "Person.FirstName", rename = "FirstName" },
  { name = "Last", type = "Person.LastName", rename = "LastName" },
  { name = "Email", type = "Identity.Email" },
  { name = "Phone", type = "Identity.Phone" },
  { name = "Modified", type = "Calendar.Date" },
]
dedupe_winner = { most_recent = "Modified" }
dedupe = [{ name = "same email", conditions = [{ column = "Email" }] }]

[[unification.tables]]
source = "Shop"
table = "Customers"
columns = [
  { name = "Name", type = "Person.FullName", rename = "FullName" },
  { name = "email", type = "Identity.Email", rename = "Email" },
  { name = "phone", type = "Identity.Phone", rename = "Phone" },
]
match = [
  { name = "email", with = "Crm.Contacts", conditions = [{ column = "email", with = "Email" }] },
  { name = "phone and first name", with = "Crm.Contacts", conditions = [
      { column = "phone", with = "Phone" },
      { column = "Name", with = "First", normalize = ["lowercase"], precision = "low" },
  ] },
]

[unification.overrides]
bypass = [{ column = "Crm.Contacts.Email", values = ["n/a"] }]
never_match = [{ table = "Crm.Contacts", key = "C6", other_table = "Shop.Customers", other_key = "S4" }]
always_match = [{ table = "Crm.Contacts", key = "C3", other_table = "Shop.Customers", other_key = "S5" }]
aliases = [{ column = "*", value = "pat@home.example", aliases = ["patricia@work.example"] }]
"#;

#[tokio::test]
async fn records_become_profiles_by_rules_in_order_with_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let sources = crm_and_shop(
        dir.path(),
        "Id,First,Last,Email,Phone,Modified\n\
         C1,Robert,Smith,rsmith@x.com,+1 555 0100,2024-01-01\n\
         C2,Bob,Smith,RSmith@X.com,,2024-03-01\n\
         C3,Ann,Lee,ann@y.org,+44 20 7946 0958,2024-01-01\n\
         C4,Test,User,n/a,,2024-01-01\n\
         C5,Other,Person,N/A,,2024-01-01\n\
         C6,Kim,Park,kim@z.net,,2024-01-01\n\
         C7,Dup,One,same@q.io,,2024-01-01\n\
         C8,Dup,Two,same@q.io,,2024-01-01\n\
         C9,Dup,Three,same@q.io,,2024-01-01\n\
         C10,Dup,Four,same@q.io,,2024-01-01\n\
         C11,Pat,Doe,pat@home.example,,2024-01-01\n",
        "Cid,Name,email,phone\n\
         S1,Robert Smith,RSMITH@x.com,\n\
         S2,Ann Lee,,0044 (20) 7946-0958\n\
         S3,Zed Unmatched,zed@w.com,\n\
         S4,Kim Park,kim@z.net,\n\
         S5,Someone Else,else@v.com,\n\
         S6,Patricia Doe,Patricia@Work.example,\n",
    );
    let lake = lake(dir.path());
    ingest(&lake, dir.path(), &sources).await;
    let report = unify(&lake, &sources, &spec(RULES), &UnifyOptions::default())
        .await
        .unwrap();

    let p = profiles(&lake).await;
    let expected = expected_groups(&[
        // dedupe by email (case and spaces normalised), then the shop record by email
        &["Contacts:C1", "Contacts:C2", "Customers:S1"],
        // rule 2 (phone + first name) for a record rule 1 could not match; plus the
        // always-match override
        &["Contacts:C3", "Customers:S2", "Customers:S5"],
        // bypassed placeholder: never joined
        &["Contacts:C4"],
        &["Contacts:C5"],
        // never-match override
        &["Contacts:C6"],
        &["Customers:S4"],
        // four records share one email: more than max_block = 3, so it never matches
        &["Contacts:C7"],
        &["Contacts:C8"],
        &["Contacts:C9"],
        &["Contacts:C10"],
        // include_all: an unmatched record is a profile of its own
        &["Customers:S3"],
        // an alias override: her work mailbox counts as her home one
        &["Contacts:C11", "Customers:S6"],
    ]);
    assert_eq!(groups(&p), expected);
    assert_eq!(report.profiles, 12);
    // every record exactly once in AlternateKey
    let total: usize = p.values().map(BTreeSet::len).sum();
    assert_eq!(total, 17);

    // the report: rule counts and the giant block
    let rule = |kind: &str, name: &str| {
        report
            .rules
            .iter()
            .find(|r| r.kind == kind && r.rule == name)
            .unwrap()
            .clone()
    };
    assert_eq!(rule("dedupe", "same email").pairs, 1);
    assert_eq!(rule("match", "email").pairs, 3); // S1, S4 (refused later) and S6
    assert_eq!(rule("match", "phone and first name").pairs, 1);
    // reported by the dedupe rule and by the match rule that indexes the same emails
    assert_eq!(report.giant.len(), 2, "{:?}", report.giant);
    assert!(report
        .giant
        .iter()
        .all(|g| g.records == 4 && g.value == "same@q.io"));

    // dedupe output: C1 and C2 in one group, C2 (most recent) wins
    let d = unified(&lake, "Deduplication_Crm_Contacts").await;
    let winners: BTreeMap<String, String> = strings(&d, "Id")
        .into_iter()
        .zip(strings(&d, "Deduplication_WinnerId"))
        .collect();
    assert_eq!(winners["C1"], "C2");
    assert_eq!(winners["C2"], "C2");
    assert_eq!(winners["C3"], "C3");

    // merge: importance by table order, the dedupe winner first
    let c = unified(&lake, "Customer").await;
    let ids = strings(&c, "CustomerId");
    let row = ids
        .iter()
        .position(|i| *i == id_of(&p, "Contacts:C1"))
        .unwrap();
    assert_eq!(strings(&c, "FirstName")[row], "Bob");
    assert_eq!(strings(&c, "Email")[row], "RSmith@X.com");
    assert_eq!(strings(&c, "Phone")[row], "+1 555 0100");
    assert_eq!(strings(&c, "FullName")[row], "Robert Smith");
    let row = ids
        .iter()
        .position(|i| *i == id_of(&p, "Customers:S3"))
        .unwrap();
    assert_eq!(strings(&c, "Email")[row], "zed@w.com");
    assert_eq!(strings(&c, "FirstName")[row], "∅");

    // match pairs name both records, the rule and a score; the pair the never-match
    // override refused joined nothing and is not listed
    let pairs = unified(&lake, "ConflationMatchPairs").await;
    assert_eq!(pairs.num_rows(), 3);
    assert!(!strings(&pairs, "KeyB")
        .iter()
        .zip(strings(&pairs, "KeyA"))
        .any(|(b, a)| b == "C6" && a == "S4"));
    assert!(strings(&pairs, "Rule").contains(&"phone and first name".to_string()));
}

#[tokio::test]
async fn customer_ids_stay_stable_over_three_refreshes() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake(dir.path());
    let sources = vec![
        source("Crm", "Contacts", "crm.csv", "Id", &["Id", "Email"]),
        source("Shop", "Customers", "shop.csv", "Cid", &["Cid", "email"]),
    ];
    let rules = spec(
        r#"
[unification]
[[unification.tables]]
source = "Crm"
table = "Contacts"
columns = [{ name = "Email", type = "Identity.Email" }]
dedupe = [{ conditions = [{ column = "Email" }] }]
[[unification.tables]]
source = "Shop"
table = "Customers"
columns = [{ name = "email", type = "Identity.Email", rename = "Email" }]
match = [{ with = "Crm.Contacts", conditions = [{ column = "email", with = "Email" }] }]
"#,
    );
    let run = |crm: &'static str, shop: &'static str| {
        let dir = dir.path().to_path_buf();
        let lake = &lake;
        let sources = &sources;
        let rules = &rules;
        async move {
            std::fs::write(dir.join("crm.csv"), crm).unwrap();
            std::fs::write(dir.join("shop.csv"), shop).unwrap();
            ingest(lake, &dir, sources).await;
            unify(lake, sources, rules, &UnifyOptions::default())
                .await
                .unwrap();
            profiles(lake).await
        }
    };
    // 1. two profiles
    let first = run("Id,Email\nA1,a@x\nA2,b@x\n", "Cid,email\nB1,a@x\n").await;
    let p1 = id_of(&first, "Contacts:A1");
    let p2 = id_of(&first, "Contacts:A2");
    assert_ne!(p1, p2);
    assert_eq!(id_of(&first, "Customers:B1"), p1);

    // 2. a record joins P2, and A2 takes A1's email: the profiles merge, the older id
    // (P1) survives
    let second = run("Id,Email\nA1,a@x\nA2,a@x\n", "Cid,email\nB1,a@x\nB2,a@x\n").await;
    assert_eq!(second.len(), 1);
    assert_eq!(id_of(&second, "Contacts:A2"), p1);
    assert_eq!(id_of(&second, "Customers:B2"), p1);
    let history = unified(&lake, "CustomerIdHistory").await;
    assert_eq!(
        strings(&history, "OldCustomerId"),
        std::slice::from_ref(&p2)
    );
    assert_eq!(
        strings(&history, "NewCustomerId"),
        std::slice::from_ref(&p1)
    );
    assert_eq!(strings(&history, "Reason"), ["merged"]);

    // 3. A2 and B2 move away again: the part with the earliest key (A1) keeps P1, the
    // other gets a new id (never P2 again)
    let third = run("Id,Email\nA1,a@x\nA2,c@x\n", "Cid,email\nB1,a@x\nB2,c@x\n").await;
    assert_eq!(third.len(), 2);
    assert_eq!(id_of(&third, "Contacts:A1"), p1);
    let p3 = id_of(&third, "Contacts:A2");
    assert_eq!(id_of(&third, "Customers:B2"), p3);
    assert!(p3 != p1 && p3 != p2);
    let history = unified(&lake, "CustomerIdHistory").await;
    assert_eq!(
        strings(&history, "Reason"),
        ["merged", "split"],
        "the history keeps earlier runs' rows"
    );
    assert_eq!(strings(&history, "OldCustomerId")[1], p1);
    assert_eq!(strings(&history, "NewCustomerId")[1], p3);
}

#[tokio::test]
async fn rules_may_compare_with_columns_the_other_table_does_not_map() {
    let dir = tempfile::tempdir().unwrap();
    let sources = crm_and_shop(
        dir.path(),
        "Id,Email,Login\nA1,a@x,ann\nA2,b@x,bob\n",
        "Cid,handle\nB1,bob\nB2,cy\n",
    );
    let lake = lake(dir.path());
    ingest(&lake, dir.path(), &sources).await;
    let rules = spec(
        r#"
[unification]
[[unification.tables]]
source = "Crm"
table = "Contacts"
columns = [{ name = "Email", type = "Identity.Email" }]
[[unification.tables]]
source = "Shop"
table = "Customers"
match = [{ with = "Crm.Contacts", conditions = [{ column = "handle", with = "Login" }] }]
"#,
    );
    unify(&lake, &sources, &rules, &UnifyOptions::default())
        .await
        .unwrap();
    let p = profiles(&lake).await;
    assert_eq!(id_of(&p, "Customers:B1"), id_of(&p, "Contacts:A2"));
    assert_eq!(p.len(), 3);
}

#[tokio::test]
async fn the_advanced_winner_mode_picks_each_column_by_its_own_policy() {
    let dir = tempfile::tempdir().unwrap();
    let sources = crm_and_shop(
        dir.path(),
        "Id,Name,Email,Phone,Street,City,Modified\n\
         A1,Ann Lee,ann@x.org,555 0101,1 Main St,Springfield,2024-01-01\n\
         A2,Ann Lee,ann@x.org,,2 Oak Ave,Shelbyville,2024-05-01\n\
         A3,Ann Lee,ann@x.org,555 0303,,,2024-03-01\n\
         A4,Bo Chan,bo@y.org,555 0404,9 Elm Rd,Ogdenville,2024-02-01\n",
        "Cid,phone\nS1,555-0303\nS2,555-0101\n",
    );
    let lake = lake(dir.path());
    ingest(&lake, dir.path(), &sources).await;
    let rules = spec(
        r#"
[unification]
[[unification.tables]]
source = "Crm"
table = "Contacts"
columns = [
  { name = "Name", type = "Person.FullName" },
  { name = "Email", type = "Identity.Email" },
  { name = "Phone", type = "Identity.Phone" },
  { name = "Street", type = "Location.Address" },
  { name = "City", type = "Location.City" },
  { name = "Modified", type = "Calendar.Date" },
]
dedupe = [{ conditions = [{ column = "Email" }] }]
dedupe_winner = { most_recent = "Modified" }
dedupe_columns = [
  { name = "Phone", policy = { most_recent = "Modified" } },
  { name = "Street", policy = { least_recent = "Modified" }, group = ["City"] },
]
[[unification.tables]]
source = "Shop"
table = "Customers"
match = [{ with = "Crm.Contacts", conditions = [{ column = "phone", with = "Phone", normalize = ["phone"] }] }]
"#,
    );
    unify(&lake, &sources, &rules, &UnifyOptions::default())
        .await
        .unwrap();

    // A2 is the most recent record and wins the group
    let d = unified(&lake, "Deduplication_Crm_Contacts").await;
    assert_eq!(
        strings(&d, "Deduplication_WinnerId"),
        ["A2", "A2", "A2", "A4"]
    );
    let p = profiles(&lake).await;
    // the deduplicated record carries the latest non-empty phone (A3's), so the shop
    // record with that phone matches; A1's older phone is not the group's any more
    assert_eq!(id_of(&p, "Customers:S1"), id_of(&p, "Contacts:A2"));
    assert_ne!(id_of(&p, "Customers:S2"), id_of(&p, "Contacts:A2"));
    assert_eq!(p.len(), 3);

    let c = unified(&lake, "Customer").await;
    let row = strings(&c, "CustomerId")
        .iter()
        .position(|i| *i == id_of(&p, "Contacts:A1"))
        .unwrap();
    assert_eq!(strings(&c, "Phone")[row], "555 0303");
    // the street of the oldest record, and its city with it
    assert_eq!(strings(&c, "Street")[row], "1 Main St");
    assert_eq!(strings(&c, "City")[row], "Springfield");
    // the rest from the winner
    assert_eq!(strings(&c, "Modified")[row], "2024-05-01");
    // a group of one keeps its own values
    let row = strings(&c, "CustomerId")
        .iter()
        .position(|i| *i == id_of(&p, "Contacts:A4"))
        .unwrap();
    assert_eq!(strings(&c, "Street")[row], "9 Elm Rd");
}

/// A one-character typo: a letter swapped with its neighbour, dropped or doubled.
fn typo(rng: &mut SplitMix, s: &str) -> String {
    let mut c: Vec<char> = s.chars().collect();
    if c.len() < 3 {
        return s.to_string();
    }
    let i = 1 + rng.below(c.len() - 2);
    match rng.below(3) {
        0 => c.swap(i, i + 1),
        1 => {
            c.remove(i);
        }
        _ => c.insert(i, c[i]),
    }
    c.into_iter().collect()
}

/// Noisy records of 300 people (a header and rows) for the CRM and the shop, with
/// shared phones inside families, typos, missing and re-cased values.
fn noisy_people() -> (String, Vec<String>, String, Vec<String>) {
    const FIRST: &[&str] = &[
        "Anna", "Robert", "Maria", "James", "Linda", "Omar", "Chen", "Sofia", "Lukas", "Amara",
        "Noah", "Ines",
    ];
    const LAST: &[&str] = &[
        "Smith", "Garcia", "Novak", "Okafor", "Larsen", "Moreau", "Tanaka", "Rossi",
    ];
    let mut rng = SplitMix(7);
    let (mut crm, mut shop) = (Vec::new(), Vec::new());
    let (mut c, mut s) = (0, 0);
    for person in 0..300 {
        let first = FIRST[rng.below(FIRST.len())];
        let last = LAST[rng.below(LAST.len())];
        // families of three share a phone
        let phone = format!("+1 555 {:04}", person / 3);
        let other = format!("+1 666 {:04}", person);
        let email = format!(
            "{}.{}{}@mail.example",
            first.to_lowercase(),
            last.to_lowercase(),
            person
        );
        for _ in 0..1 + rng.below(3) {
            c += 1;
            let first = if rng.below(4) == 0 {
                typo(&mut rng, first)
            } else {
                first.to_string()
            };
            let email = match rng.below(5) {
                0 => String::new(),
                1 => email.to_uppercase(),
                _ => email.clone(),
            };
            // some records hold the person's number as the other phone, and theirs
            // is the main one, so the `with` rule meets them only one way round
            let (main, alt) = match rng.below(4) {
                0 => (other.clone(), phone.clone()),
                1 => (String::new(), other.clone()),
                _ => (phone.clone(), other.clone()),
            };
            crm.push(format!("C{c:04},{first},{last},{email},{main},{alt}"));
        }
        for _ in 0..rng.below(3) {
            s += 1;
            let name = if rng.below(3) == 0 {
                typo(&mut rng, first)
            } else {
                first.to_string()
            };
            let email = if rng.below(3) == 0 {
                String::new()
            } else {
                email.clone()
            };
            let phone = if rng.below(2) == 0 {
                phone.clone()
            } else {
                String::new()
            };
            shop.push(format!("S{s:04},{name} {last},{email},{phone}"));
        }
    }
    (
        "Id,First,Last,Email,Phone,AltPhone".into(),
        crm,
        "Cid,Name,email,phone".into(),
        shop,
    )
}

/// The sources of [`noisy_people`]: `crm.csv` and `shop.csv`.
fn noisy_sources() -> Vec<SourceSpec> {
    vec![
        source(
            "Crm",
            "Contacts",
            "crm.csv",
            "Id",
            &["Id", "First", "Last", "Email", "Phone", "AltPhone"],
        ),
        source(
            "Shop",
            "Customers",
            "shop.csv",
            "Cid",
            &["Cid", "Name", "email", "phone"],
        ),
    ]
}

/// Write the rows of [`noisy_people`] (header first) as the files of [`noisy_sources`].
fn write_noisy(
    dir: &Path,
    (crm_header, crm): (&str, &[String]),
    (shop_header, shop): (&str, &[String]),
) {
    std::fs::write(
        dir.join("crm.csv"),
        format!("{crm_header}\n{}\n", crm.join("\n")),
    )
    .unwrap();
    std::fs::write(
        dir.join("shop.csv"),
        format!("{shop_header}\n{}\n", shop.join("\n")),
    )
    .unwrap();
}

const NOISY_RULES: &str = r#"
[unification]
[[unification.tables]]
source = "Crm"
table = "Contacts"
columns = [
  { name = "First", type = "Person.FirstName", rename = "FirstName" },
  { name = "Last", type = "Person.LastName", rename = "LastName" },
  { name = "Email", type = "Identity.Email" },
  { name = "Phone", type = "Identity.Phone" },
]
dedupe = [
  { name = "email", conditions = [{ column = "Email" }] },
  { name = "phone either way", conditions = [{ column = "Phone", with = "AltPhone" }] },
  { name = "name and phone", conditions = [
      { column = "First", precision = "medium" }, { column = "Last" }, { column = "Phone" },
  ] },
]

[[unification.tables]]
source = "Shop"
table = "Customers"
columns = [
  { name = "Name", type = "Person.FullName", rename = "FullName" },
  { name = "email", type = "Identity.Email", rename = "Email" },
  { name = "phone", type = "Identity.Phone", rename = "Phone" },
]
dedupe = [{ conditions = [{ column = "Name", precision = "high" }, { column = "phone" }] }]
match = [
  { name = "email", with = "Crm.Contacts", conditions = [{ column = "email", with = "Email" }] },
  { name = "phone and first name", with = "Crm.Contacts", conditions = [
      { column = "phone", with = "Phone" },
      { column = "Name", with = "First", normalize = ["lowercase"], precision = "low" },
  ] },
]

[unification.overrides]
never_match = [{ table = "Crm.Contacts", key = "C0005", other_table = "Crm.Contacts", other_key = "C0006" }]
"#;

/// What a unification published, independent of row order: the profiles (as sets of
/// records), each profile's merged values, and every record's duplicate group and
/// winner.
async fn published(lake: &Lake) -> (BTreeSet<Vec<String>>, Vec<String>, Vec<String>) {
    let p = profiles(lake).await;
    let customer = unified(lake, "Customer").await;
    let ids = strings(&customer, "CustomerId");
    let columns: Vec<Vec<String>> = ["FirstName", "LastName", "FullName", "Email", "Phone"]
        .iter()
        .map(|c| strings(&customer, c))
        .collect();
    let mut rows: Vec<String> = (0..ids.len())
        .map(|i| {
            let records = p[&ids[i]].iter().cloned().collect::<Vec<_>>().join(" ");
            let values: Vec<&str> = columns.iter().map(|c| c[i].as_str()).collect();
            format!("{records} => {}", values.join("|"))
        })
        .collect();
    rows.sort();
    let mut dedupe = Vec::new();
    for (table, key) in [
        ("Deduplication_Crm_Contacts", "Id"),
        ("Deduplication_Shop_Customers", "Cid"),
    ] {
        let d = unified(lake, table).await;
        for (((k, g), w), r) in strings(&d, key)
            .into_iter()
            .zip(strings(&d, "Deduplication_GroupId"))
            .zip(strings(&d, "Deduplication_WinnerId"))
            .zip(strings(&d, "Deduplication_Rule"))
        {
            dedupe.push(format!("{table} {k} {g} {w} {r}"));
        }
    }
    dedupe.sort();
    (groups(&p), rows, dedupe)
}

/// The number part of a CustomerId (after the run's time stamp), per profile.
fn id_numbers(p: &BTreeMap<String, BTreeSet<String>>) -> BTreeMap<Vec<String>, String> {
    p.iter()
        .map(|(id, records)| {
            (
                records.iter().cloned().collect(),
                id[id.len() - 8..].to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_same_records_in_any_order_give_the_same_profiles_and_ids() {
    let (crm_header, crm, shop_header, shop) = noisy_people();
    let sources = noisy_sources();
    let rules = spec(NOISY_RULES);
    let write = |dir: &Path, seed: u64| {
        let (mut crm, mut shop) = (crm.clone(), shop.clone());
        if seed > 0 {
            let mut rng = SplitMix(seed);
            rng.shuffle(&mut crm);
            rng.shuffle(&mut shop);
        }
        write_noisy(dir, (&crm_header, &crm), (&shop_header, &shop));
    };

    // three orders, each in a lake of its own: the same profiles, values, groups,
    // winners and id numbers
    let mut first = None;
    for seed in [0, 11, 23] {
        let dir = tempfile::tempdir().unwrap();
        let lake = lake(dir.path());
        write(dir.path(), seed);
        ingest(&lake, dir.path(), &sources).await;
        let report = unify(&lake, &sources, &rules, &UnifyOptions::default())
            .await
            .unwrap();
        let dedupe: u64 = report
            .rules
            .iter()
            .filter(|r| r.rule == "phone either way")
            .map(|r| r.pairs)
            .sum();
        assert!(dedupe > 0, "the `with` rule joins records");
        let outputs = published(&lake).await;
        let numbers = id_numbers(&profiles(&lake).await);
        assert!(
            outputs.0.iter().any(|g| g.len() > 3),
            "profiles join records"
        );
        match &first {
            None => first = Some((outputs, numbers, report.profiles)),
            Some((o, n, profiles)) => {
                assert_eq!(report.profiles, *profiles, "order {seed}: profile count");
                assert_eq!(outputs.0, o.0, "order {seed}: profiles");
                assert_eq!(outputs.1, o.1, "order {seed}: merged values");
                assert_eq!(outputs.2, o.2, "order {seed}: duplicate groups and winners");
                assert_eq!(
                    &numbers, n,
                    "order {seed}: new CustomerIds are numbered alike"
                );
            }
        }
    }

    // one lake refreshed with the records in other orders: no id moves
    let dir = tempfile::tempdir().unwrap();
    let lake = lake(dir.path());
    let mut before = None;
    for seed in [0, 5, 9] {
        write(dir.path(), seed);
        ingest(&lake, dir.path(), &sources).await;
        let report = unify(&lake, &sources, &rules, &UnifyOptions::default())
            .await
            .unwrap();
        let now = profiles(&lake).await;
        if let Some(before) = &before {
            assert!(
                report.id_changes.is_empty(),
                "order {seed}: {:?}",
                report.id_changes
            );
            assert_eq!(
                &now, before,
                "order {seed}: every record keeps its CustomerId"
            );
        }
        before = Some(now);
    }
}

#[tokio::test]
async fn a_dedupe_rule_comparing_two_columns_holds_either_way_round() {
    let dir = tempfile::tempdir().unwrap();
    // A1's alternate phone is A2's main one (the later record's column against the
    // earlier's other column); B1 and B2 the other way round
    std::fs::write(
        dir.path().join("crm.csv"),
        "Id,Phone,AltPhone\nA1,111,222\nA2,222,333\nB1,444,555\nB2,666,444\nC1,777,\n",
    )
    .unwrap();
    let lake = lake(dir.path());
    let sources = vec![source(
        "Crm",
        "Contacts",
        "crm.csv",
        "Id",
        &["Id", "Phone", "AltPhone"],
    )];
    ingest(&lake, dir.path(), &sources).await;
    let rules = spec(
        r#"
[unification]
[[unification.tables]]
source = "Crm"
table = "Contacts"
columns = [{ name = "Phone", type = "Identity.Phone" }]
dedupe = [{ conditions = [{ column = "Phone", with = "AltPhone" }] }]
"#,
    );
    unify(&lake, &sources, &rules, &UnifyOptions::default())
        .await
        .unwrap();
    let expected = expected_groups(&[
        &["Contacts:A1", "Contacts:A2"],
        &["Contacts:B1", "Contacts:B2"],
        &["Contacts:C1"],
    ]);
    assert_eq!(groups(&profiles(&lake).await), expected);
}

/// A model whose parameters are all given and fixed, so nothing is trained: every
/// weight below is known. Names: exact +6.4, one typo +2.3, far -1.2, else -5.5 bits;
/// dates: same day +9.8, else -5.6; emails: exact +13; cities: exact +3, else -4.1;
/// prior -6.6; threshold 0.95 (+4.25).
const FIXED_MODEL: &str = r#"
[unification]
[[unification.tables]]
source = "Crm"
table = "Contacts"
columns = [
  { name = "First", type = "Person.FirstName", rename = "FirstName" },
  { name = "Last", type = "Person.LastName", rename = "LastName" },
  { name = "Birth", type = "Person.BirthDate", rename = "BirthDate" },
  { name = "Email", type = "Identity.Email" },
  { name = "City", type = "Location.City" },
]
dedupe = [{ name = "same email", conditions = [{ column = "Email" }] }]
dedupe_model = { block = [["Last"], ["Birth"], ["Email"]], prior = 0.01, fixed_prior = true, compare = [
  { column = "First", term_frequency = false, m = [0.85, 0.1, 0.03, 0.02], u = [0.01, 0.02, 0.07, 0.9], fixed = true },
  { column = "Last", term_frequency = false, m = [0.85, 0.1, 0.03, 0.02], u = [0.01, 0.02, 0.07, 0.9], fixed = true },
  { column = "Birth", m = [0.9, 0.04, 0.02, 0.02, 0.02], u = [0.001, 0.004, 0.001, 0.01, 0.984], fixed = true },
  { column = "Email", m = [0.8, 0.1, 0.05, 0.05], u = [0.0001, 0.001, 0.01, 0.9889], fixed = true },
  { column = "City", term_frequency = false, m = [0.8, 0.1, 0.05, 0.05], u = [0.1, 0.01, 0.01, 0.88], fixed = true },
] }

[[unification.tables]]
source = "Shop"
table = "Customers"
columns = [
  { name = "Given", type = "Person.FirstName", rename = "FirstName" },
  { name = "Family", type = "Person.LastName", rename = "LastName" },
  { name = "Born", type = "Person.BirthDate", rename = "BirthDate" },
]
match_model = [{ with = "Crm.Contacts", block = [["Family"], ["Born"]], prior = 0.01, fixed_prior = true, compare = [
  { column = "Given", with = "First", term_frequency = false, m = [0.85, 0.1, 0.03, 0.02], u = [0.01, 0.02, 0.07, 0.9], fixed = true },
  { column = "Family", with = "Last", term_frequency = false, m = [0.85, 0.1, 0.03, 0.02], u = [0.01, 0.02, 0.07, 0.9], fixed = true },
  { column = "Born", with = "Birth", m = [0.9, 0.04, 0.02, 0.02, 0.02], u = [0.001, 0.004, 0.001, 0.01, 0.984], fixed = true },
] }]

[unification.overrides]
never_match = [{ table = "Crm.Contacts", key = "C1", other_table = "Crm.Contacts", other_key = "C5" }]
"#;

/// The records of the fixed-model tests, ingested: a lake, its folder and the sources.
async fn fixed_model_records() -> (tempfile::TempDir, Lake, Vec<SourceSpec>) {
    let dir = tempfile::tempdir().unwrap();
    let sources = crm_and_shop(
        dir.path(),
        "Id,First,Last,Birth,Email,City\n\
         C1,Anna,Smith,1985-03-12,anna@x.com,Lyon\n\
         C2,Anna,Smiths,12.03.1985,,Lyon\n\
         C3,Robert,Jones,1970-01-01,robert@y.com,Paris\n\
         C4,Rob,Jonas,1971-05-05,robert@y.com,Nice\n\
         C5,Anna,Smith,1985-03-12,anna@x.com,Lyon\n\
         C6,Maria,Garcia,1990-07-07,maria@z.com,Lyon\n\
         C7,Mario,Garcia,1962-02-02,,Madrid\n",
        "Cid,Given,Family,Born\nS1,Anna,Smith,1985-03-12\nS2,Maria,Garcia,1990-07-07\nS3,Maria,Lopez,\n",
    );
    let lake = lake(dir.path());
    ingest(&lake, dir.path(), &sources).await;
    (dir, lake, sources)
}

#[tokio::test]
async fn a_match_model_beside_the_rules_with_never_match_winning() {
    let (_dir, lake, sources) = fixed_model_records().await;
    let report = unify(
        &lake,
        &sources,
        &spec(FIXED_MODEL),
        &UnifyOptions::default(),
    )
    .await
    .unwrap();
    let expected = expected_groups(&[
        // C2: the model alone (a typo in the last name, no email, the birth date in
        // another layout); S1: the match model
        &["Contacts:C1", "Contacts:C2", "Customers:S1"],
        // the email rule, whatever the model says
        &["Contacts:C3", "Contacts:C4"],
        // the same person as C1 by every column and by the rule, but never-match wins
        &["Contacts:C5"],
        &["Contacts:C6", "Customers:S2"],
        // a similar first name and the same last name are not enough
        &["Contacts:C7"],
        &["Customers:S3"],
    ]);
    assert_eq!(groups(&profiles(&lake).await), expected);

    // the dedupe table names what joined each record
    let d = unified(&lake, "Deduplication_Crm_Contacts").await;
    let rule: BTreeMap<String, String> = strings(&d, "Id")
        .into_iter()
        .zip(strings(&d, "Deduplication_Rule"))
        .collect();
    assert_eq!(rule["C2"], "model");
    assert_eq!(rule["C4"], "same email");
    assert_eq!(rule["C7"], "∅");
    let pairs = unified(&lake, "ConflationMatchPairs").await;
    let keys: Vec<(String, String, String)> = strings(&pairs, "KeyA")
        .into_iter()
        .zip(strings(&pairs, "KeyB"))
        .zip(strings(&pairs, "Rule"))
        .map(|((a, b), r)| (a, b, r))
        .collect();
    assert!(
        keys.contains(&("S1".into(), "C1".into(), "model".into())),
        "{keys:?}"
    );
    assert!(
        keys.contains(&("S2".into(), "C6".into(), "model".into())),
        "{keys:?}"
    );
    let score: Vec<String> = strings(&pairs, "Score");
    assert!(
        score.iter().all(|s| s.parse::<f64>().unwrap() >= 0.95),
        "{score:?}"
    );

    // two models ran, nothing was trained (every parameter is fixed), and the report
    // says what each blocking key added
    assert_eq!(report.models.len(), 2);
    let dedupe = &report.models[0];
    assert_eq!(dedupe.blocking.len(), 3);
    assert_eq!(
        dedupe.blocking.iter().map(|b| b.comparisons).sum::<u64>(),
        dedupe.candidates
    );
    // Smith x2 (C1-C5) and Garcia (C6-C7) share a last name; C1/C2/C5 a birth date
    // (C1-C5 already counted); C1-C5 an email (counted), C3-C4 an email
    assert_eq!(
        dedupe
            .blocking
            .iter()
            .map(|b| b.comparisons)
            .collect::<Vec<_>>(),
        [2, 2, 1]
    );
    assert!(dedupe.thresholds.windows(2).all(|w| w[0].1 >= w[1].1));
}

/// A model comparing a first-name and a last-name column reads a pair's names crossed
/// when they agree better that way, in the run and in `explain`: a record written
/// family name first joins its person; one crossed name alone is not enough.
#[tokio::test]
async fn a_model_reads_names_written_in_the_other_order_crossed() {
    let dir = tempfile::tempdir().unwrap();
    let sources = crm_and_shop(
        dir.path(),
        "Id,First,Last,Birth,Email,City\n\
         C1,Anna,Smith,1985-03-12,anna@x.com,Lyon\n\
         C2,Smith,Anna,1985-03-12,,\n\
         C3,Robert,Jones,1970-01-01,robert@y.com,Paris\n",
        "Cid,Given,Family,Born\n\
         S1,Smith,Anna,1985-03-12\n\
         S2,Robert,Jones,1970-01-01\n\
         S3,Jones,Maria,1970-01-01\n",
    );
    let lake = lake(dir.path());
    ingest(&lake, dir.path(), &sources).await;
    let unification = spec(FIXED_MODEL);
    unify(&lake, &sources, &unification, &UnifyOptions::default())
        .await
        .unwrap();
    let expected = expected_groups(&[
        // crossed, both names exact: +6.4 +6.4 with the birth date +9.8 (the email
        // and the city are missing), against -5.5 -5.5 read straight
        &["Contacts:C1", "Contacts:C2", "Customers:S1"],
        &["Contacts:C3", "Customers:S2"],
        // one crossed name exact, the other far: read straight, -6.6 -5.5 -5.5 +9.8
        // (crossed it would still weigh only 4.1, under the threshold's 4.25)
        &["Customers:S3"],
    ]);
    assert_eq!(groups(&profiles(&lake).await), expected);

    // explained as the run weighed it: the crossed names are exact agreements
    use lakecdp_engine::unify::model;
    let shop = &unification.tables[1];
    let crm = &unification.tables[0];
    let declared = &shop.match_models[0];
    let name = model::model_name_of(&shop.qualified(), &crm.qualified());
    let names = model::crossed_names(declared, shop, crm);
    let stored = model::load(&lake, &name, declared, names.as_ref())
        .await
        .unwrap()
        .expect("the model is stored");
    let mut explaining = model::Explaining::new(&unification);
    let s1 = |c: &str| {
        [
            ("Given", "Smith"),
            ("Family", "Anna"),
            ("Born", "1985-03-12"),
        ]
        .iter()
        .find(|(k, _)| *k == c)
        .map(|(_, v)| v.to_string())
    };
    let c1 = |c: &str| {
        [
            ("First", "Anna"),
            ("Last", "Smith"),
            ("Birth", "1985-03-12"),
        ]
        .iter()
        .find(|(k, _)| *k == c)
        .map(|(_, v)| v.to_string())
    };
    let rows = model::explain_pair(
        &lake,
        &sources,
        &mut explaining,
        declared,
        &stored,
        shop,
        crm,
        (&s1, &c1),
    )
    .await
    .unwrap();
    let level = |column: &str| {
        rows.iter()
            .find(|r| r.column.as_deref() == Some(column))
            .map(|r| r.level_label)
            .unwrap()
    };
    assert_eq!(
        (level("Given"), level("Family")),
        ("exact, crossed", "exact, crossed"),
        "{rows:?}"
    );
    let weight: f64 = rows.iter().map(|r| r.weight).sum();
    assert!((weight - 16.0).abs() < 0.1, "{weight}: {rows:?}");
}

/// A dedupe model reads a crossed pair the same whichever record comes first: `explain`
/// of (x, y) and of (y, x) give the same levels and weights, though the first and last
/// names weigh differently.
#[tokio::test]
async fn a_crossed_pair_of_one_table_weighs_the_same_either_way_round() {
    let dir = tempfile::tempdir().unwrap();
    let sources = crm_and_shop(
        dir.path(),
        "Id,First,Last,Birth,Email,City\n\
         C1,Nguyen,Thi Bao,1985-03-12,,\n\
         C2,Thi Bau,Nguyen,1985-03-12,,\n",
        "Cid,Given,Family,Born\nS1,Anna,Smith,1985-03-12\n",
    );
    let lake = lake(dir.path());
    ingest(&lake, dir.path(), &sources).await;
    // last names weigh otherwise than first names
    let text = FIXED_MODEL.replacen(
        "{ column = \"Last\", term_frequency = false, m = [0.85, 0.1, 0.03, 0.02]",
        "{ column = \"Last\", term_frequency = false, m = [0.6, 0.3, 0.05, 0.05]",
        1,
    );
    assert_ne!(text, FIXED_MODEL);
    let unification = spec(&text);
    let report = unify(&lake, &sources, &unification, &UnifyOptions::default())
        .await
        .unwrap();
    // trained with the declared prior held, and stored valid, with room for the
    // related pairs' share
    assert!(report.models[0].trained);
    use lakecdp_engine::unify::model;
    let crm = &unification.tables[0];
    let declared = crm.dedupe_model.as_ref().unwrap();
    let name = model::model_name_of(&crm.qualified(), &crm.qualified());
    let names = model::crossed_names(declared, crm, crm);
    assert!(names.is_some());
    let stored = model::load(&lake, &name, declared, names.as_ref())
        .await
        .unwrap()
        .expect("the model is stored");
    let record = |first: &'static str, last: &'static str| {
        move |c: &str| match c {
            "First" => Some(first.to_string()),
            "Last" => Some(last.to_string()),
            "Birth" => Some("1985-03-12".to_string()),
            _ => None,
        }
    };
    let (x, y) = (record("Nguyen", "Thi Bao"), record("Thi Bau", "Nguyen"));
    let mut explaining = model::Explaining::new(&unification);
    let mut seen = Vec::new();
    for (a, b) in [(&x, &y), (&y, &x)] {
        let rows = model::explain_pair(
            &lake,
            &sources,
            &mut explaining,
            declared,
            &stored,
            crm,
            crm,
            (a as &model::RawValues<'_>, b as &model::RawValues<'_>),
        )
        .await
        .unwrap();
        let levels: Vec<(Option<String>, &str, String)> = rows
            .iter()
            .map(|r| (r.column.clone(), r.level_label, format!("{:.6}", r.weight)))
            .collect();
        seen.push(levels);
    }
    assert_eq!(seen[0], seen[1]);
    // one name exact, the other near, both crossed
    let labels: Vec<&str> = seen[0].iter().map(|r| r.1).collect();
    assert!(labels.contains(&"exact, crossed"), "{labels:?}");
    assert!(
        labels
            .iter()
            .any(|l| l.starts_with("jaro-winkler") && l.ends_with("crossed")),
        "{labels:?}"
    );
}

/// Noisy records of `persons` people with the truth: (header, rows, person of each row).
/// Each person has one to three records; each copy may have a typo in a name, a birth
/// date one digit off, no email, no city, a postal code typo.
fn people_with_truth(persons: usize, seed: u64) -> (String, Vec<String>, Vec<usize>) {
    people_and_households(persons, seed, 0)
}

/// As [`people_with_truth`], with one person in `household_in` (never when 0) living
/// with the previous one: the same family name, city and postal code, another given
/// name, birth date and email.
fn people_and_households(
    persons: usize,
    seed: u64,
    household_in: usize,
) -> (String, Vec<String>, Vec<usize>) {
    const FIRST: &[&str] = &[
        "Anna", "Robert", "Maria", "James", "Linda", "Omar", "Chen", "Sofia", "Lukas", "Amara",
        "Noah", "Ines", "Mateo", "Yuki", "Fatima", "Ivan", "Leila", "Pedro", "Hana", "Tomas",
        "Elena", "Kofi", "Nadia", "Arjun", "Greta", "Samir", "Olga", "Diego", "Mei", "Jonas",
    ];
    const LAST: &[&str] = &[
        "Smith", "Garcia", "Novak", "Okafor", "Larsen", "Moreau", "Tanaka", "Rossi", "Kowalski",
        "Haddad", "Nguyen", "Schmidt", "Silva", "Ivanova", "Khan", "Murphy", "Dubois", "Jensen",
        "Popescu", "Yilmaz", "Costa", "Fischer", "Sato", "Reyes", "Bakker",
    ];
    const CITY: &[&str] = &[
        "Lyon", "Porto", "Brno", "Accra", "Oslo", "Kyoto", "Turin", "Riga",
    ];
    let mut rng = SplitMix(seed);
    let (mut rows, mut truth) = (Vec::new(), Vec::new());
    let mut home: Option<(&str, &str, String)> = None;
    for person in 0..persons {
        let first = FIRST[rng.below(FIRST.len())];
        let mut last = LAST[rng.below(LAST.len())];
        let birth = format!(
            "19{:02}-{:02}-{:02}",
            40 + rng.below(60),
            1 + rng.below(12),
            1 + rng.below(28)
        );
        let email = format!(
            "{}.{}{}@mail.example",
            first.to_lowercase(),
            last.to_lowercase(),
            person
        );
        let mut city = CITY[rng.below(CITY.len())];
        let mut zip = format!("{:05}", rng.below(100_000));
        match home.clone() {
            Some((l, c, z)) if household_in > 0 && rng.below(household_in) == 0 => {
                (last, city, zip) = (l, c, z);
            }
            _ => {}
        }
        home = Some((last, city, zip.clone()));
        for _ in 0..1 + rng.below(3) {
            let first = if rng.below(4) == 0 {
                typo(&mut rng, first)
            } else {
                first.to_string()
            };
            let last = if rng.below(7) == 0 {
                typo(&mut rng, last)
            } else {
                last.to_string()
            };
            let birth = if rng.below(10) == 0 {
                // one digit of the day off
                let mut b = birth.clone().into_bytes();
                b[9] = b'0' + ((b[9] - b'0' + 1) % 10);
                String::from_utf8(b).unwrap()
            } else {
                birth.clone()
            };
            let email = if rng.below(10) < 3 {
                String::new()
            } else {
                email.clone()
            };
            let city = if rng.below(5) == 0 { "" } else { city };
            let zip = if rng.below(10) == 0 {
                typo(&mut rng, &zip)
            } else {
                zip.clone()
            };
            rows.push(format!("{first},{last},{birth},{email},{city},{zip}"));
            truth.push(person);
        }
    }
    ("First,Last,Birth,Email,City,Zip".into(), rows, truth)
}

/// Pairwise precision and recall of profiles (sets of `Contacts:<key>`) against the truth
/// (`R<n>` is row n, of person truth[n]).
fn pairwise(groups: &BTreeSet<Vec<String>>, truth: &[usize]) -> (f64, f64) {
    let row = |r: &str| r.trim_start_matches("Contacts:R").parse::<usize>().unwrap();
    let (mut found, mut right) = (0u64, 0u64);
    for g in groups {
        for i in 0..g.len() {
            for j in i + 1..g.len() {
                found += 1;
                if truth[row(&g[i])] == truth[row(&g[j])] {
                    right += 1;
                }
            }
        }
    }
    let mut per_person: BTreeMap<usize, u64> = BTreeMap::new();
    for p in truth {
        *per_person.entry(*p).or_default() += 1;
    }
    let expected: u64 = per_person.values().map(|n| n * (n - 1) / 2).sum();
    (
        right as f64 / found.max(1) as f64,
        right as f64 / expected.max(1) as f64,
    )
}

const TRAINED_MODEL: &str = r#"
[unification]
[[unification.tables]]
source = "Crm"
table = "Contacts"
columns = [
  { name = "First", type = "Person.FirstName" },
  { name = "Last", type = "Person.LastName" },
  { name = "Birth", type = "Person.BirthDate" },
  { name = "Email", type = "Identity.Email" },
  { name = "City", type = "Location.City" },
  { name = "Zip", type = "Location.PostalCode" },
]
dedupe_model = { block = [["Last", "Birth"], ["First", "Birth"], ["Email"], ["First", "Zip"], ["Last", "Zip"]], random_pairs = 100000, compare = [
  { column = "First" }, { column = "Last" }, { column = "Birth" }, { column = "Email" },
  { column = "City" }, { column = "Zip" },
] }
"#;

const PLAIN_RULES: &str = r#"
[unification]
[[unification.tables]]
source = "Crm"
table = "Contacts"
columns = [
  { name = "First", type = "Person.FirstName" },
  { name = "Last", type = "Person.LastName" },
  { name = "Birth", type = "Person.BirthDate" },
  { name = "Email", type = "Identity.Email" },
]
dedupe = [
  { name = "email", conditions = [{ column = "Email" }] },
  { name = "name and birth date", conditions = [
      { column = "First", precision = "high" }, { column = "Last", precision = "high" }, { column = "Birth" },
  ] },
]
"#;

#[tokio::test]
async fn households_are_learnt_as_related_and_not_matched() {
    // one person in three lives with the previous one: the two-class model takes
    // them for duplicates, the related class keeps them apart
    let (header, rows, truth) = people_and_households(600, 5, 3);
    let sources = vec![source(
        "Crm",
        "Contacts",
        "crm.csv",
        "Id",
        &["Id", "First", "Last", "Birth", "Email", "City", "Zip"],
    )];
    let lines: Vec<String> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| format!("R{i:05},{r}"))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("crm.csv"),
        format!("Id,{header}\n{}\n", lines.join("\n")),
    )
    .unwrap();
    let lake = lake(dir.path());
    ingest(&lake, dir.path(), &sources).await;
    let mut households = spec(TRAINED_MODEL);
    let declared = households.tables[0].dedupe_model.as_mut().unwrap();
    // households share a family name and a postal code: a key a user would declare
    declared.block.push(vec!["Last".into(), "Zip".into()]);
    let mut measured = Vec::new();
    for related in [Some(false), None] {
        let mut s = households.clone();
        s.tables[0].dedupe_model.as_mut().unwrap().related = related;
        let report = unify(&lake, &sources, &s, &UnifyOptions::default())
            .await
            .unwrap();
        let (precision, recall) = pairwise(&groups(&profiles(&lake).await), &truth);
        eprintln!(
            "related {related:?}: precision {precision:.3} recall {recall:.3}, class learnt: {}",
            report.models[0].model.related.is_some()
        );
        measured.push((precision, recall, report.models[0].model.related.is_some()));
    }
    let (two_precision, two_recall, two_related) = measured[0];
    let (precision, recall, learnt) = measured[1];
    assert!(!two_related);
    assert!(learnt, "the related class is chosen for these records");
    assert!(
        two_precision < 0.99,
        "two classes take some households for duplicates: {two_precision}"
    );
    assert!(precision >= 0.995, "precision {precision}");
    assert!(
        recall >= two_recall - 0.01,
        "recall {recall}, two classes {two_recall}"
    );
}

#[tokio::test]
async fn a_trained_model_finds_what_rules_miss_is_stored_and_reused() {
    let (header, rows, truth) = people_with_truth(600, 3);
    let sources = vec![source(
        "Crm",
        "Contacts",
        "crm.csv",
        "Id",
        &["Id", "First", "Last", "Birth", "Email", "City", "Zip"],
    )];
    let write = |dir: &Path, seed: u64| {
        let mut lines: Vec<String> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| format!("R{i:05},{r}"))
            .collect();
        if seed > 0 {
            SplitMix(seed).shuffle(&mut lines);
        }
        std::fs::write(
            dir.join("crm.csv"),
            format!("Id,{header}\n{}\n", lines.join("\n")),
        )
        .unwrap();
    };
    let dir = tempfile::tempdir().unwrap();
    let lake = lake(dir.path());
    write(dir.path(), 0);
    ingest(&lake, dir.path(), &sources).await;

    // rules alone, as a yardstick
    unify(
        &lake,
        &sources,
        &spec(PLAIN_RULES),
        &UnifyOptions::default(),
    )
    .await
    .unwrap();
    let (rules_precision, rules_recall) = pairwise(&groups(&profiles(&lake).await), &truth);

    // the model, trained on these records
    let mut model = spec(TRAINED_MODEL);
    // kept for incremental runs, to see a changed model make a run a full one
    model.incremental = true;
    let report = unify(&lake, &sources, &model, &UnifyOptions::default())
        .await
        .unwrap();
    let m = &report.models[0];
    assert!(m.trained);
    let training = m.training.as_ref().unwrap();
    assert!(!training.swapped, "{training:?}");
    assert!(m.random_pairs > 0);
    let found = groups(&profiles(&lake).await);
    let (precision, recall) = pairwise(&found, &truth);
    eprintln!(
        "rules: precision {rules_precision:.3} recall {rules_recall:.3}; model: precision {precision:.3} recall {recall:.3}; {} candidates",
        m.candidates
    );
    assert!(precision >= 0.95, "model precision {precision}");
    assert!(recall >= 0.9, "model recall {recall}");
    // rules and model together find more than the rules alone, as precisely
    let mut both = model.clone();
    both.tables[0].dedupe = spec(PLAIN_RULES).tables[0].dedupe.clone();
    unify(&lake, &sources, &both, &UnifyOptions::default())
        .await
        .unwrap();
    let (both_precision, both_recall) = pairwise(&groups(&profiles(&lake).await), &truth);
    eprintln!("rules and model: precision {both_precision:.3} recall {both_recall:.3}");
    assert!(both_precision >= 0.95, "precision {both_precision}");
    assert!(
        both_recall > rules_recall + 0.01,
        "rules and model recall {both_recall}, rules alone {rules_recall}"
    );
    // agreeing on an email is strong evidence
    let email = m.model.columns.iter().find(|c| c.name == "Email").unwrap();
    assert!(email.m[0] > 0.5 && email.u[0] < 0.01, "{email:?}");

    // stored in the lake and reused while the declaration holds
    let stored = "_lakecdp/models/dedupe_Crm_Contacts.json";
    assert!(lake
        .exists(&lake.internal("models/dedupe_Crm_Contacts.json"))
        .await
        .unwrap());
    let text = String::from_utf8(lake.get(stored).await.unwrap().to_vec()).unwrap();
    assert!(
        text.contains(&report.run_id.as_ref().unwrap().to_string()),
        "the training run is named"
    );
    // every record matched again (an unchanged refresh would match nothing)
    let full = UnifyOptions {
        full: true,
        ..UnifyOptions::default()
    };
    let again = unify(&lake, &sources, &model, &full).await.unwrap();
    assert!(!again.models[0].trained, "the stored model is reused");
    assert_eq!(again.models[0].model.columns, m.model.columns);
    assert_eq!(groups(&profiles(&lake).await), found);
    // the term frequencies are stored with the model, counted over these records
    let stored_model: lakecdp_engine::unify::model::StoredModel =
        serde_json::from_slice(&lake.get(stored).await.unwrap()).unwrap();
    let names: Vec<&str> = m.model.columns.iter().map(|c| c.name.as_str()).collect();
    let last = names.iter().position(|n| *n == "Last").unwrap();
    let counts = stored_model.terms[last]
        .as_ref()
        .expect("last names weigh by their frequency");
    assert_eq!(counts.total, rows.len() as u64, "one last name per record");
    assert_eq!(
        counts.counts.values().map(|&n| u64::from(n)).sum::<u64>(),
        counts.total
    );
    let email = names.iter().position(|n| *n == "Email").unwrap();
    assert!(stored_model.terms[email].is_none(), "emails weigh alike");
    // and a later run weighs with them, not with the records it reads: counts that
    // make every last name common make agreeing on one weak evidence, so fewer pairs
    // match, though the records are the same
    let mut common = stored_model.clone();
    if let Some(Some(c)) = common.terms.get_mut(last) {
        let total = c.total as u32;
        std::sync::Arc::make_mut(c)
            .counts
            .values_mut()
            .for_each(|n| *n = total);
    }
    lake.put(stored, serde_json::to_vec(&common).unwrap())
        .await
        .unwrap();
    let weaker = unify(&lake, &sources, &model, &UnifyOptions::default())
        .await
        .unwrap();
    assert!(
        matches!(&weaker.mode, UnifyMode::Full { reason } if reason.contains("model changed")),
        "a stored model changed by hand makes the run a full one: {:?}",
        weaker.mode
    );
    assert!(!weaker.models[0].trained);
    assert!(
        weaker.models[0].matched < again.models[0].matched,
        "{} pairs with common last names, {} with the counts of the records",
        weaker.models[0].matched,
        again.models[0].matched
    );
    lake.put(stored, serde_json::to_vec(&stored_model).unwrap())
        .await
        .unwrap();
    // a new threshold needs no training; retraining is asked for, or follows a change
    let mut stricter = model.clone();
    stricter.tables[0].dedupe_model.as_mut().unwrap().threshold = Some(0.999);
    let strict = unify(&lake, &sources, &stricter, &UnifyOptions::default())
        .await
        .unwrap();
    assert!(!strict.models[0].trained);
    assert!(strict.models[0].matched <= again.models[0].matched);
    let retrain = UnifyOptions {
        train: true,
        ..UnifyOptions::default()
    };
    assert!(
        unify(&lake, &sources, &model, &retrain)
            .await
            .unwrap()
            .models[0]
            .trained
    );
    let mut changed = model.clone();
    changed.tables[0]
        .dedupe_model
        .as_mut()
        .unwrap()
        .compare
        .retain(|c| c.column != "City");
    assert!(
        unify(&lake, &sources, &changed, &UnifyOptions::default())
            .await
            .unwrap()
            .models[0]
            .trained
    );

    // the same records in another order, in a lake of their own: the same profiles
    let other = tempfile::tempdir().unwrap();
    let other_lake = common::lake(other.path());
    write(other.path(), 41);
    ingest(&other_lake, other.path(), &sources).await;
    unify(&other_lake, &sources, &model, &UnifyOptions::default())
        .await
        .unwrap();
    assert_eq!(groups(&profiles(&other_lake).await), found);
}

#[tokio::test]
async fn weak_links_attach_single_records_but_never_merge_profiles() {
    let (_dir, lake, sources) = fixed_model_records().await;
    // every pair the models match is a weak link
    let mut weak = spec(FIXED_MODEL);
    weak.tables[0].dedupe_model.as_mut().unwrap().strong = Some(0.999_999_9);
    weak.tables[1].match_models[0].strong = Some(0.999_999_9);
    let report = unify(&lake, &sources, &weak, &UnifyOptions::default())
        .await
        .unwrap();
    let expected = expected_groups(&[
        // two single records may pair through a weak link
        &["Contacts:C1", "Contacts:C2"],
        &["Contacts:C3", "Contacts:C4"],
        // S1 may not grow {C1, C2}, a profile of weak links only (held for review); it
        // pairs with C5, a single record
        &["Contacts:C5", "Customers:S1"],
        &["Contacts:C6", "Customers:S2"],
        &["Contacts:C7"],
        &["Customers:S3"],
    ]);
    assert_eq!(groups(&profiles(&lake).await), expected);
    // held: C5 joining {C1, C2} (which never-match would refuse too) and S1 joining it
    assert_eq!(report.held_for_review, 2);
    // and published for review, each with its model, probability and reason
    let review = unified(&lake, "ConflationReviewPairs").await;
    let held: BTreeSet<(String, String, String)> = strings(&review, "KeyA")
        .into_iter()
        .zip(strings(&review, "KeyB"))
        .zip(strings(&review, "Reason"))
        .map(|((a, b), why)| (a, b, why))
        .collect();
    let grow = "a weak link would grow a profile that only weak links hold".to_string();
    assert_eq!(held.len(), 2, "{held:?}");
    assert!(
        held.iter()
            .any(|(a, b, why)| (a == "C5" || b == "C5") && *why == grow),
        "{held:?}"
    );
    assert!(
        held.iter()
            .any(|(a, b, why)| a == "S1" && (b == "C1" || b == "C2") && *why == grow),
        "{held:?}"
    );
    let probabilities: Vec<f64> = strings(&review, "Probability")
        .iter()
        .map(|p| p.parse().unwrap())
        .collect();
    assert!(
        probabilities.windows(2).all(|w| w[0] >= w[1]),
        "strongest first: {probabilities:?}"
    );
    assert!(probabilities.iter().all(|p| *p > 0.5 && *p < 0.999_999_9));

    // with the default (0.99) the same pairs are strong and S1 joins C1's profile
    let report = unify(
        &lake,
        &sources,
        &spec(FIXED_MODEL),
        &UnifyOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(report.held_for_review, 0);
    assert_eq!(unified(&lake, "ConflationReviewPairs").await.num_rows(), 0);
    assert!(groups(&profiles(&lake).await).contains(&vec![
        "Contacts:C1".to_string(),
        "Contacts:C2".into(),
        "Customers:S1".into()
    ]));
}

/// The noisy people matched by models beside rules: a dedupe model with a
/// term-frequency adjusted last name (its counts frozen with the stored model) and weak
/// links held for review, and a match model of the shop's records with the CRM's.
const NOISY_MODELS: &str = r#"
[unification]
[[unification.tables]]
source = "Crm"
table = "Contacts"
columns = [
  { name = "First", type = "Person.FirstName", rename = "FirstName" },
  { name = "Last", type = "Person.LastName", rename = "LastName" },
  { name = "Email", type = "Identity.Email" },
  { name = "Phone", type = "Identity.Phone" },
]
dedupe = [{ name = "email", conditions = [{ column = "Email" }] }]
dedupe_model = { block = [["Last"], ["Phone"]], prior = 0.01, fixed_prior = true, strong = 0.9999, compare = [
  { column = "First", term_frequency = false, m = [0.85, 0.1, 0.03, 0.02], u = [0.01, 0.02, 0.07, 0.9], fixed = true },
  { column = "Last", m = [0.85, 0.1, 0.03, 0.02], u = [0.01, 0.02, 0.07, 0.9], fixed = true },
  { column = "Email", m = [0.8, 0.1, 0.05, 0.05], u = [0.0001, 0.001, 0.01, 0.9889], fixed = true },
  { column = "Phone", m = [0.8, 0.1, 0.05, 0.05], u = [0.002, 0.001, 0.01, 0.987], fixed = true },
] }

[[unification.tables]]
source = "Shop"
table = "Customers"
columns = [
  { name = "Name", type = "Person.FullName", rename = "FullName" },
  { name = "email", type = "Identity.Email", rename = "Email" },
  { name = "phone", type = "Identity.Phone", rename = "Phone" },
]
match_model = [{ with = "Crm.Contacts", block = [["email"], ["phone"]], prior = 0.01, fixed_prior = true, compare = [
  { column = "email", with = "Email", m = [0.8, 0.1, 0.05, 0.05], u = [0.0001, 0.001, 0.01, 0.9889], fixed = true },
  { column = "phone", with = "Phone", m = [0.8, 0.1, 0.05, 0.05], u = [0.002, 0.001, 0.01, 0.987], fixed = true },
] }]

[unification.overrides]
never_match = [{ table = "Crm.Contacts", key = "C0005", other_table = "Crm.Contacts", other_key = "C0006" }]
always_match = [{ table = "Crm.Contacts", key = "C0010", other_table = "Shop.Customers", other_key = "S0040" }]
"#;

/// Copy a folder tree.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Everything a unification published, independent of row order, with the CustomerIds
/// created by `runs` written as the run's position and their number.
async fn everything(lake: &Lake, runs: &[String]) -> Vec<String> {
    let stamps: Vec<String> = runs
        .iter()
        .map(|r| r.replace(['T', 'Z', '-'], ""))
        .collect();
    let id = |id: &str| {
        stamps
            .iter()
            .enumerate()
            .find_map(|(b, s)| id.strip_prefix(s.as_str()).map(|n| format!("run {b} {n}")))
            .unwrap_or_else(|| id.to_string())
    };
    let (groups, rows, dedupe) = published(lake).await;
    let mut out: Vec<String> = groups.into_iter().map(|g| g.join(" ")).collect();
    out.extend(rows);
    out.extend(dedupe);
    for (records, customer) in profiles(lake).await.into_iter().map(|(i, r)| (r, i)) {
        out.push(format!(
            "id {} = {}",
            records.into_iter().collect::<Vec<_>>().join(" "),
            id(&customer)
        ));
    }
    for table in ["ConflationMatchPairs", "ConflationReviewPairs"] {
        let t = unified(lake, table).await;
        let names: Vec<String> = t
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let columns: Vec<Vec<String>> = names.iter().map(|n| strings(&t, n)).collect();
        for row in 0..t.num_rows() {
            let values: Vec<&str> = columns.iter().map(|c| c[row].as_str()).collect();
            out.push(format!("{table} {}", values.join("|")));
        }
    }
    let history = unified(lake, "CustomerIdHistory").await;
    for ((old, new), reason) in strings(&history, "OldCustomerId")
        .into_iter()
        .zip(strings(&history, "NewCustomerId"))
        .zip(strings(&history, "Reason"))
    {
        out.push(format!("history {} {} {reason}", id(&old), id(&new)));
    }
    out.sort();
    out
}

/// One batch of changes to noisy records (`C0001,...` rows): some deleted, some
/// changed (an email taken from another record, a phone dropped, a typo), some added
/// (a record of a known person with a typo, under a new key).
fn change_batch(rows: &mut Vec<String>, prefix: char, batch: usize, rng: &mut SplitMix) {
    for _ in 0..6 {
        let i = rng.below(rows.len());
        rows.remove(i);
    }
    for _ in 0..8 {
        let i = rng.below(rows.len());
        let mut fields: Vec<String> = rows[i].split(',').map(str::to_string).collect();
        let donor: Vec<String> = rows[rng.below(rows.len())]
            .split(',')
            .map(str::to_string)
            .collect();
        let column = 1 + rng.below(fields.len() - 1);
        fields[column] = match rng.below(3) {
            0 => donor[column].clone(),
            1 => String::new(),
            _ => typo(rng, &fields[column]),
        };
        rows[i] = fields.join(",");
    }
    for n in 0..10 {
        let donor = rows[rng.below(rows.len())].clone();
        let mut fields: Vec<String> = donor.split(',').map(str::to_string).collect();
        fields[0] = format!("{prefix}9{batch}{n:02}");
        fields[1] = typo(rng, &fields[1]);
        // some CRM records write the family name first: a model reads them crossed
        if prefix == 'C' && n % 3 == 0 {
            fields.swap(1, 2);
        }
        rows.push(fields.join(","));
    }
}

#[tokio::test]
async fn incremental_unification_publishes_what_a_full_run_does_over_three_batches() {
    let (crm_header, crm, shop_header, shop) = noisy_people();
    let sources = noisy_sources();
    // the rules again, with CRM winners taking the phone and first name of other members
    // (the match rules then compare values that depend on the duplicate groups)
    let winners = NOISY_RULES.replacen(
        "\n[[unification.tables]]\nsource = \"Shop\"",
        "dedupe_columns = [\n  { name = \"Phone\", policy = { least_recent = \"Email\" } },\n  { name = \"First\", policy = { most_recent = \"Last\" } },\n]\n\n[[unification.tables]]\nsource = \"Shop\"",
        1,
    );
    assert_ne!(winners, NOISY_RULES);
    for (declaration, text) in [
        ("rules", NOISY_RULES),
        ("winners", winners.as_str()),
        ("models", NOISY_MODELS),
    ] {
        let mut rules = spec(text);
        rules.incremental = true;
        let write = |dir: &Path, crm: &[String], shop: &[String]| {
            write_noisy(dir, (&crm_header, crm), (&shop_header, shop));
        };
        // one lake unified in full, copied: from then on one is refreshed incrementally,
        // the other in full, with the same records
        let incremental_dir = tempfile::tempdir().unwrap();
        let lake_inc = lake(incremental_dir.path());
        write(incremental_dir.path(), &crm, &shop);
        ingest(&lake_inc, incremental_dir.path(), &sources).await;
        let first = unify(&lake_inc, &sources, &rules, &UnifyOptions::default())
            .await
            .unwrap();
        assert!(
            matches!(first.mode, UnifyMode::Full { .. }),
            "{declaration}: the first run matches everything"
        );
        let full_dir = tempfile::tempdir().unwrap();
        copy_tree(incremental_dir.path(), full_dir.path());
        let handle = lakecdp_lake::backend::open(
            &lakecdp_core::StorageConfig::Local(lakecdp_core::LocalConfig {
                path: full_dir.path().join("lake"),
            }),
            None,
        )
        .unwrap();
        let lake_full = Lake::new(&handle, lake_inc.environment());

        let (mut crm, mut shop) = (crm.clone(), shop.clone());
        let mut rng = SplitMix(41);
        let mut runs: [Vec<String>; 2] = [Vec::new(), Vec::new()];
        for batch in 1..=3 {
            change_batch(&mut crm, 'C', batch, &mut rng);
            change_batch(&mut shop, 'S', batch, &mut rng);
            let mut outputs = Vec::new();
            let mut reports = Vec::new();
            for (dir, lake, full) in [
                (incremental_dir.path(), &lake_inc, false),
                (full_dir.path(), &lake_full, true),
            ] {
                write(dir, &crm, &shop);
                ingest(lake, dir, &sources).await;
                let options = UnifyOptions {
                    full,
                    ..UnifyOptions::default()
                };
                let report = unify(lake, &sources, &rules, &options).await.unwrap();
                println!("{declaration} batch {batch}: {:?}", report.mode);
                match (&report.mode, full) {
                    (
                        UnifyMode::Incremental {
                            changed,
                            rematched,
                            kept,
                            ..
                        },
                        false,
                    ) => {
                        assert!(*changed > 0, "{declaration} batch {batch}: changes seen");
                        assert!(
                            rematched < &(crm.len() + shop.len()) && *kept > 0,
                            "{declaration} batch {batch}: only part is matched again ({rematched} of {})",
                            crm.len() + shop.len()
                        );
                    }
                    (UnifyMode::Full { reason }, true) => {
                        assert!(reason.contains("asked for"), "{reason}")
                    }
                    (mode, _) => panic!("{declaration} batch {batch}: {mode:?}"),
                }
                let side = usize::from(full);
                runs[side].push(report.run_id.unwrap().to_string());
                outputs.push(everything(lake, &runs[side]).await);
                reports.push(report.tables);
            }
            // what each table contributed (records, duplicates, matched, left out)
            assert_eq!(
                reports[0], reports[1],
                "{declaration} batch {batch}: the tables' reports differ"
            );
            assert!(
                reports[0].iter().any(|t| t.matched > 0),
                "{declaration} batch {batch}: records are matched"
            );
            let (inc, full) = (&outputs[0], &outputs[1]);
            let only_inc: Vec<&String> = inc.iter().filter(|x| !full.contains(x)).collect();
            let only_full: Vec<&String> = full.iter().filter(|x| !inc.contains(x)).collect();
            assert!(
                only_inc.is_empty() && only_full.is_empty(),
                "{declaration} batch {batch}: incremental only {only_inc:#?}\nfull only {only_full:#?}"
            );
            assert!(inc.iter().any(|x| x.starts_with("ConflationMatchPairs")));
            // the block index the incremental run kept is the one the full run built
            let index = |dir: &Path| {
                let files = files_named(&dir.join("lake"), "blocks-");
                assert_eq!(files.len(), 1, "{declaration} batch {batch}: {files:?}");
                std::fs::read(&files[0]).unwrap()
            };
            assert!(
                index(incremental_dir.path()) == index(full_dir.path()),
                "{declaration} batch {batch}: the block indexes differ"
            );
        }
    }
}

/// The CRM contacts deduplicated by email.
const CRM_BY_EMAIL: &str = r#"[[unification.tables]]
source = "Crm"
table = "Contacts"
columns = [{ name = "Email", type = "Identity.Email" }]
dedupe = [{ conditions = [{ column = "Email" }] }]
"#;

/// Write `crm.csv` into `dir`, load it and unify: the run's mode and the profiles.
async fn unify_crm(
    dir: &Path,
    lake: &Lake,
    sources: &[SourceSpec],
    rules: &UnificationSpec,
    crm: &str,
) -> (UnifyMode, BTreeSet<Vec<String>>) {
    std::fs::write(dir.join("crm.csv"), crm).unwrap();
    ingest(lake, dir, sources).await;
    let report = unify(lake, sources, rules, &UnifyOptions::default())
        .await
        .unwrap();
    (report.mode, groups(&profiles(lake).await))
}

/// The CRM's contacts, deduplicated by email with `settings` in `[unification]`: the
/// sources and the declaration.
fn crm_by_email(settings: &str) -> (Vec<SourceSpec>, UnificationSpec) {
    let sources = vec![source("Crm", "Contacts", "crm.csv", "Id", &["Id", "Email"])];
    let rules = spec(&format!("[unification]\n{settings}{CRM_BY_EMAIL}"));
    (sources, rules)
}

/// Write `shop.csv` beside `crm.csv` into `dir`, load both and unify: the run's mode and
/// the profiles.
async fn unify_crm_and_shop(
    dir: &Path,
    (lake, sources, rules): (&Lake, &[SourceSpec], &UnificationSpec),
    crm: &str,
    shop: &str,
) -> (UnifyMode, BTreeSet<Vec<String>>) {
    std::fs::write(dir.join("shop.csv"), shop).unwrap();
    unify_crm(dir, lake, sources, rules, crm).await
}

#[tokio::test]
async fn a_block_crossing_the_giant_guard_makes_the_refresh_match_everything() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake(dir.path());
    let (sources, rules) = crm_by_email("max_block = 3\nincremental = true\n");
    let run = |crm: &'static str| unify_crm(dir.path(), &lake, &sources, &rules, crm);
    // three records share an email: one profile
    let (_, first) = run("Id,Email\nA1,x@q\nA2,x@q\nA3,x@q\nB1,b@q\n").await;
    assert_eq!(
        first,
        expected_groups(&[
            &["Contacts:A1", "Contacts:A2", "Contacts:A3"],
            &["Contacts:B1"]
        ])
    );
    // a fourth makes the email a giant block, which matches nothing: every record of
    // the block leaves the profile, although only one changed
    let (mode, second) = run("Id,Email\nA1,x@q\nA2,x@q\nA3,x@q\nA4,x@q\nB1,b@q\n").await;
    assert!(
        matches!(&mode, UnifyMode::Full { reason } if reason.contains("giant-block guard")),
        "{mode:?}"
    );
    assert_eq!(
        second,
        expected_groups(&[
            &["Contacts:A1"],
            &["Contacts:A2"],
            &["Contacts:A3"],
            &["Contacts:A4"],
            &["Contacts:B1"]
        ])
    );
    // an unrelated change is matched incrementally again
    let (mode, third) = run("Id,Email\nA1,x@q\nA2,x@q\nA3,x@q\nA4,x@q\nB1,b@q\nB2,b@q\n").await;
    assert!(matches!(mode, UnifyMode::Incremental { .. }), "{mode:?}");
    assert!(third.contains(&vec!["Contacts:B1".to_string(), "Contacts:B2".to_string()]));
    // and the block shrinking below the guard joins its records again
    let (mode, fourth) = run("Id,Email\nA1,x@q\nA2,x@q\nA3,x@q\nB1,b@q\nB2,b@q\n").await;
    assert!(matches!(mode, UnifyMode::Full { .. }), "{mode:?}");
    assert!(fourth.contains(&vec![
        "Contacts:A1".to_string(),
        "Contacts:A2".to_string(),
        "Contacts:A3".to_string()
    ]));
}

#[tokio::test]
async fn a_record_taken_in_while_matching_keeps_its_group_for_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake(dir.path());
    let sources = vec![
        source("Crm", "Contacts", "crm.csv", "Id", &["Id", "Email"]),
        source("Shop", "Customers", "shop.csv", "Cid", &["Cid", "email"]),
    ];
    let rules = spec(&format!(
        r#"
[unification]
incremental = true
{CRM_BY_EMAIL}[[unification.tables]]
source = "Shop"
table = "Customers"
columns = [{{ name = "email", type = "Identity.Email", rename = "Email" }}]
match = [{{ with = "Crm.Contacts", conditions = [{{ column = "email", with = "Email" }}] }}]
"#,
    ));
    let run = |crm: &'static str, shop: &'static str| {
        unify_crm_and_shop(dir.path(), (&lake, &sources, &rules), crm, shop)
    };
    run("Id,Email\nA1,e@x\nA2,e@x\nA3,o@x\n", "Cid,email\nB0,z@x\n").await;
    // a new shop record matches the duplicates A1 and A2, taken in while matching
    let (mode, second) = run(
        "Id,Email\nA1,e@x\nA2,e@x\nA3,o@x\n",
        "Cid,email\nB0,z@x\nB1,e@x\n",
    )
    .await;
    assert!(matches!(mode, UnifyMode::Incremental { .. }), "{mode:?}");
    assert!(second.contains(&vec![
        "Contacts:A1".to_string(),
        "Contacts:A2".to_string(),
        "Customers:B1".to_string()
    ]));
    // A1 goes: its duplicate A2 is matched again with it, not left with a group of a
    // record that is gone
    let (mode, third) = run("Id,Email\nA2,e@x\nA3,o@x\n", "Cid,email\nB0,z@x\nB1,e@x\n").await;
    assert!(matches!(mode, UnifyMode::Incremental { .. }), "{mode:?}");
    assert_eq!(
        third,
        expected_groups(&[
            &["Contacts:A2", "Customers:B1"],
            &["Contacts:A3"],
            &["Customers:B0"]
        ])
    );
}

/// A rule whose column is empty in every record keys nothing: the index holds its
/// definition without entries, and the next run reads it and matches only what changed.
#[tokio::test]
async fn a_rule_that_keys_no_record_leaves_the_next_run_incremental() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake(dir.path());
    let (sources, rules) = crm_by_email("incremental = true\n");
    let run = |crm: &'static str| unify_crm(dir.path(), &lake, &sources, &rules, crm);
    let (_, first) = run("Id,Email\nA1,\nA2,\n").await;
    assert_eq!(
        first,
        expected_groups(&[&["Contacts:A1"], &["Contacts:A2"]])
    );
    let (mode, second) = run("Id,Email\nA1,\nA2,\nA3,a@q\nA4,a@q\n").await;
    assert!(matches!(mode, UnifyMode::Incremental { .. }), "{mode:?}");
    assert_eq!(
        second,
        expected_groups(&[
            &["Contacts:A1"],
            &["Contacts:A2"],
            &["Contacts:A3", "Contacts:A4"]
        ])
    );
}

/// A record that becomes its group's winner without changing itself can crowd a block of
/// the other table's rules past the giant-block guard: the refresh sees it.
#[tokio::test]
async fn a_record_becoming_a_winner_crowding_a_block_makes_the_refresh_match_everything() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake(dir.path());
    let sources = vec![
        source(
            "Crm",
            "Contacts",
            "crm.csv",
            "Id",
            &["Id", "Phone", "Email"],
        ),
        source("Shop", "Customers", "shop.csv", "Cid", &["Cid", "email"]),
    ];
    let rules = spec(
        r#"
[unification]
max_block = 2
incremental = true
[[unification.tables]]
source = "Crm"
table = "Contacts"
columns = [{ name = "Phone", type = "Identity.Phone" }, { name = "Email", type = "Identity.Email" }]
dedupe = [{ conditions = [{ column = "Phone" }] }]
[[unification.tables]]
source = "Shop"
table = "Customers"
columns = [{ name = "email", type = "Identity.Email", rename = "Email" }]
match = [{ with = "Crm.Contacts", conditions = [{ column = "email", with = "Email" }] }]
"#,
    );
    let run = |crm: &'static str| {
        let shop = "Cid,email\nS1,y@q\n";
        unify_crm_and_shop(dir.path(), (&lake, &sources, &rules), crm, shop)
    };
    // A1 and A2 share a phone and A2 (the larger key) is their winner: two winners
    // write y@q, within the guard, and the shop record joins them
    let (_, first) = run("Id,Phone,Email\nA1,1,y@q\nA2,1,z@q\nB1,2,y@q\nC1,3,y@q\n").await;
    assert_eq!(
        first,
        expected_groups(&[
            &["Contacts:A1", "Contacts:A2"],
            &["Contacts:B1", "Contacts:C1", "Customers:S1"]
        ])
    );
    // A2 takes another phone: A1, unchanged, is now a winner writing y@q, the block
    // holds three winners and matches nothing
    let (mode, second) = run("Id,Phone,Email\nA1,1,y@q\nA2,9,z@q\nB1,2,y@q\nC1,3,y@q\n").await;
    assert!(
        matches!(&mode, UnifyMode::Full { reason } if reason.contains("giant-block guard")),
        "{mode:?}"
    );
    assert_eq!(
        second,
        expected_groups(&[
            &["Contacts:A1"],
            &["Contacts:A2"],
            &["Contacts:B1"],
            &["Contacts:C1"],
            &["Customers:S1"]
        ])
    );
}

/// The files under `dir` whose names start with `prefix`.
fn files_named(dir: &Path, prefix: &str) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_named(&path, prefix));
        } else if entry.file_name().to_string_lossy().starts_with(prefix) {
            out.push(path);
        }
    }
    out
}

#[tokio::test]
async fn a_damaged_block_index_makes_the_next_run_match_everything_and_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake(dir.path());
    let (sources, rules) = crm_by_email("incremental = true\n");
    let run = |crm: &'static str| unify_crm(dir.path(), &lake, &sources, &rules, crm);
    run("Id,Email\nA1,e@x\nA2,e@x\nA3,o@x\n").await;
    let index = files_named(&dir.path().join("lake"), "blocks-");
    assert_eq!(index.len(), 1, "one block index is kept: {index:?}");
    let bytes = std::fs::read(&index[0]).unwrap();
    std::fs::write(&index[0], &bytes[..bytes.len() / 2]).unwrap();
    let (mode, second) = run("Id,Email\nA1,e@x\nA2,e@x\nA3,o@x\nA4,o@x\n").await;
    assert!(
        matches!(&mode, UnifyMode::Full { reason } if reason.contains("block index")),
        "{mode:?}"
    );
    assert!(second.contains(&vec!["Contacts:A3".to_string(), "Contacts:A4".to_string()]));
    // the full run stored a sound index again, and the one before is gone
    let index = files_named(&dir.path().join("lake"), "blocks-");
    assert_eq!(index.len(), 1, "{index:?}");
    let (mode, third) = run("Id,Email\nA1,e@x\nA2,e@x\nA3,o@x\nA4,o@x\nA5,e@x\n").await;
    assert!(matches!(mode, UnifyMode::Incremental { .. }), "{mode:?}");
    assert!(third.contains(&vec![
        "Contacts:A1".to_string(),
        "Contacts:A2".to_string(),
        "Contacts:A5".to_string()
    ]));
}

/// On a standalone cluster the rules' pairs are found by tasks that each compare a
/// slice of one side's records with the whole other side: the same candidates and
/// pairs per rule, the same giant blocks, and the same published profiles, groups and
/// winners as here (with `with` conditions met either way round, fuzzy conditions and
/// a never-match override).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_pairs_found_on_a_standalone_cluster_are_the_pairs_found_here() {
    let (crm_header, crm, shop_header, shop) = noisy_people();
    let sources = noisy_sources();
    // a small block limit, so some blocks are left out on both
    let rules = spec(&NOISY_RULES.replacen("[unification]\n", "[unification]\nmax_block = 3\n", 1));
    let mut results = Vec::new();
    for cluster in [
        None,
        Some(lakecdp_engine::unify::UnifyCluster {
            scheduler: None,
            tasks: 3,
        }),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let lake = lake(dir.path());
        write_noisy(dir.path(), (&crm_header, &crm), (&shop_header, &shop));
        ingest(&lake, dir.path(), &sources).await;
        let options = UnifyOptions {
            cluster,
            ..UnifyOptions::default()
        };
        let report = unify(&lake, &sources, &rules, &options).await.unwrap();
        let rules: Vec<(String, String, u64, u64)> = report
            .rules
            .iter()
            .map(|r| (r.table.clone(), r.rule.clone(), r.candidates, r.pairs))
            .collect();
        let giant: Vec<(String, String, usize)> = report
            .giant
            .iter()
            .map(|g| (g.rule.clone(), g.value.clone(), g.records))
            .collect();
        // every rule's pairs came from the cluster when it was given one
        let expected = if options.cluster.is_some() {
            report.rules.len()
        } else {
            0
        };
        assert_eq!(report.rules_on_cluster, expected);
        // the scratch values of the rules are gone
        let left = lake.list(&lake.internal("scratch")).await.unwrap();
        assert!(left.is_empty(), "{left:?}");
        results.push((rules, giant, published(&lake).await));
    }
    let (here, there) = (&results[0], &results[1]);
    assert!(here.0.iter().all(|r| r.2 > 0), "{:?}", here.0);
    assert!(!here.1.is_empty(), "some blocks are too big");
    assert_eq!(here.0, there.0, "candidates and pairs per rule");
    assert_eq!(here.1, there.1, "giant blocks");
    assert_eq!(here.2, there.2, "profiles, values, groups and winners");
}

/// A unification whose cluster cannot be reached fails naming it, and publishes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unification_whose_cluster_is_unreachable_names_it() {
    let (crm_header, crm, shop_header, shop) = noisy_people();
    let sources = noisy_sources();
    let dir = tempfile::tempdir().unwrap();
    let lake = lake(dir.path());
    write_noisy(dir.path(), (&crm_header, &crm), (&shop_header, &shop));
    ingest(&lake, dir.path(), &sources).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let scheduler = format!("df://127.0.0.1:{port}");
    let options = UnifyOptions {
        cluster: Some(lakecdp_engine::unify::UnifyCluster {
            scheduler: Some(scheduler.clone()),
            tasks: 2,
        }),
        ..UnifyOptions::default()
    };
    let err = unify(&lake, &sources, &spec(NOISY_RULES), &options)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains(&scheduler), "{err}");
    let published = lakecdp_lake::publish::read_model(&lake, &lakecdp_lake::Process::Unification)
        .await
        .unwrap();
    assert!(published.is_none());
}
