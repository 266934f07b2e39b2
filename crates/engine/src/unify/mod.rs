//! Unification: the records of the declared tables become customer profiles.
//!
//! 1. **Load** each table's ingested entity (`DataIngestion/<Source>/<Table>`).
//! 2. **Deduplicate** within each table: records that satisfy one of the table's rules
//!    form a group (transitively); the group's winner follows the table's policy (most
//!    filled by default, or most or least recent by a column; ties go to the largest
//!    primary key). In the advanced mode (`dedupe_columns`) some columns of the winner
//!    take the value of the member their own policy picks, so the deduplicated record
//!    is assembled column by column. Only winners take part in matching; every member
//!    ends in the winner's profile.
//! 3. **Match** tables in order: the rules of table *n* compare its winners with those of
//!    an earlier table; a rule sees only the records that the table's earlier rules did
//!    not match. Matched pairs join profiles transitively, so a table is matched against
//!    the growing set of unified records. Overrides add pairs that always match, refuse
//!    joins that would put a never-match pair in one profile, and make values never
//!    match. Unmatched records are profiles of their own unless `include_all = false`.
//! 4. **Cluster** the pairs (union-find) and give each profile its stable CustomerId
//!    (see `lakecdp_match::ids`): ids carry over from the previous run's AlternateKey
//!    (an incremental run takes them from its state, and assigns ids only to the profiles
//!    of the records it matched again).
//! 5. **Merge** each profile into one `Customer` row, column by column by policy.
//!
//! Outputs, published together in `Unification/`: `Customer`, `AlternateKey`,
//! `ConflationMatchPairs`, `CustomerIdHistory` and `Deduplication_<Source>_<Table>`.

mod blocks;
pub mod data;
#[cfg(feature = "distributed")]
pub mod distributed;
pub mod incremental;
mod merge;
pub mod model;
pub mod rules;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Array, ArrayRef, Float32Array, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use lakecdp_core::unify::DEFAULT_MAX_BLOCK;
use lakecdp_core::{RunId, SourceSpec, UnificationSpec, WinnerPolicy};
use lakecdp_lake::{CdmFolderWriter, Lake, Process};
use lakecdp_match::cluster::{stats, ClusterStats, UnionFind};
use lakecdp_match::ids::{assign, IdChange};

use self::data::{load_table, TableData};
use self::incremental::Closure;
pub use self::incremental::Mode as UnifyMode;
use self::rules::{find_pairs, prepare, rule_name, GiantBlock, NormalizedCache};
use crate::{Error, Result};

/// How to unify.
#[derive(Debug, Clone)]
pub struct UnifyOptions {
    /// Runs of `Unification/` kept in the lake.
    pub retention: u32,
    /// Use only the first N records of each table.
    pub sample: Option<usize>,
    /// Stop after clustering: report, publish nothing.
    pub preview: bool,
    /// Train the match models anew (and store them, even in a preview) instead of
    /// using the stored ones.
    pub train: bool,
    /// Match every record, even when only some changed since the last run.
    pub full: bool,
    /// Find the rules' pairs on a Ballista cluster (a run that matches every record).
    pub cluster: Option<UnifyCluster>,
}

/// Where a unification finds its rules' pairs when it runs on a Ballista cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnifyCluster {
    /// The scheduler, `df://host:port`; `None`: this process's standalone cluster.
    pub scheduler: Option<String>,
    /// Tasks per rule: slices of this side's records compared at once.
    pub tasks: usize,
}

impl Default for UnifyOptions {
    fn default() -> Self {
        Self {
            retention: lakecdp_core::environment::DEFAULT_RETENTION_RUNS,
            sample: None,
            preview: false,
            train: false,
            full: false,
            cluster: None,
        }
    }
}

/// What one rule did.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleReport {
    /// `Source.Table`.
    pub table: String,
    /// `dedupe` or `match`.
    pub kind: &'static str,
    /// Rule name.
    pub rule: String,
    /// Candidate pairs compared.
    pub candidates: u64,
    /// Pairs that matched.
    pub pairs: u64,
}

/// What one table contributed.
#[derive(Debug, Clone, PartialEq)]
pub struct TableReport {
    /// `Source.Table`.
    pub table: String,
    /// Records read.
    pub records: usize,
    /// Records merged into another record of the same table by deduplication.
    pub duplicates: usize,
    /// Winners that matched a record of an earlier table.
    pub matched: usize,
    /// Unmatched records left out (`include_all = false`).
    pub excluded: usize,
}

/// What a unification did.
#[derive(Debug, Clone)]
pub struct UnifyReport {
    /// The published run (none for a preview).
    pub run_id: Option<RunId>,
    /// Per table.
    pub tables: Vec<TableReport>,
    /// Per rule, in the order they ran.
    pub rules: Vec<RuleReport>,
    /// Per match model, in the order they ran.
    pub models: Vec<model::ModelReport>,
    /// Blocking values left out for their size.
    pub giant: Vec<GiantBlock>,
    /// Weak links of match models held for review: they would have merged two profiles
    /// or grown a profile of weak links only.
    pub held_for_review: u64,
    /// Profiles (`Customer` rows).
    pub profiles: usize,
    /// Cluster sizes.
    pub clusters: ClusterStats,
    /// CustomerIds merged, split or removed since the previous run.
    pub id_changes: Vec<IdChange>,
    /// Seconds per phase.
    pub phases: Vec<(&'static str, f64)>,
    /// Whether every record was matched, or only those a change could reach.
    pub mode: UnifyMode,
    /// Rules whose pairs were found on the cluster the run was given.
    pub rules_on_cluster: usize,
}

/// The rule name of pairs a match model found, in reports and `ConflationMatchPairs`.
pub const MODEL_RULE: &str = "model";

/// A matched pair: (table, record, other table, other record, rule, score).
type MatchPair = (usize, u32, usize, u32, String, f32);

/// A weak link held for review: the pair (its rule is the model, its score the
/// probability), and why it was held.
type ReviewPair = (MatchPair, Held);

/// A deduplication result of one table.
struct Deduped {
    /// Winner (record index) of each record.
    winner: Vec<u32>,
    /// Group (smallest member) of each record.
    group: Vec<u32>,
    /// The rule and score that put each record in its group.
    rule: Vec<Option<(u16, f32)>>,
}

/// Unify the declared tables and publish `Unification/`.
pub async fn unify(
    lake: &Lake,
    sources: &[SourceSpec],
    spec: &UnificationSpec,
    options: &UnifyOptions,
) -> Result<UnifyReport> {
    let reason = match unify_once(lake, sources, spec, options, None).await? {
        Attempt::Done(report) => return Ok(*report),
        Attempt::Again(reason) => reason,
    };
    tracing::info!(%reason, "the incremental unification stopped: every record is matched");
    let full = UnifyOptions {
        full: true,
        ..options.clone()
    };
    match unify_once(lake, sources, spec, &full, Some(reason)).await? {
        Attempt::Done(report) => Ok(*report),
        Attempt::Again(reason) => Err(Error::Internal(format!(
            "a full unification asked to be run again: {reason}"
        ))),
    }
}

/// How one attempt at a unification ended.
enum Attempt {
    /// Done (published, or previewed).
    Done(Box<UnifyReport>),
    /// An incremental run found that it cannot match only what changed (a block crossed
    /// the giant-block guard): it published nothing, and every record is to be matched.
    Again(String),
}

async fn unify_once(
    lake: &Lake,
    sources: &[SourceSpec],
    spec: &UnificationSpec,
    options: &UnifyOptions,
    full_reason: Option<String>,
) -> Result<Attempt> {
    let mut phases = Vec::new();
    let mut rules_on_cluster = 0usize;
    let mut clock = Instant::now();
    let mut lap = |name: &'static str, phases: &mut Vec<(&'static str, f64)>| {
        phases.push((name, clock.elapsed().as_secs_f64()));
        clock = Instant::now();
    };
    validate(spec)?;
    let mut tables = Vec::with_capacity(spec.tables.len());
    // the columns each table's records are compared on by the rules of later tables
    let mut referenced: HashMap<String, Vec<String>> = HashMap::new();
    for t in &spec.tables {
        for r in &t.match_rules {
            for c in &r.conditions {
                referenced
                    .entry(r.with.clone())
                    .or_default()
                    .push(c.with.clone().unwrap_or_else(|| c.column.clone()));
            }
        }
        for m in &t.match_models {
            let Some(with) = &m.with else { continue };
            let columns = m.compare.iter().map(|c| c.column.as_str());
            let blocked = m.block.iter().flatten().map(String::as_str);
            for column in columns.chain(blocked) {
                referenced
                    .entry(with.clone())
                    .or_default()
                    .push(m.counterpart(column).to_string());
            }
        }
    }
    for t in &spec.tables {
        let extra = referenced
            .get(&t.qualified())
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mut data = load_table(lake, t, sources, extra).await?;
        if let Some(n) = options.sample {
            data.truncate(n);
        }
        tables.push(data);
    }
    // the values as read (before a winner's columns take other members' values)
    let prints: Vec<incremental::Prints> = if spec.incremental {
        tables.iter().map(incremental::fingerprints).collect()
    } else {
        Vec::new()
    };
    lap("load", &mut phases);
    let max_block = spec.max_block.unwrap_or(DEFAULT_MAX_BLOCK);
    let mut bypass: HashMap<String, Vec<String>> = HashMap::new();
    for b in &spec.overrides.bypass {
        bypass
            .entry(b.column.clone())
            .or_default()
            .extend(b.values.iter().cloned());
    }
    let mut cache = NormalizedCache::with_aliases(spec.overrides.aliases.clone());
    let mut rule_reports = Vec::new();
    let mut model_reports = Vec::new();
    let mut giant = Vec::new();
    // models trained in this run, stored once it is published
    let mut trained: Vec<Trained> = Vec::new();
    let offsets: Vec<u32> = tables
        .iter()
        .scan(0u32, |acc, t| {
            let o = *acc;
            *acc += t.len() as u32;
            Some(o)
        })
        .collect();
    let total: usize = tables.iter().map(TableData::len).sum();
    let locate = |tables: &[TableData], table: &str, key: &str| -> Option<(usize, usize)> {
        let ti = tables.iter().position(|t| t.name == table)?;
        let r = tables[ti].keys.iter().position(|k| k == key)?;
        Some((ti, r))
    };
    let mut always: Vec<(usize, usize, usize, usize)> = Vec::new();
    for p in &spec.overrides.always_match {
        match (
            locate(&tables, &p.table, &p.key),
            locate(&tables, &p.other_table, &p.other_key),
        ) {
            (Some((ta, ra)), Some((tb, rb))) => always.push((ta, ra, tb, rb)),
            _ => tracing::warn!(
                "always-match override {}:{} = {}:{} names a record that does not exist",
                p.table,
                p.key,
                p.other_table,
                p.other_key
            ),
        }
    }

    // the stored models (read at once), and whether this run can match only what changed
    let mut models: HashMap<String, model::StoredModel> = HashMap::new();
    let mut untrained_model = false;
    let mut wanted = Vec::new();
    for t in &tables {
        let declared = t
            .spec
            .dedupe_model
            .iter()
            .map(|m| (m, t.name.clone()))
            .chain(t.spec.match_models.iter().map(|m| {
                let with = m.with.clone().unwrap_or_default();
                (m, with)
            }));
        for (ms, with) in declared {
            let (name, names) = match tables.iter().find(|o| o.name == with) {
                Some(other) => (
                    model::model_name(t, other),
                    model::crossed_names(ms, &t.spec, &other.spec),
                ),
                None => continue,
            };
            wanted.push((name, ms, names));
        }
    }
    let reads = wanted
        .iter()
        .map(|(name, ms, names)| stored_model(lake, options, name, ms, names.as_ref()));
    let read = futures::future::try_join_all(reads).await?;
    for ((name, _, _), stored) in wanted.into_iter().zip(read) {
        match stored {
            Some(m) => {
                let counted =
                    m.model.columns.iter().enumerate().all(|(k, c)| {
                        !c.term_frequency || m.terms.get(k).is_some_and(Option::is_some)
                    });
                untrained_model |= !counted;
                models.insert(name, m);
            }
            None => untrained_model = true,
        }
    }
    // each stored model by its content (a model trained anew or changed by hand is
    // another model)
    let model_ids = |models: &HashMap<String, model::StoredModel>| -> Vec<(String, String)> {
        let mut ids: Vec<(String, String)> = models
            .iter()
            .map(|(n, m)| (n.clone(), m.content.clone()))
            .collect();
        ids.sort();
        ids
    };
    let full_because = if let Some(reason) = full_reason {
        Some(reason)
    } else if !spec.incremental {
        Some("`incremental` is not set in `[unification]`".to_string())
    } else if options.full {
        Some("a full unification was asked for".to_string())
    } else if options.train {
        Some("the match models are trained anew".to_string())
    } else if options.preview || options.sample.is_some() {
        Some("a preview matches every record".to_string())
    } else if untrained_model {
        Some("a match model is trained in this run, or was stored without its term counts (`lakecdp unify train` stores them)".to_string())
    } else {
        None
    };
    let mut closure: Option<Closure> = None;
    let mode_reason = match full_because {
        Some(reason) => reason,
        None => {
            let inputs = incremental::inputs_of(spec, &model_ids(&models))?;
            match incremental::load_state(lake, &tables, &inputs).await? {
                Err(reason) => reason,
                Ok(state) => {
                    let c = Closure::start(&tables, &offsets, &prints, state);
                    lap("state", &mut phases);
                    if c.rematched() * 2 > total {
                        MOST_REACHED.into()
                    } else {
                        closure = Some(c);
                        String::new()
                    }
                }
            }
        }
    };
    // the components of the graph of every pair found, and the values each rule and
    // model left out for their size, kept for the next run
    let mut components = UnionFind::new(total);
    let mut giant_values = incremental::GiantValues::new();
    // a run over every record that keeps state keys every record for the next
    let mut full_blocks =
        (spec.incremental && closure.is_none() && !options.preview).then(blocks::BlockIndex::new);
    let mut kept_dedupe: Vec<incremental::KeptDedupe> = Vec::new();
    if let Some(c) = closure.as_mut() {
        let search = incremental::Search {
            tables: &tables,
            bypass: &bypass,
            max_block,
            models: &models,
            always: &always,
        };
        if let Some(reason) = c.dedupe(search, &mut cache)? {
            return Ok(Attempt::Again(reason));
        }
        if reached_most(c.rematched(), total) {
            return Ok(Attempt::Again(MOST_REACHED.into()));
        }
        lap("closure (dedupe)", &mut phases);
        for (ti, t) in tables.iter().enumerate() {
            match c.kept_dedupe(ti, t.spec.dedupe.len()) {
                Ok(kept) => kept_dedupe.push(kept),
                Err(why) => return Ok(Attempt::Again(why)),
            }
        }
        lap("kept groups", &mut phases);
    }

    // 2. deduplicate within each table
    let mut deduped = Vec::with_capacity(tables.len());
    let mut overlays = Vec::with_capacity(tables.len());
    let mut refused_in_dedupe = 0u64;
    let mut held = 0u64;
    // the weak links held for review, published for a person to look at
    let mut review: Vec<ReviewPair> = Vec::new();
    // per table, whether each record's duplicate group is held together by a strong link
    let mut strong_groups: Vec<Vec<bool>> = Vec::with_capacity(tables.len());
    for (ti, t) in tables.iter().enumerate() {
        let offset = offsets[ti];
        let mut uf = UnionFind::new(t.len());
        let mut links = Links::new(t.len());
        let mut rule = vec![None; t.len()];
        // never-match overrides between two records of this table
        let here = |key: &str| t.keys.iter().position(|k| k == key).map(|r| r as u32);
        let never_here: Vec<(u32, u32)> = spec
            .overrides
            .never_match
            .iter()
            .filter(|p| p.table == t.name && p.other_table == t.name)
            .filter_map(|p| Some((here(&p.key)?, here(&p.other_key)?)))
            .collect();
        // records with the same primary key are one (in key order, they are neighbours):
        // each joins the first of its key
        let mut first = 0u32;
        for i in 1..t.len() as u32 {
            if t.keys[i as usize] == t.keys[first as usize] {
                links.join(&mut uf, &[], first, i, true, &mut 0);
                components.union(offset + first, offset + i);
            } else {
                first = i;
            }
        }
        // the records kept from the last run keep their groups and rules
        if let (Some(kept), Some(c)) = (kept_dedupe.get(ti), &closure) {
            for (r, k) in kept.iter().enumerate() {
                if let Some((first, attributed)) = k {
                    uf.union(*first, r as u32);
                    rule[r] = *attributed;
                }
            }
            for (r, k) in kept.iter().enumerate() {
                if k.is_some() && c.was_strong(offset + r as u32) {
                    let root = uf.find(r as u32) as usize;
                    links.strong[root] = true;
                }
            }
        }
        for (ri, r) in t.spec.dedupe.iter().enumerate() {
            let name = rule_name(&r.name, ri);
            let (pairs, candidates) = match &closure {
                Some(c) => {
                    let pairs = c.dedupe_rules[ti][ri].clone();
                    let n = pairs.len() as u64;
                    (pairs, n)
                }
                None => {
                    let p = prepare(&r.conditions, t, t, &bypass, &mut cache)?;
                    let mut found = pairs_of(
                        options,
                        &mut rules_on_cluster,
                        lake,
                        &name,
                        &p,
                        &|_| true,
                        &|_| true,
                        true,
                        max_block,
                    )
                    .await?;
                    incremental::note_giant(
                        &mut giant_values,
                        "dedupe",
                        (&t.name, &t.name),
                        &found.giant,
                    );
                    giant.append(&mut found.giant);
                    if let Some(index) = full_blocks.as_mut() {
                        let def = blocks::RuleDef::dedupe(&name, ri, ti, &r.conditions);
                        let rule = blocks::RuleBlocks::new(&def, &tables, &bypass);
                        index.key_all(&rule, &tables, (&p.a, &p.b), &|_| true, max_block);
                    }
                    (found.pairs, found.candidates)
                }
            };
            for &(x, y, s) in &pairs {
                components.union(offset + x, offset + y);
                if links.join(&mut uf, &never_here, x, y, true, &mut refused_in_dedupe)
                    != Join::Joined
                {
                    continue;
                }
                for r in [x, y] {
                    if rule[r as usize].is_none() {
                        rule[r as usize] = Some((ri as u16, s));
                    }
                }
            }
            rule_reports.push(RuleReport {
                table: t.name.clone(),
                kind: "dedupe",
                rule: name,
                candidates,
                pairs: pairs.len() as u64,
            });
        }
        if let Some(ms) = &t.spec.dedupe_model {
            let name = model::model_name(t, t);
            let pairs = match &closure {
                Some(c) => {
                    let pairs = c.dedupe_model[ti].clone();
                    rule_reports.push(RuleReport {
                        table: t.name.clone(),
                        kind: "dedupe",
                        rule: MODEL_RULE.into(),
                        candidates: pairs.len() as u64,
                        pairs: pairs.len() as u64,
                    });
                    pairs
                }
                None => {
                    let outcome = model::run(
                        model::ModelRun {
                            spec: ms,
                            a: t,
                            b: t,
                            same: true,
                            active_a: &|_| true,
                            active_b: &|_| true,
                            max_block,
                            stored: models.get(&name).cloned(),
                            keep_keys: full_blocks.is_some(),
                        },
                        &mut cache,
                    )?;
                    let g = &outcome.report.giant;
                    incremental::note_giant(&mut giant_values, "dedupe", (&t.name, &t.name), g);
                    if let Some(index) = full_blocks.as_mut() {
                        let blocks = blocks::ModelBlocks::new("dedupe", ms, (ti, ti), &tables);
                        index.key_all_model(&blocks, &outcome.keys, &tables);
                    }
                    note_model(
                        "dedupe",
                        (name.clone(), ms),
                        outcome,
                        (&mut rule_reports, &mut model_reports),
                        &mut giant,
                        &mut trained,
                    )
                }
            };
            let ri = t.spec.dedupe.len() as u16;
            let strong_at = ms
                .strong
                .unwrap_or(lakecdp_core::unify::DEFAULT_STRONG_LINK);
            for (x, y, p) in strongest_first(&pairs) {
                components.union(offset + x, offset + y);
                let strong = f64::from(p) >= strong_at;
                match links.join(&mut uf, &never_here, x, y, strong, &mut refused_in_dedupe) {
                    Join::Joined => {}
                    Join::Refused => continue,
                    Join::Held(why) => {
                        review.push(((ti, x, ti, y, name.clone(), p), why));
                        continue;
                    }
                }
                for r in [x, y] {
                    if rule[r as usize].is_none() {
                        rule[r as usize] = Some((ri, p));
                    }
                }
            }
        }
        held += links.held;
        strong_groups.push(
            (0..t.len() as u32)
                .map(|r| links.strong[uf.find(r) as usize])
                .collect(),
        );
        let mut winner = vec![0u32; t.len()];
        let mut group = vec![0u32; t.len()];
        let groups = uf.clusters();
        let columns = mapped_text(t);
        for members in &groups {
            let w = pick_winner(t, &columns, members)?;
            for &m in members {
                winner[m as usize] = w;
                group[m as usize] = members[0];
            }
        }
        overlays.push(column_winners(t, &groups, &winner)?);
        deduped.push(Deduped {
            winner,
            group,
            rule,
        });
    }
    // the advanced winner mode: a winner's column takes the value its own policy picks
    for (t, overlay) in tables.iter_mut().zip(overlays) {
        for (column, source) in overlay {
            t.overlay(&column, &source)?;
            cache.forget(&t.name, &column);
        }
    }
    lap("deduplicate", &mut phases);

    // the records kept from the last run keep their profiles and ids
    let mut previous: Option<merge::PreviousIds> = None;
    if let Some(c) = closure.as_mut() {
        let winners: Vec<Vec<u32>> = deduped.iter().map(|d| d.winner.clone()).collect();
        let search = incremental::Search {
            tables: &tables,
            bypass: &bypass,
            max_block,
            models: &models,
            always: &always,
        };
        if let Some(reason) = c.matches(search, &mut cache, &winners)? {
            return Ok(Attempt::Again(reason));
        }
        if reached_most(c.rematched(), total) {
            return Ok(Attempt::Again(MOST_REACHED.into()));
        }
        lap("closure (match)", &mut phases);
        // the ids of the records matched again and of the keys gone, from the state
        previous = Some(c.previous_ids(&tables));
        lap("kept ids", &mut phases);
    }

    // 3. match tables in order
    let mut uf = UnionFind::new(total);
    let mut links = Links::new(total);
    for (ti, d) in deduped.iter().enumerate() {
        for (r, w) in d.winner.iter().enumerate() {
            uf.union(offsets[ti] + *w, offsets[ti] + r as u32);
        }
        for (r, strong) in strong_groups[ti].iter().enumerate() {
            if *strong {
                let root = uf.find(offsets[ti] + r as u32) as usize;
                links.strong[root] = true;
            }
        }
    }
    let mut never = Vec::new();
    for p in &spec.overrides.never_match {
        if let (Some((ta, ra)), Some((tb, rb))) = (
            locate(&tables, &p.table, &p.key),
            locate(&tables, &p.other_table, &p.other_key),
        ) {
            never.push((offsets[ta] + ra as u32, offsets[tb] + rb as u32));
        }
    }
    let mut refused = refused_in_dedupe;
    let mut join = |uf: &mut UnionFind, a: u32, b: u32, strong: bool| -> Join {
        links.join(uf, &never, a, b, strong, &mut refused)
    };
    for &(ta, ra, tb, rb) in &always {
        let (a, b) = (offsets[ta] + ra as u32, offsets[tb] + rb as u32);
        if closure.as_ref().is_none_or(|c| c.contains(a)) {
            components.union(a, b);
        }
        join(&mut uf, a, b, true);
    }
    let mut match_pairs: Vec<MatchPair> = Vec::new();
    let mut table_reports = Vec::with_capacity(tables.len());
    let mut excluded: HashSet<u32> = HashSet::new();
    // per table and record, whether it joined a record of an earlier table
    let mut matched_of: Vec<Vec<bool>> = Vec::with_capacity(tables.len());
    for (ti, t) in tables.iter().enumerate() {
        // a record kept from the last run was matched when it was (only a winner is
        // matched, and the records of a key are one group)
        let winners = &deduped[ti].winner;
        let mut matched: Vec<bool> = match &closure {
            Some(c) => (0..t.len())
                .map(|r| {
                    !c.in_set[ti][r]
                        && winners[r] == r as u32
                        && c.was_matched(offsets[ti] + r as u32)
                })
                .collect(),
            None => vec![false; t.len()],
        };
        for (ri, r) in t.spec.match_rules.iter().enumerate() {
            let name = rule_name(&r.name, ri);
            let wi = tables
                .iter()
                .position(|o| o.name == r.with)
                .ok_or_else(|| Error::Internal(format!("unknown table {}", r.with)))?;
            let winners_a = &deduped[ti].winner;
            let winners_b = &deduped[wi].winner;
            let already = matched.clone();
            let (pairs, candidates) = match &closure {
                Some(c) => {
                    let all = &c.match_rules[ti][ri];
                    let pairs: Vec<(u32, u32, f32)> = all
                        .iter()
                        .filter(|p| winners_a[p.0 as usize] == p.0 && !already[p.0 as usize])
                        .copied()
                        .collect();
                    (pairs, all.len() as u64)
                }
                None => {
                    let p = prepare(&r.conditions, t, &tables[wi], &bypass, &mut cache)?;
                    let mut found = pairs_of(
                        options,
                        &mut rules_on_cluster,
                        lake,
                        &name,
                        &p,
                        &|i| winners_a[i] == i as u32 && !already[i],
                        &|j| winners_b[j] == j as u32,
                        false,
                        max_block,
                    )
                    .await?;
                    incremental::note_giant(
                        &mut giant_values,
                        "match",
                        (&t.name, &r.with),
                        &found.giant,
                    );
                    giant.append(&mut found.giant);
                    if let Some(index) = full_blocks.as_mut() {
                        let def = blocks::RuleDef::matching(&name, ri, (ti, wi), &r.conditions);
                        let rule = blocks::RuleBlocks::new(&def, &tables, &bypass);
                        let active = |j: usize| winners_b[j] == j as u32;
                        index.key_all(&rule, &tables, (&p.a, &p.b), &active, max_block);
                    }
                    (found.pairs, found.candidates)
                }
            };
            for &(x, y, s) in &pairs {
                components.union(offsets[ti] + x, offsets[wi] + y);
                // a pair a never-match override refused joined nothing
                if join(&mut uf, offsets[ti] + x, offsets[wi] + y, true) == Join::Joined {
                    matched[x as usize] = true;
                    match_pairs.push((ti, x, wi, y, name.clone(), s));
                }
            }
            rule_reports.push(RuleReport {
                table: t.name.clone(),
                kind: "match",
                rule: name,
                candidates,
                pairs: pairs.len() as u64,
            });
        }
        for (mi, ms) in t.spec.match_models.iter().enumerate() {
            let with = ms.with.as_deref().unwrap_or_default();
            let wi = tables
                .iter()
                .position(|o| o.name == with)
                .ok_or_else(|| Error::Internal(format!("unknown table {with}")))?;
            let name = model::model_name(t, &tables[wi]);
            let winners_a = &deduped[ti].winner;
            let winners_b = &deduped[wi].winner;
            let pairs = match &closure {
                Some(c) => {
                    let pairs: Vec<(u32, u32, f32)> = c.match_models[ti][mi]
                        .iter()
                        .filter(|p| winners_a[p.0 as usize] == p.0)
                        .copied()
                        .collect();
                    rule_reports.push(RuleReport {
                        table: t.name.clone(),
                        kind: "match",
                        rule: MODEL_RULE.into(),
                        candidates: c.match_models[ti][mi].len() as u64,
                        pairs: pairs.len() as u64,
                    });
                    pairs
                }
                None => {
                    let outcome = model::run(
                        model::ModelRun {
                            spec: ms,
                            a: t,
                            b: &tables[wi],
                            same: false,
                            active_a: &|i| winners_a[i] == i as u32,
                            active_b: &|j| winners_b[j] == j as u32,
                            max_block,
                            stored: models.get(&name).cloned(),
                            keep_keys: full_blocks.is_some(),
                        },
                        &mut cache,
                    )?;
                    let g = &outcome.report.giant;
                    incremental::note_giant(&mut giant_values, "match", (&t.name, with), g);
                    if let Some(index) = full_blocks.as_mut() {
                        let blocks = blocks::ModelBlocks::new("match", ms, (ti, wi), &tables);
                        index.key_all_model(&blocks, &outcome.keys, &tables);
                    }
                    note_model(
                        "match",
                        (name.clone(), ms),
                        outcome,
                        (&mut rule_reports, &mut model_reports),
                        &mut giant,
                        &mut trained,
                    )
                }
            };
            let strong_at = ms
                .strong
                .unwrap_or(lakecdp_core::unify::DEFAULT_STRONG_LINK);
            for (x, y, p) in strongest_first(&pairs) {
                components.union(offsets[ti] + x, offsets[wi] + y);
                let strong = f64::from(p) >= strong_at;
                match join(&mut uf, offsets[ti] + x, offsets[wi] + y, strong) {
                    Join::Joined => {
                        matched[x as usize] = true;
                        match_pairs.push((ti, x, wi, y, MODEL_RULE.to_string(), p));
                    }
                    Join::Held(why) => review.push(((ti, x, wi, y, name.clone(), p), why)),
                    Join::Refused => {}
                }
            }
        }
        let mut excluded_here = 0;
        if ti > 0 && !t.spec.include_all {
            // unmatched winners leave with their whole dedupe group (a record kept from
            // the last run stays out when it was out)
            let decided = |i: usize| closure.as_ref().is_none_or(|c| c.in_set[ti][i]);
            let unmatched: HashSet<u32> = (0..t.len())
                .filter(|&i| decided(i) && winners[i] == i as u32 && !matched[i])
                .map(|i| i as u32)
                .collect();
            for (r, w) in winners.iter().enumerate() {
                if unmatched.contains(w) {
                    excluded.insert(offsets[ti] + r as u32);
                    excluded_here += 1;
                }
            }
        }
        table_reports.push(TableReport {
            table: t.name.clone(),
            records: t.len(),
            duplicates: (0..t.len()).filter(|&i| winners[i] != i as u32).count(),
            matched: matched.iter().filter(|m| **m).count(),
            excluded: excluded_here,
        });
        matched_of.push(matched);
    }
    if refused > 0 {
        tracing::info!(refused, "joins refused by never-match overrides");
    }
    held += links.held;
    // the normalised values are not needed any more
    drop(cache);
    // the records kept from the last run keep their profiles
    if let Some(c) = &closure {
        // the first record of each kept profile, by its number in the last run
        let mut first_of: Vec<u32> = vec![u32::MAX; c.profiles()];
        let mut excluded_kept = vec![0usize; tables.len()];
        let kept = tables.iter().enumerate().flat_map(|(ti, t)| {
            (0..t.len())
                .filter(move |r| !c.in_set[ti][*r])
                .map(move |r| (ti, r))
        });
        for (ti, r) in kept {
            let g = offsets[ti] + r as u32;
            match c.old_profile(g) {
                Some(p) => match first_of[p as usize] {
                    u32::MAX => first_of[p as usize] = g,
                    f => {
                        uf.union(f, g);
                    }
                },
                None => {
                    excluded.insert(g);
                    excluded_kept[ti] += 1;
                }
            }
        }
        for (report, n) in table_reports.iter_mut().zip(excluded_kept) {
            report.excluded += n;
        }
    }
    lap("match", &mut phases);

    // 4. profiles and their ids
    let mut clusters: Vec<Vec<u32>> = uf.clusters();
    if !excluded.is_empty() {
        clusters = clusters
            .into_iter()
            .map(|c| {
                c.into_iter()
                    .filter(|r| !excluded.contains(r))
                    .collect::<Vec<_>>()
            })
            .filter(|c| !c.is_empty())
            .collect();
    }
    let cluster_stats = stats(&clusters, 10);
    // the profiles whose ids are assigned: every one, or in an incremental run those
    // that are not a kept profile
    let assigned: Vec<bool> = clusters
        .iter()
        .map(|members| {
            closure
                .as_ref()
                .is_none_or(|c| kept_id(c, members).is_none())
        })
        .collect();
    // their records' keys, written one after the other into one text
    let mut keys = String::new();
    let mut ends: Vec<usize> = Vec::new();
    for c in clusters.iter().zip(&assigned).filter(|x| *x.1).map(|x| x.0) {
        for &r in c {
            let ti = offsets.partition_point(|&o| o <= r) - 1;
            let row = (r - offsets[ti]) as usize;
            keys.push_str(&tables[ti].name);
            keys.push('\u{1}');
            keys.push_str(&tables[ti].keys[row]);
            ends.push(keys.len());
        }
    }
    let mut at = 0;
    let mut start = 0;
    let key_refs: Vec<Vec<&str>> = clusters
        .iter()
        .zip(&assigned)
        .map(|(c, keyed)| {
            c.iter()
                .filter(|_| *keyed)
                .map(|_| {
                    let k = &keys[start..ends[at]];
                    start = ends[at];
                    at += 1;
                    k
                })
                .collect()
        })
        .collect();
    let mode = match &closure {
        Some(c) => UnifyMode::Incremental {
            changed: c.changed,
            deleted: c.deleted,
            rematched: c.rematched(),
            kept: total - c.rematched(),
        },
        None => UnifyMode::Full {
            reason: mode_reason,
        },
    };
    if options.preview {
        lap("cluster", &mut phases);
        if options.train {
            for (name, ms, m, terms, names) in &trained {
                model::save(lake, name, ms, m, terms, names.as_ref(), "preview").await?;
            }
        }
        return Ok(Attempt::Done(Box::new(UnifyReport {
            run_id: None,
            tables: table_reports,
            rules: rule_reports,
            models: model_reports,
            held_for_review: held,
            giant,
            profiles: clusters.len(),
            clusters: cluster_stats,
            id_changes: Vec::new(),
            phases,
            rules_on_cluster,
            mode,
        })));
    }
    let previous = match previous {
        Some(p) => p,
        None => merge::previous_ids(lake).await?,
    };
    let mut winners = vec![false; total];
    for (ti, d) in deduped.iter().enumerate() {
        for (r, w) in d.winner.iter().enumerate() {
            winners[offsets[ti] as usize + r] = *w == r as u32;
        }
    }
    let mut writer = CdmFolderWriter::begin(lake, Process::Unification, options.retention).await?;
    writer.describe("Unified customer profiles");
    let run = writer.run_id().clone();
    let mut n = 0u64;
    let stamp = run.to_string().replace(['T', 'Z', '-'], "");
    let mut new_id = move || {
        n += 1;
        format!("{stamp}{n:08}")
    };
    let assignment = match &closure {
        None => assign(&key_refs, &previous, &mut new_id),
        Some(c) => assign_changed(c, (&clusters, &assigned), &key_refs, &previous, &mut new_id),
    };
    drop(key_refs);
    drop(keys);
    drop(previous);
    lap("cluster", &mut phases);

    // 5. merge and publish
    let outputs = merge::Outputs {
        tables: &tables,
        offsets: &offsets,
        clusters: &clusters,
        ids: &assignment.ids,
        spec,
        winners: &winners,
    };
    let result = async {
        merge::write_customer(&mut writer, &outputs).await?;
        merge::write_alternate_keys(&mut writer, &outputs).await?;
        // the pairs of the records kept from the last run are published again
        let (kept_match_pairs, kept_review_pairs) = match &closure {
            Some(c) => kept_pairs(lake, &tables, c).await?,
            None => (Vec::new(), Vec::new()),
        };
        write_match_pairs(&mut writer, &tables, &match_pairs, kept_match_pairs).await?;
        write_review_pairs(&mut writer, &tables, &review, kept_review_pairs).await?;
        let previous_history = merge::previous_history(lake).await?;
        merge::write_history(&mut writer, previous_history, &assignment.history, &run).await?;
        for (t, d) in tables.iter().zip(&deduped) {
            write_dedupe(&mut writer, t, d).await?;
        }
        Ok::<(), Error>(())
    }
    .await;
    if let Err(e) = result {
        if let Err(cleanup) = writer.abort().await {
            tracing::warn!(error = %cleanup, "could not remove the files of the failed run");
        }
        return Err(e);
    }
    let published = writer.commit().await?;
    let run_text = published.run_id.to_string();
    // the models this run trained are kept for the next runs
    for (name, ms, m, terms, names) in &trained {
        model::save(lake, name, ms, m, terms, names.as_ref(), &run_text).await?;
        if spec.incremental {
            // the state names each model by what is stored
            if let Some(stored) = model::load(lake, name, ms, names.as_ref()).await? {
                models.insert(name.clone(), stored);
            }
        }
    }
    // and what the next run needs to match only what changes
    if spec.incremental {
        let component: Vec<u64> = match &closure {
            Some(c) => c.components(&mut components),
            None => (0..total as u32)
                .map(|g| u64::from(components.find(g)))
                .collect(),
        };
        let inputs = incremental::inputs_of(spec, &model_ids(&models))?;
        // (a run that keeps state always has an index; an empty one makes the next run
        // a full one)
        let empty_blocks = blocks::BlockIndex::new();
        let mut record_ids: Vec<Option<&str>> = vec![None; total];
        for (members, id) in clusters.iter().zip(&assignment.ids) {
            for &r in members {
                record_ids[r as usize] = Some(id.as_str());
            }
        }
        let saved = incremental::Saved {
            run: &run_text,
            inputs: &inputs,
            tables: &tables,
            prints: &prints,
            offsets: &offsets,
            component: &component,
            strong: &strong_groups,
            giant: closure.as_ref().map_or(&giant_values, |c| c.giant()),
            blocks: match (&closure, &full_blocks) {
                (Some(c), _) => c.blocks(),
                (None, Some(index)) => index,
                (None, None) => &empty_blocks,
            },
            ids: &record_ids,
            groups: &deduped
                .iter()
                .map(|d| (&d.group[..], &d.rule[..]))
                .collect::<Vec<_>>(),
            matched: &matched_of,
            winners: &deduped.iter().map(|d| &d.winner[..]).collect::<Vec<_>>(),
        };
        if let Err(e) = incremental::save_state(lake, saved).await {
            tracing::warn!(error = %e, "the unification state was not stored: the next run matches every record");
        }
    }
    lap("merge", &mut phases);
    Ok(Attempt::Done(Box::new(UnifyReport {
        run_id: Some(published.run_id),
        tables: table_reports,
        rules: rule_reports,
        models: model_reports,
        held_for_review: held,
        giant,
        profiles: clusters.len(),
        clusters: cluster_stats,
        id_changes: assignment.history,
        phases,
        mode,
        rules_on_cluster,
    })))
}

/// The CustomerIds of an incremental run. A profile of records kept from the last run is
/// the profile it was (every record of a profile belongs to one component, and a
/// component is kept or matched again whole), so it keeps its id and changes nothing in
/// the history; the profiles of the records matched again are assigned ids from the
/// previous ids of their own records and of the keys gone, exactly as a run over every
/// profile assigns them (no other profile holds a key of those ids). `assigned` tells, per
/// profile, whether it is one of those (not a kept profile).
fn assign_changed(
    c: &Closure,
    (clusters, assigned): (&[Vec<u32>], &[bool]),
    key_refs: &[Vec<&str>],
    previous: &merge::PreviousIds,
    new_id: &mut dyn FnMut() -> String,
) -> lakecdp_match::ids::Assignment {
    let mut ids: Vec<Option<String>> = vec![None; clusters.len()];
    let mut again: Vec<usize> = Vec::new();
    for (i, (members, anew)) in clusters.iter().zip(assigned).enumerate() {
        // a kept profile has its id (see `kept_id`); the others are assigned theirs
        match members.first().and_then(|g| c.old_id(*g)).filter(|_| !anew) {
            Some(id) => ids[i] = Some(id.to_string()),
            None => again.push(i),
        }
    }
    let refs: Vec<Vec<&str>> = again.iter().map(|i| key_refs[*i].clone()).collect();
    let anew = assign(&refs, previous, new_id);
    for (i, id) in again.into_iter().zip(anew.ids) {
        ids[i] = Some(id);
    }
    lakecdp_match::ids::Assignment {
        ids: ids.into_iter().map(Option::unwrap_or_default).collect(),
        history: anew.history,
    }
}

/// The rows of the last run's `ConflationMatchPairs` and `ConflationReviewPairs` whose
/// records are both kept by an incremental run (neither matched again nor gone).
async fn kept_pairs(
    lake: &Lake,
    tables: &[TableData],
    c: &Closure,
) -> Result<(Vec<RecordBatch>, Vec<RecordBatch>)> {
    let set: HashMap<&str, hashbrown::HashSet<&str>> = tables
        .iter()
        .enumerate()
        .map(|(ti, t)| {
            let keys = (0..t.len())
                .filter(|r| c.in_set[ti][*r])
                .map(|r| t.keys[r].as_str())
                .collect();
            (t.name.as_str(), keys)
        })
        .collect();
    let is_dropped = |table: &str, key: &str| {
        c.gone.get(table).is_some_and(|g| g.contains(key))
            || set.get(table).is_some_and(|s| s.contains(key))
    };
    let matches = incremental::kept_pairs(lake, "ConflationMatchPairs", &is_dropped).await?;
    let reviews = incremental::kept_pairs(lake, "ConflationReviewPairs", &is_dropped).await?;
    Ok((matches, reviews))
}

/// The id of a profile of records all kept from the last run (None: a record of it is
/// matched again, or it had no id).
fn kept_id<'c>(c: &'c Closure, members: &[u32]) -> Option<&'c str> {
    if members.iter().any(|g| c.contains(*g)) {
        return None;
    }
    c.old_id(*members.first()?)
}

/// Whether a closure that grew to `rematched` of `total` records is better matched in full:
/// past half of them, and past the size at which comparing records one by one costs more
/// than indexing them all.
fn reached_most(rematched: usize, total: usize) -> bool {
    rematched * 2 > total && rematched > 50_000
}

/// Why an incremental run matches every record when a change reaches most of them.
const MOST_REACHED: &str = "more than half the records changed or are reached by a change";

/// A model trained in this run: its file name, declaration, parameters and the term
/// counts it weighed with.
type Trained = (
    String,
    lakecdp_core::ModelSpec,
    lakecdp_match::model::Model,
    Vec<Option<std::sync::Arc<model::TermCounts>>>,
    Option<[String; 2]>,
);

/// The stored model `name` trained for `ms`, unless the run trains anew.
async fn stored_model(
    lake: &Lake,
    options: &UnifyOptions,
    name: &str,
    ms: &lakecdp_core::ModelSpec,
    names: Option<&[String; 2]>,
) -> Result<Option<model::StoredModel>> {
    if options.train {
        return Ok(None);
    }
    model::load(lake, name, ms, names).await
}

/// Record what a model run did: its rule line, its report, its giant blocks and, when
/// it trained, the model to store. Returns its pairs.
fn note_model(
    kind: &'static str,
    (name, ms): (String, &lakecdp_core::ModelSpec),
    outcome: model::ModelOutcome,
    (rules, models): (&mut Vec<RuleReport>, &mut Vec<model::ModelReport>),
    giant: &mut Vec<GiantBlock>,
    trained: &mut Vec<Trained>,
) -> Vec<(u32, u32, f32)> {
    rules.push(RuleReport {
        table: outcome.report.table.clone(),
        kind,
        rule: MODEL_RULE.into(),
        candidates: outcome.report.candidates,
        pairs: outcome.pairs.len() as u64,
    });
    giant.extend(outcome.report.giant.iter().cloned());
    if outcome.report.trained {
        trained.push((
            name,
            ms.clone(),
            outcome.report.model.clone(),
            outcome.terms.clone(),
            outcome.crossed.clone(),
        ));
    }
    models.push(outcome.report);
    outcome.pairs
}

/// Which profiles a strong link holds together (kept for the roots of a union-find).
struct Links {
    strong: Vec<bool>,
    /// Weak links refused.
    held: u64,
}

/// What became of a link offered to [`Links::join`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Join {
    /// The records are in one set now (joined here or before).
    Joined,
    /// A never-match override refused it.
    Refused,
    /// A weak link held for review, and why.
    Held(Held),
}

/// Why a weak link was held for review.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    /// Both records are in profiles of more than one record.
    WouldMerge,
    /// One record would join a profile that only weak links hold.
    WouldGrowWeak,
}

impl Held {
    fn reason(self) -> &'static str {
        match self {
            Held::WouldMerge => "a weak link would merge two profiles",
            Held::WouldGrowWeak => "a weak link would grow a profile that only weak links hold",
        }
    }
}

impl Links {
    fn new(n: usize) -> Self {
        Links {
            strong: vec![false; n],
            held: 0,
        }
    }

    /// Whether a weak link may join the sets of `a` and `b` (it attaches one record to
    /// a set a strong link holds together, or pairs two single records), or why not.
    fn weak_may_join(&self, uf: &mut UnionFind, a: u32, b: u32) -> Result<(), Held> {
        let (ra, rb) = (uf.find(a), uf.find(b));
        if ra == rb {
            return Ok(());
        }
        let (sa, sb) = (uf.set_size(a), uf.set_size(b));
        if sa > 1 && sb > 1 {
            return Err(Held::WouldMerge);
        }
        if (sa == 1 && (sb == 1 || self.strong[rb as usize]))
            || (sb == 1 && self.strong[ra as usize])
        {
            Ok(())
        } else {
            Err(Held::WouldGrowWeak)
        }
    }

    /// Join `a` and `b` through a link of this strength, keeping the strength of the
    /// joined set, unless the link is held (weak) or a never-match override refuses it.
    fn join(
        &mut self,
        uf: &mut UnionFind,
        never: &[(u32, u32)],
        a: u32,
        b: u32,
        strong: bool,
        refused: &mut u64,
    ) -> Join {
        if !strong {
            if let Err(why) = self.weak_may_join(uf, a, b) {
                self.held += 1;
                return Join::Held(why);
            }
        }
        let was = self.strong[uf.find(a) as usize] || self.strong[uf.find(b) as usize];
        if !join_unless_never(uf, never, a, b, refused) {
            return Join::Refused;
        }
        let root = uf.find(a) as usize;
        self.strong[root] = was || strong;
        Join::Joined
    }
}

/// The pairs of a rule: on the cluster the run was given, or here.
#[allow(clippy::too_many_arguments)]
async fn pairs_of(
    options: &UnifyOptions,
    on_cluster: &mut usize,
    lake: &Lake,
    rule: &str,
    p: &rules::Prepared,
    active_a: &(dyn Fn(usize) -> bool + Sync),
    active_b: &(dyn Fn(usize) -> bool + Sync),
    same: bool,
    max_block: usize,
) -> Result<rules::Found> {
    #[cfg(feature = "distributed")]
    if let Some(cluster) = &options.cluster {
        *on_cluster += 1;
        return distributed::find_pairs_on(
            cluster,
            lake,
            rule,
            &p.conditions,
            &p.a,
            &p.b,
            active_a,
            active_b,
            same,
            max_block,
        )
        .await;
    }
    #[cfg(not(feature = "distributed"))]
    let _ = (options, lake, on_cluster);
    Ok(find_pairs(
        rule,
        &p.conditions,
        &p.a,
        &p.b,
        active_a,
        active_b,
        same,
        max_block,
    ))
}

/// Model pairs strongest first (then by record), so weak links meet the profiles the
/// strong ones built, in an order that depends on the records alone.
fn strongest_first(pairs: &[(u32, u32, f32)]) -> Vec<(u32, u32, f32)> {
    let mut sorted = pairs.to_vec();
    sorted.sort_by(|x, y| y.2.total_cmp(&x.2).then((x.0, x.1).cmp(&(y.0, y.1))));
    sorted
}

/// Join the sets of `a` and `b`, unless that would put the two records of a never-match
/// pair in one set (counted in `refused`). Returns false when the join was refused
/// (true when the records are together now, joined here or before).
fn join_unless_never(
    uf: &mut UnionFind,
    never: &[(u32, u32)],
    a: u32,
    b: u32,
    refused: &mut u64,
) -> bool {
    if !never.is_empty() {
        let (ra, rb) = (uf.find(a), uf.find(b));
        if ra != rb {
            let blocked = never.iter().any(|&(p, q)| {
                let (rp, rq) = (uf.find(p), uf.find(q));
                (rp == ra && rq == rb) || (rp == rb && rq == ra)
            });
            if blocked {
                *refused += 1;
                return false;
            }
        }
    }
    uf.union(a, b);
    true
}

/// Refuse declarations that cannot run, naming the table and rule.
fn validate(spec: &UnificationSpec) -> Result<()> {
    let mut problems = Vec::new();
    if spec.tables.is_empty() {
        problems.push("`unification.tables` is empty: list the tables that take part".into());
    }
    let mut seen: Vec<String> = Vec::new();
    for (ti, t) in spec.tables.iter().enumerate() {
        let name = t.qualified();
        if seen.contains(&name) {
            problems.push(format!("table `{name}` is listed twice"));
        }
        if ti == 0 && !t.match_models.is_empty() {
            problems.push(format!(
                "`{name}` is the primary (first) table: it has no earlier table to match with; move its match_model to a later table"
            ));
        }
        if ti == 0 && !t.match_rules.is_empty() {
            problems.push(format!(
                "`{name}` is the primary (first) table: it has no earlier table to match with; move its rules to the later tables"
            ));
        }
        for (ri, r) in t.match_rules.iter().enumerate() {
            if !seen.contains(&r.with) {
                problems.push(format!(
                    "`{name}` match rule {}: `with = \"{}\"` must name an earlier table ({})",
                    ri + 1,
                    r.with,
                    if seen.is_empty() {
                        "there is none".to_string()
                    } else {
                        seen.join(", ")
                    }
                ));
            }
            if r.conditions.is_empty() {
                problems.push(format!("`{name}` match rule {} has no conditions", ri + 1));
            }
        }
        for (ri, r) in t.dedupe.iter().enumerate() {
            if r.conditions.is_empty() {
                problems.push(format!("`{name}` dedupe rule {} has no conditions", ri + 1));
            }
        }
        if let Some(m) = &t.dedupe_model {
            problems.extend(model::validate(&name, m, true));
        }
        let mut models_with = Vec::new();
        for m in &t.match_models {
            problems.extend(model::validate(&name, m, false));
            if let Some(with) = &m.with {
                if !seen.contains(with) {
                    problems.push(format!(
                        "`{name}` match_model: `with = \"{with}\"` must name an earlier table ({})",
                        if seen.is_empty() {
                            "there is none".to_string()
                        } else {
                            seen.join(", ")
                        }
                    ));
                }
                if models_with.contains(&with) {
                    problems.push(format!(
                        "`{name}` has two match models with `{with}`: one per earlier table"
                    ));
                }
                models_with.push(with);
            }
        }
        seen.push(name);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::Source(format!(
            "the unification declaration cannot run: {}",
            problems.join("; ")
        )))
    }
}

/// The winner of a duplicate group by the table's policy; ties go to the largest
/// primary key.
/// (`columns`: the table's mapped columns, as [`mapped_text`] gives them.)
fn pick_winner(t: &TableData, columns: &[&StringArray], members: &[u32]) -> Result<u32> {
    pick((t, columns), &t.spec.dedupe_winner, members, None)?
        .ok_or_else(|| Error::Internal("an empty duplicate group".into()))
}

/// The text of each mapped column of a table, to weigh how filled in a record is.
fn mapped_text(t: &TableData) -> Vec<&StringArray> {
    let text = t.spec.columns.iter().filter_map(|c| t.text.get(&c.name));
    text.map(|a| a.as_ref()).collect()
}

/// The member of a duplicate group that `policy` picks; with `filled_in`, only among the
/// members where that column is not empty (None when there is none). Ties go to the
/// largest primary key.
fn pick(
    (t, columns): (&TableData, &[&StringArray]),
    policy: &WinnerPolicy,
    members: &[u32],
    filled_in: Option<&str>,
) -> Result<Option<u32>> {
    let filled_in =
        |r: &u32| filled_in.is_none_or(|c| t.value(c, *r as usize).is_some_and(|v| !v.is_empty()));
    // (a group of one under the default policy: nothing to weigh)
    if let ([only], WinnerPolicy::MostFilled) = (members, policy) {
        return Ok(Some(*only).filter(filled_in));
    }
    let filled = |r: u32| {
        let r = r as usize;
        let filled_in = |a: &&&StringArray| a.is_valid(r) && !a.value(r).is_empty();
        columns.iter().filter(filled_in).count()
    };
    let key = |r: u32| t.keys[r as usize].as_str();
    let candidates = members.iter().copied().filter(filled_in);
    let best = match policy {
        WinnerPolicy::MostFilled => {
            candidates.max_by(|a, b| filled(*a).cmp(&filled(*b)).then(key(*a).cmp(key(*b))))
        }
        WinnerPolicy::MostRecent(c) | WinnerPolicy::LeastRecent(c) => {
            let latest = matches!(policy, WinnerPolicy::MostRecent(_));
            let array = t.typed.get(c).ok_or_else(|| {
                Error::Source(format!(
                    "`{}`: the winner column `{c}` is not a column of the table",
                    t.name
                ))
            })?;
            candidates.max_by(|a, b| {
                let va = datafusion::scalar::ScalarValue::try_from_array(array, *a as usize).ok();
                let vb = datafusion::scalar::ScalarValue::try_from_array(array, *b as usize).ok();
                let order = match (va.filter(|v| !v.is_null()), vb.filter(|v| !v.is_null())) {
                    (Some(x), Some(y)) => {
                        let o = x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal);
                        if latest {
                            o
                        } else {
                            o.reverse()
                        }
                    }
                    (Some(_), None) => std::cmp::Ordering::Greater,
                    (None, Some(_)) => std::cmp::Ordering::Less,
                    (None, None) => std::cmp::Ordering::Equal,
                };
                order.then(key(*a).cmp(key(*b)))
            })
        }
    };
    Ok(best)
}

/// The advanced winner mode: per column of `t.spec.dedupe_columns`, the row whose value
/// each row takes (a winner takes the value of the member its column's policy picks;
/// every other row keeps its own). Returns (column, source rows) for each column and
/// its group.
fn column_winners(
    t: &TableData,
    groups: &[Vec<u32>],
    winner: &[u32],
) -> Result<Vec<(String, arrow::array::UInt32Array)>> {
    let mut out = Vec::new();
    let columns = mapped_text(t);
    for c in &t.spec.dedupe_columns {
        let mut source: Vec<u32> = (0..t.len() as u32).collect();
        for members in groups.iter().filter(|m| m.len() > 1) {
            let w = winner[members[0] as usize];
            if let Some(p) = pick((t, &columns), &c.policy, members, Some(&c.name))? {
                source[w as usize] = p;
            }
        }
        let source = arrow::array::UInt32Array::from(source);
        for name in std::iter::once(&c.name).chain(&c.group) {
            out.push((name.clone(), source.clone()));
        }
    }
    Ok(out)
}

/// The columns of pairs of records: the two records (source, table, key), the rule
/// that joined them (named `rule`) and its score (named `score`).
fn pair_columns(
    tables: &[TableData],
    pairs: &[&MatchPair],
    rule: &str,
    score: &str,
) -> (Vec<Field>, Vec<ArrayRef>) {
    let mut fields: Vec<Field> = [
        "SourceA", "TableA", "KeyA", "SourceB", "TableB", "KeyB", rule,
    ]
    .iter()
    .map(|n| Field::new(*n, DataType::Utf8, false))
    .collect();
    fields.push(Field::new(score, DataType::Float32, false));
    let text = |f: &dyn Fn(&MatchPair) -> String| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(pairs.iter().map(|p| f(p))))
    };
    let columns: Vec<ArrayRef> = vec![
        text(&|p| tables[p.0].spec.source.clone()),
        text(&|p| tables[p.0].spec.table.clone()),
        text(&|p| tables[p.0].keys[p.1 as usize].clone()),
        text(&|p| tables[p.2].spec.source.clone()),
        text(&|p| tables[p.2].spec.table.clone()),
        text(&|p| tables[p.2].keys[p.3 as usize].clone()),
        text(&|p| p.4.clone()),
        Arc::new(Float32Array::from_iter_values(pairs.iter().map(|p| p.5))),
    ];
    (fields, columns)
}

/// The rows kept from the last run's table, cast to this run's schema, then this run's.
fn with_kept(
    schema: &Arc<Schema>,
    kept: Vec<RecordBatch>,
    batch: RecordBatch,
) -> Result<Vec<RecordBatch>> {
    let mut batches = Vec::with_capacity(kept.len() + 1);
    for b in kept {
        let columns = schema
            .fields()
            .iter()
            .map(|f| {
                let c = b.column_by_name(f.name()).ok_or_else(|| {
                    Error::Internal(format!("a kept pair row has no `{}`", f.name()))
                })?;
                Ok(cast(c, f.data_type())?)
            })
            .collect::<Result<Vec<_>>>()?;
        batches.push(RecordBatch::try_new(schema.clone(), columns)?);
    }
    batches.push(batch);
    Ok(batches)
}

async fn write_match_pairs(
    writer: &mut CdmFolderWriter,
    tables: &[TableData],
    pairs: &[MatchPair],
    kept: Vec<RecordBatch>,
) -> Result<()> {
    let pairs: Vec<&MatchPair> = pairs.iter().collect();
    let (fields, columns) = pair_columns(tables, &pairs, "Rule", "Score");
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    let batches = with_kept(&schema, kept, batch)?;
    writer
        .write_entity(
            "ConflationMatchPairs",
            Some("pairs of records joined by match rules, with the rule and its score"),
            schema,
            futures::stream::iter(batches.into_iter().map(Ok::<_, String>)),
        )
        .await?;
    Ok(())
}

/// `ConflationReviewPairs`: the weak links of match models held for review, strongest
/// first, with the model, the probability and why each was held.
async fn write_review_pairs(
    writer: &mut CdmFolderWriter,
    tables: &[TableData],
    pairs: &[ReviewPair],
    kept: Vec<RecordBatch>,
) -> Result<()> {
    let mut pairs: Vec<&ReviewPair> = pairs.iter().collect();
    pairs.sort_by(|x, y| y.0 .5.total_cmp(&x.0 .5));
    let records: Vec<&MatchPair> = pairs.iter().map(|(p, _)| p).collect();
    let (mut fields, mut columns) = pair_columns(tables, &records, "Model", "Probability");
    fields.push(Field::new("Reason", DataType::Utf8, false));
    columns.push(Arc::new(StringArray::from_iter_values(
        pairs.iter().map(|(_, why)| why.reason()),
    )));
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    // the rows kept from the last run among this run's, strongest first
    let all = arrow::compute::concat_batches(&schema, &with_kept(&schema, kept, batch)?)?;
    let order = arrow::compute::sort_to_indices(
        all.column(7),
        Some(arrow::compute::SortOptions {
            descending: true,
            nulls_first: false,
        }),
        None,
    )?;
    let batches = [Ok::<_, String>(arrow::compute::take_record_batch(
        &all, &order,
    )?)];
    writer
        .write_entity(
            "ConflationReviewPairs",
            Some("weak links of match models held for review: records a model finds likely the same customer, not joined because the link would merge two profiles or grow one that only weak links hold"),
            schema,
            futures::stream::iter(batches),
        )
        .await?;
    Ok(())
}

async fn write_dedupe(writer: &mut CdmFolderWriter, t: &TableData, d: &Deduped) -> Result<()> {
    let schema = Arc::new(Schema::new(vec![
        Field::new(&t.primary_key, DataType::Utf8, false),
        Field::new("Deduplication_GroupId", DataType::Utf8, false),
        Field::new("Deduplication_WinnerId", DataType::Utf8, false),
        Field::new("Deduplication_Rule", DataType::Utf8, true),
        Field::new("Deduplication_Score", DataType::Float32, true),
    ]));
    let key = |r: u32| t.keys[r as usize].as_str();
    let mut rules: Vec<String> = t
        .spec
        .dedupe
        .iter()
        .enumerate()
        .map(|(i, r)| rule_name(&r.name, i))
        .collect();
    rules.push(MODEL_RULE.to_string());
    let n = t.len();
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from_iter_values(t.keys.iter())),
            Arc::new(StringArray::from_iter_values(
                (0..n).map(|i| key(d.group[i])),
            )),
            Arc::new(StringArray::from_iter_values(
                (0..n).map(|i| key(d.winner[i])),
            )),
            Arc::new(StringArray::from_iter(
                (0..n).map(|i| d.rule[i].map(|(r, _)| rules[r as usize].as_str())),
            )),
            Arc::new(Float32Array::from_iter(
                (0..n).map(|i| d.rule[i].map(|(_, s)| s)),
            )),
        ],
    )?;
    writer
        .write_entity(
            &format!("Deduplication_{}_{}", t.spec.source, t.spec.table),
            Some("each record's duplicate group and winner"),
            schema,
            futures::stream::iter([Ok::<_, String>(batch)]),
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use arrow::array::{ArrayRef, StringArray};
    use lakecdp_core::{SemanticColumn, SemanticType, UnifyTableSpec, WinnerPolicy};

    use super::data::TableData;

    fn table(policy: WinnerPolicy) -> TableData {
        let column = |values: &[Option<&str>]| Arc::new(StringArray::from(values.to_vec()));
        let email = column(&[Some("a@x"), Some("a@x"), None]);
        let phone = column(&[None, Some("555"), Some("556")]);
        let seen = column(&[Some("2024-03-01"), Some("2024-01-01"), Some("2024-02-01")]);
        let mut text = HashMap::new();
        let mut typed: HashMap<String, ArrayRef> = HashMap::new();
        for (name, a) in [("Email", email), ("Phone", phone), ("Seen", seen)] {
            typed.insert(name.into(), a.clone());
            text.insert(name.to_string(), a);
        }
        let col = |name: &str, semantic| SemanticColumn {
            name: name.into(),
            semantic,
            rename: None,
        };
        TableData {
            spec: UnifyTableSpec {
                source: "S".into(),
                table: "T".into(),
                columns: vec![
                    col("Email", SemanticType::Email),
                    col("Phone", SemanticType::Phone),
                ],
                dedupe: vec![],
                dedupe_winner: policy,
                dedupe_columns: vec![],
                match_rules: vec![],
                include_all: true,
                dedupe_model: None,
                match_models: vec![],
            },
            name: "S.T".into(),
            primary_key: "Id".into(),
            keys: vec!["k1".into(), "k2".into(), "k3".into()],
            typed,
            text,
        }
    }

    #[test]
    fn duplicate_groups_pick_their_winner_by_policy() {
        let all = [0, 1, 2];
        let pick_winner =
            |t: &TableData, members: &[u32]| super::pick_winner(t, &super::mapped_text(t), members);
        // most filled: k2 has both columns
        assert_eq!(
            pick_winner(&table(WinnerPolicy::MostFilled), &all).unwrap(),
            1
        );
        // a tie goes to the largest primary key: k1 and k3 have one value each
        assert_eq!(
            pick_winner(&table(WinnerPolicy::MostFilled), &[0, 2]).unwrap(),
            2
        );
        // a group of one
        assert_eq!(
            pick_winner(&table(WinnerPolicy::MostFilled), &[2]).unwrap(),
            2
        );
        let recent = table(WinnerPolicy::MostRecent("Seen".into()));
        assert_eq!(pick_winner(&recent, &all).unwrap(), 0);
        let oldest = table(WinnerPolicy::LeastRecent("Seen".into()));
        assert_eq!(pick_winner(&oldest, &all).unwrap(), 1);
        let unknown = table(WinnerPolicy::MostRecent("Nope".into()));
        assert!(pick_winner(&unknown, &all)
            .unwrap_err()
            .to_string()
            .contains("`Nope` is not a column"));
    }
}
