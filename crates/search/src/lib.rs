//! lakecdp's customer search: a tantivy index over an environment's unified profiles,
//! one document per CustomerId, which also stores each profile's card so a card is one
//! lookup.
//!
//! - **Typo-tolerant.** Every word of a query must match a word of the profile exactly,
//!   by prefix (the last word, as one types) or within an edit distance that grows with
//!   the word's length (one edit from 4 letters, two from 8; a swap of two letters is
//!   one edit). Exact words rank above near ones. A whole-value key (an email, a
//!   phone's digits, a CustomerId) matches as one term.
//! - **Built whole, then swapped.** A [`Shelf`] builds an index under a hidden folder
//!   and renames it to its stamp (the versions of the published tables it was built
//!   from) only once every document is committed; [`Shelf::open`] opens only renamed
//!   folders, so a reader never sees a half-built index.
//! - No IO but the index's own folder; what goes into a document is the caller's.
#![warn(missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use tantivy::collector::{Count, TopDocs};
use tantivy::query::{BooleanQuery, BoostQuery, FuzzyTermQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value, STORED, STRING,
};
use tantivy::tokenizer::{
    AsciiFoldingFilter, LowerCaser, RemoveLongFilter, SimpleTokenizer, TextAnalyzer,
};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

/// The analyzer of the searchable text: words, lower-cased, accents folded.
const ANALYZER: &str = "lakecdp_folded";

/// Words longer than this are not indexed (no name, city or email part is).
const LONGEST_WORD: usize = 64;

/// At most this many words of a query are used.
const QUERY_WORDS: usize = 8;

/// At most this many characters of a query are read.
const QUERY_CHARS: usize = 256;

/// The indexing memory budget of a build (tantivy splits it over its threads).
const WRITER_BUDGET: usize = 192 * 1024 * 1024;

/// Why the index could not be built, opened or read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The index itself failed.
    #[error("the search index: {0}")]
    Index(#[from] tantivy::TantivyError),
    /// Its folder could not be read or written.
    #[error("the search index folder {path}: {source}")]
    Io {
        /// The folder or file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A stamp that cannot name a folder.
    #[error("`{0}` cannot name a search index (letters, digits, `.`, `-` and `_` only)")]
    Stamp(String),
}

/// This crate's results.
pub type Result<T> = std::result::Result<T, Error>;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One profile to index.
#[derive(Debug, Clone, Default)]
pub struct CustomerDoc {
    /// Its CustomerId.
    pub id: String,
    /// The values searched by word: names, email, phone, address, city...
    pub text: Vec<String>,
    /// Whole values matched as one term (emails, phones, alternate keys); each is
    /// normalised with [`keys_of`].
    pub keys: Vec<String>,
    /// What a result row shows (the caller's JSON).
    pub summary: String,
    /// The profile's card (the caller's JSON).
    pub card: String,
}

/// The terms a whole value is matched by: the value lower-cased and trimmed, and,
/// when it reads as a phone number (at least five digits, only digits, spaces and
/// `+-.()/`), its digits alone.
pub fn keys_of(value: &str) -> Vec<String> {
    let v = value.trim().to_lowercase();
    if v.is_empty() {
        return Vec::new();
    }
    let digits: String = v.chars().filter(char::is_ascii_digit).collect();
    let phone_like = digits.len() >= 5
        && v.chars()
            .all(|c| c.is_ascii_digit() || " +-.()/".contains(c));
    let mut keys = vec![v];
    if phone_like && digits != keys[0] {
        keys.push(digits);
    }
    keys
}

#[derive(Debug, Clone, Copy)]
struct Fields {
    id: Field,
    text: Field,
    key: Field,
    summary: Field,
    card: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let words = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(ANALYZER)
            .set_index_option(IndexRecordOption::WithFreqs),
    );
    let fields = Fields {
        id: b.add_text_field("id", STRING | STORED),
        text: b.add_text_field("text", words),
        key: b.add_text_field("key", STRING),
        summary: b.add_text_field("summary", STORED),
        card: b.add_text_field("card", STORED),
    };
    (b.build(), fields)
}

fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(LONGEST_WORD))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build()
}

fn fields_of(index: &Index) -> Result<Fields> {
    let schema = index.schema();
    let get = |name: &str| {
        schema.get_field(name).map_err(|_| {
            Error::Index(tantivy::TantivyError::SchemaError(format!(
                "the index has no `{name}` field (built by another version of lakecdp)"
            )))
        })
    };
    Ok(Fields {
        id: get("id")?,
        text: get("text")?,
        key: get("key")?,
        summary: get("summary")?,
        card: get("card")?,
    })
}

/// The folder holding an environment's built indexes, one subfolder per stamp.
#[derive(Debug, Clone)]
pub struct Shelf {
    base: PathBuf,
}

static BUILDS: AtomicU64 = AtomicU64::new(0);

fn check_stamp(stamp: &str) -> Result<()> {
    let ok = !stamp.is_empty()
        && stamp.len() <= 128
        && !stamp.starts_with('.')
        && stamp
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::Stamp(stamp.to_string()))
    }
}

impl Shelf {
    /// The shelf in `base` (created when the first index is built).
    pub fn new(base: impl Into<PathBuf>) -> Self {
        Self { base: base.into() }
    }

    /// Its folder.
    pub fn path(&self) -> &Path {
        &self.base
    }

    /// Start building the index of `stamp` in a hidden folder of its own.
    pub fn build(&self, stamp: &str) -> Result<Builder> {
        check_stamp(stamp)?;
        std::fs::create_dir_all(&self.base).map_err(io(&self.base))?;
        let partial = self.base.join(format!(
            ".building-{stamp}-{}-{}",
            std::process::id(),
            BUILDS.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&partial).map_err(io(&partial))?;
        let (schema, fields) = schema();
        let index = Index::builder().schema(schema).create_in_dir(&partial)?;
        index.tokenizers().register(ANALYZER, analyzer());
        let writer = index.writer(WRITER_BUDGET)?;
        Ok(Builder {
            partial,
            done: self.base.join(stamp),
            writer: Some(writer),
            fields,
            docs: 0,
        })
    }

    /// The built index of `stamp`, if there is one.
    pub fn open(&self, stamp: &str) -> Result<Option<SearchIndex>> {
        check_stamp(stamp)?;
        let dir = self.base.join(stamp);
        if !dir.join("meta.json").is_file() {
            return Ok(None);
        }
        SearchIndex::open(&dir).map(Some)
    }

    /// The stamps of the built indexes, and the hidden folders of builds that did
    /// not finish (a build in another process, or one that crashed).
    pub fn stamps(&self) -> Result<Vec<String>> {
        let entries = match std::fs::read_dir(&self.base) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&self.base)(e)),
        };
        let mut stamps = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io(&self.base))?;
            if let Some(name) = entry.file_name().to_str() {
                if !name.starts_with('.') && entry.path().join("meta.json").is_file() {
                    stamps.push(name.to_string());
                }
            }
        }
        stamps.sort();
        Ok(stamps)
    }

    /// Remove every built index but `keep`'s (an index still open elsewhere stays
    /// readable: its files are memory-mapped, and removal only unlinks them).
    pub fn remove_all_but(&self, keep: &str) -> Result<usize> {
        let mut removed = 0;
        for stamp in self.stamps()? {
            if stamp != keep {
                let dir = self.base.join(&stamp);
                std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// An index being built; [`Builder::finish`] makes it visible.
pub struct Builder {
    partial: PathBuf,
    done: PathBuf,
    writer: Option<IndexWriter<TantivyDocument>>,
    fields: Fields,
    docs: u64,
}

/// What a finished build made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    /// Its folder.
    pub path: PathBuf,
    /// Documents indexed.
    pub docs: u64,
    /// Its size on disk.
    pub bytes: u64,
}

impl Builder {
    /// Add one profile.
    pub fn add(&mut self, customer: &CustomerDoc) -> Result<()> {
        let f = self.fields;
        let mut doc = TantivyDocument::default();
        doc.add_text(f.id, &customer.id);
        doc.add_text(f.text, &customer.id);
        for t in &customer.text {
            doc.add_text(f.text, t);
        }
        for k in keys_of(&customer.id)
            .into_iter()
            .chain(customer.keys.iter().flat_map(|k| keys_of(k)))
        {
            doc.add_text(f.key, &k);
        }
        doc.add_text(f.summary, &customer.summary);
        doc.add_text(f.card, &customer.card);
        let writer = self.writer.as_ref().ok_or_else(|| {
            Error::Index(tantivy::TantivyError::InvalidArgument(
                "the build has finished".into(),
            ))
        })?;
        writer.add_document(doc)?;
        self.docs += 1;
        Ok(())
    }

    /// Documents added so far.
    pub fn docs(&self) -> u64 {
        self.docs
    }

    /// Commit every document, merge the segments into one, and rename the folder to
    /// its stamp. When another build of the same stamp finished first, its index is
    /// kept and this one is dropped.
    pub fn finish(mut self) -> Result<Built> {
        let mut writer = self.writer.take().ok_or_else(|| {
            Error::Index(tantivy::TantivyError::InvalidArgument(
                "the build has finished".into(),
            ))
        })?;
        writer.commit()?;
        let segments = writer.index().searchable_segment_ids()?;
        if segments.len() > 1 {
            writer.merge(&segments).wait()?;
        }
        writer.wait_merging_threads()?;
        match std::fs::rename(&self.partial, &self.done) {
            Ok(()) => {}
            Err(_) if self.done.join("meta.json").is_file() => {
                let _ = std::fs::remove_dir_all(&self.partial);
            }
            Err(e) => return Err(io(&self.done)(e)),
        }
        Ok(Built {
            bytes: folder_bytes(&self.done)?,
            path: self.done.clone(),
            docs: self.docs,
        })
    }
}

impl Drop for Builder {
    fn drop(&mut self) {
        // an unfinished build leaves nothing behind
        if self.writer.is_some() {
            self.writer = None;
            let _ = std::fs::remove_dir_all(&self.partial);
        }
    }
}

fn folder_bytes(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let meta = entry.metadata().map_err(io(dir))?;
        if meta.is_file() {
            total += meta.len();
        }
    }
    Ok(total)
}

/// One result of a search.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// The CustomerId.
    pub id: String,
    /// How well it matched (higher is better).
    pub score: f32,
    /// The summary stored with it.
    pub summary: String,
}

/// A page of results.
#[derive(Debug, Clone, PartialEq)]
pub struct Hits {
    /// How many profiles matched in all.
    pub total: usize,
    /// This page, best first.
    pub hits: Vec<Hit>,
}

/// A built index, open for searching (cheap to share between threads).
#[derive(Clone)]
pub struct SearchIndex {
    index: Index,
    reader: IndexReader,
    fields: Fields,
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchIndex")
            .field("docs", &self.docs())
            .finish()
    }
}

/// How far a word may be from a profile's word: none below four letters, one from
/// four, two from eight.
fn edits(word: &str) -> u8 {
    match word.chars().count() {
        0..=3 => 0,
        4..=7 => 1,
        _ => 2,
    }
}

impl SearchIndex {
    /// Open the index in `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        let index = Index::open_in_dir(dir)?;
        index.tokenizers().register(ANALYZER, analyzer());
        let fields = fields_of(&index)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(Self {
            index,
            reader,
            fields,
        })
    }

    /// How many profiles it holds.
    pub fn docs(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// The words of a query as the index holds them.
    fn words(&self, query: &str) -> Vec<String> {
        let mut analyzer = analyzer();
        let mut stream = analyzer.token_stream(query);
        let mut words = Vec::new();
        while stream.advance() && words.len() < QUERY_WORDS {
            words.push(stream.token().text.clone());
        }
        words
    }

    fn query(&self, query: &str) -> Option<Box<dyn Query>> {
        let query: String = query.chars().take(QUERY_CHARS).collect();
        let f = self.fields;
        let words = self.words(&query);
        let mut any: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for k in keys_of(&query) {
            let exact = TermQuery::new(Term::from_field_text(f.key, &k), IndexRecordOption::Basic);
            any.push((
                Occur::Should,
                Box::new(BoostQuery::new(Box::new(exact), 20.0)),
            ));
        }
        let last = words.len().saturating_sub(1);
        let mut every: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for (i, w) in words.iter().enumerate() {
            let term = Term::from_field_text(f.text, w);
            let mut one: Vec<(Occur, Box<dyn Query>)> = vec![(
                Occur::Should,
                Box::new(BoostQuery::new(
                    Box::new(TermQuery::new(term.clone(), IndexRecordOption::WithFreqs)),
                    4.0,
                )),
            )];
            let d = edits(w);
            if d > 0 {
                one.push((
                    Occur::Should,
                    Box::new(FuzzyTermQuery::new(term.clone(), d, true)),
                ));
            }
            if i == last && w.chars().count() >= 2 {
                one.push((
                    Occur::Should,
                    Box::new(FuzzyTermQuery::new_prefix(term, 0, true)),
                ));
            }
            every.push((Occur::Must, Box::new(BooleanQuery::new(one))));
        }
        if !every.is_empty() {
            any.push((Occur::Should, Box::new(BooleanQuery::new(every))));
        }
        (!any.is_empty()).then(|| Box::new(BooleanQuery::new(any)) as Box<dyn Query>)
    }

    /// The profiles matching `query`, `limit` of them from `offset`, best first (ties
    /// in CustomerId order).
    pub fn search(&self, query: &str, offset: usize, limit: usize) -> Result<Hits> {
        let Some(q) = self.query(query) else {
            return Ok(Hits {
                total: 0,
                hits: Vec::new(),
            });
        };
        let searcher = self.reader.searcher();
        let (top, total) = searcher.search(
            &q,
            &(TopDocs::with_limit(limit.max(1)).and_offset(offset), Count),
        )?;
        let mut hits = Vec::with_capacity(top.len());
        for (score, address) in top.into_iter().take(limit) {
            let doc: TantivyDocument = searcher.doc(address)?;
            hits.push(Hit {
                id: text_of(&doc, self.fields.id),
                score,
                summary: text_of(&doc, self.fields.summary),
            });
        }
        hits.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
        Ok(Hits { total, hits })
    }

    /// The card stored for a CustomerId.
    pub fn card(&self, id: &str) -> Result<Option<String>> {
        let searcher = self.reader.searcher();
        let q = TermQuery::new(
            Term::from_field_text(self.fields.id, id),
            IndexRecordOption::Basic,
        );
        let top = searcher.search(&q, &TopDocs::with_limit(1))?;
        match top.first() {
            Some((_, address)) => {
                let doc: TantivyDocument = searcher.doc(*address)?;
                Ok(Some(text_of(&doc, self.fields.card)))
            }
            None => Ok(None),
        }
    }

    /// The index's own handle (for statistics).
    pub fn index(&self) -> &Index {
        &self.index
    }
}

fn text_of(doc: &TantivyDocument, field: Field) -> String {
    doc.get_first(field)
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(id: &str, name: &str, email: &str, phone: &str, city: &str) -> CustomerDoc {
        CustomerDoc {
            id: id.into(),
            text: vec![name.into(), email.into(), phone.into(), city.into()],
            keys: vec![email.into(), phone.into()],
            summary: format!("{{\"name\":\"{name}\"}}"),
            card: format!("{{\"id\":\"{id}\",\"name\":\"{name}\"}}"),
        }
    }

    fn people() -> Vec<CustomerDoc> {
        vec![
            person(
                "c-1",
                "Jonathan Smith",
                "jon.smith@example.com",
                "+1 (555) 010-1234",
                "Seattle",
            ),
            person(
                "c-2",
                "Johanna Smyth",
                "jo@smyth.example",
                "555 010 9999",
                "Tacoma",
            ),
            person(
                "c-3",
                "Zoë Müller",
                "zoe@mueller.example",
                "+49 30 1234567",
                "Berlin",
            ),
            person(
                "c-4",
                "Jonathan Smithers",
                "js@example.org",
                "555 222 3333",
                "Portland",
            ),
            person(
                "c-5",
                "Ana Lima",
                "ana@lima.example",
                "+55 11 5555 0000",
                "São Paulo",
            ),
        ]
    }

    fn built(dir: &Path) -> SearchIndex {
        let shelf = Shelf::new(dir);
        let mut b = shelf.build("u1-a1").unwrap();
        for p in people() {
            b.add(&p).unwrap();
        }
        let done = b.finish().unwrap();
        assert_eq!(done.docs, 5);
        assert!(done.bytes > 0);
        shelf.open("u1-a1").unwrap().unwrap()
    }

    fn ids(hits: &Hits) -> Vec<&str> {
        hits.hits.iter().map(|h| h.id.as_str()).collect()
    }

    #[test]
    fn typos_find_the_profile_and_exact_words_rank_first() {
        let dir = tempfile::tempdir().unwrap();
        let index = built(dir.path());
        // one swapped pair of letters and one wrong letter
        let hits = index.search("Jonahtan Smiht", 0, 10).unwrap();
        assert_eq!(ids(&hits)[0], "c-1", "{hits:?}");
        // the exact surname ranks its owner above the near one
        let hits = index.search("smith", 0, 10).unwrap();
        assert_eq!(ids(&hits)[0], "c-1", "{hits:?}");
        assert!(
            ids(&hits).contains(&"c-2"),
            "Smyth is one edit away: {hits:?}"
        );
        // accents are folded both ways
        assert_eq!(ids(&index.search("zoe muller", 0, 10).unwrap()), ["c-3"]);
        assert_eq!(ids(&index.search("Sao Paulo", 0, 10).unwrap()), ["c-5"]);
        // nothing near enough
        assert_eq!(index.search("Xavier", 0, 10).unwrap().total, 0);
    }

    #[test]
    fn whole_values_match_as_keys() {
        let dir = tempfile::tempdir().unwrap();
        let index = built(dir.path());
        assert_eq!(
            ids(&index.search("JON.SMITH@example.com", 0, 10).unwrap())[0],
            "c-1"
        );
        // a phone however it is written
        assert_eq!(ids(&index.search("15550101234", 0, 10).unwrap()), ["c-1"]);
        assert_eq!(ids(&index.search("c-4", 0, 10).unwrap())[0], "c-4");
    }

    #[test]
    fn the_last_word_matches_as_a_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let index = built(dir.path());
        let hits = index.search("jonathan smithe", 0, 10).unwrap();
        assert_eq!(ids(&hits)[0], "c-4", "{hits:?}");
        assert_eq!(ids(&index.search("portl", 0, 10).unwrap()), ["c-4"]);
    }

    #[test]
    fn pages_cover_every_result_once() {
        let dir = tempfile::tempdir().unwrap();
        let index = built(dir.path());
        // three phones hold the word 555, and one starts a word with it
        let all = index.search("555", 0, 10).unwrap();
        assert_eq!(all.total, 4, "{all:?}");
        assert_eq!(all.hits[3].id, "c-5", "a prefix ranks below whole words");
        let mut paged = Vec::new();
        for page in 0..4 {
            let p = index.search("555", page, 1).unwrap();
            assert_eq!(p.total, 4);
            paged.extend(p.hits.into_iter().map(|h| h.id));
        }
        paged.sort();
        assert_eq!(paged, ["c-1", "c-2", "c-4", "c-5"]);
    }

    #[test]
    fn a_card_is_one_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let index = built(dir.path());
        assert_eq!(
            index.card("c-3").unwrap().as_deref(),
            Some("{\"id\":\"c-3\",\"name\":\"Zoë Müller\"}")
        );
        assert_eq!(index.card("c-9").unwrap(), None);
        assert_eq!(index.card("c").unwrap(), None, "ids match whole");
    }

    #[test]
    fn an_unfinished_build_is_never_opened_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let shelf = Shelf::new(dir.path());
        let mut b = shelf.build("u2").unwrap();
        b.add(&people()[0]).unwrap();
        assert!(shelf.open("u2").unwrap().is_none());
        assert!(shelf.stamps().unwrap().is_empty());
        drop(b);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn old_indexes_are_removed_and_bad_stamps_refused() {
        let dir = tempfile::tempdir().unwrap();
        let shelf = Shelf::new(dir.path());
        for stamp in ["u1", "u2"] {
            let mut b = shelf.build(stamp).unwrap();
            b.add(&people()[0]).unwrap();
            b.finish().unwrap();
        }
        assert_eq!(shelf.stamps().unwrap(), ["u1", "u2"]);
        let old = shelf.open("u1").unwrap().unwrap();
        assert_eq!(shelf.remove_all_but("u2").unwrap(), 1);
        assert_eq!(shelf.stamps().unwrap(), ["u2"]);
        // an index open before its removal still answers
        assert_eq!(old.search("jonathan", 0, 5).unwrap().total, 1);
        for bad in ["", "../x", ".hidden", "a/b"] {
            assert!(matches!(shelf.build(bad), Err(Error::Stamp(_))), "{bad}");
        }
    }

    #[test]
    fn keys_of_reads_phones_as_digits() {
        assert_eq!(keys_of(" A@B.com "), ["a@b.com"]);
        assert_eq!(
            keys_of("+1 (555) 010-1234"),
            ["+1 (555) 010-1234", "15550101234"]
        );
        assert_eq!(keys_of("12345"), ["12345"]);
        assert_eq!(keys_of("c-1234567"), ["c-1234567"]);
        assert!(keys_of("  ").is_empty());
    }
}
