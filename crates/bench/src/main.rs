//! `lakecdp-bench`: generates sample data (and, later, runs benchmarks).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use lakecdp_bench::ingest::{self, PhaseResult};
use lakecdp_bench::refresh::{self, ProcessTime};
use lakecdp_bench::retail::{self, RetailConfig, Summary, DEFAULT_SEED};
use lakecdp_bench::serve::{self, AuthKind, CatalogKind, ServeConfig, ServeFigures};

#[derive(Debug, Parser)]
#[command(
    name = "lakecdp-bench",
    version,
    about = "Sample data and benchmarks for lakecdp"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate the retail sample sources (CRM, shop, loyalty, orders) and their ground truth.
    Retail(RetailArgs),
    /// Load a generated CSV file of several GB into a lake, against DataFusion's own
    /// CSV-to-Parquet COPY of the same file; prints throughput and peak memory.
    Ingest(IngestArgs),
    /// One measured phase of `ingest`, run in its own process (prints one JSON line).
    #[command(hide = true)]
    IngestPhase(PhaseArgs),
    /// Unify generated records (the people of several cultures, or the retail sample)
    /// with their project's rules; prints
    /// precision, recall and F1 against the truth, candidate pairs, time per phase and
    /// peak memory.
    Unify(UnifyArgs),
    /// The measured unification, run in its own process (prints one JSON line).
    #[command(hide = true)]
    UnifyPhase(UnifyPhaseArgs),
    /// Refresh a whole project (every source's ingestion, unification and whatever else
    /// it declares) of generated people, or the retail quickstart, each run in its own
    /// process on a fresh copy of the project folder; prints the seconds of every
    /// process, the wall time and the peak memory of each run.
    Refresh(RefreshArgs),
    /// One measured refresh through lakecdp-app, run in its own process (prints one JSON
    /// line).
    #[command(hide = true)]
    RefreshRun(RefreshRunArgs),
    /// Refresh one project with a `lakecdp` binary twice, on fresh copies: on the local
    /// engine, then on a cluster of that binary's processes (a scheduler and N executors
    /// on 127.0.0.1); prints both refreshes' times, every process's peak memory, the
    /// shuffle bytes, and whether every output table holds the same rows.
    Cluster(ClusterArgs),
    /// Serve the API (lakecdp-server, in this process on 127.0.0.1) over a refreshed
    /// retail quickstart and read it with many concurrent keep-alive clients,
    /// alternating a run and an environment; prints requests per second and latency
    /// percentiles per route. Fails when any response is not 200 OK.
    Serve(ServeArgs),
    /// Customer search and the customer card through the server over refreshed people:
    /// the index's build time and size, then many concurrent clients alternating typo
    /// searches and cards; prints latency percentiles per route. Fails when any
    /// response is not 200 OK.
    Search(SearchArgs),
}

#[derive(Debug, Args)]
struct ClusterArgs {
    /// The `lakecdp` binary (a release build) that refreshes and runs the cluster.
    #[arg(long, value_name = "PATH")]
    binary: PathBuf,
    /// Working folder: the generated people (kept between runs), the copies and logs.
    #[arg(long, value_name = "DIR", default_value = "target/bench-refresh")]
    dir: PathBuf,
    /// Records of the people data.
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    records: usize,
    /// Seed of the people data.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_SEED)]
    seed: u64,
    /// Refresh the retail quickstart's folder instead of the people.
    #[arg(long)]
    retail: bool,
    /// The retail quickstart's project folder.
    #[arg(long, value_name = "DIR", default_value = refresh::RETAIL_EXAMPLE)]
    retail_dir: PathBuf,
    /// Executor processes.
    #[arg(long, value_name = "N", default_value_t = 2,
          value_parser = clap::value_parser!(u32).range(1..))]
    executors: u32,
    /// Task slots of each executor.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..))]
    slots: u32,
}

#[derive(Debug, Args)]
struct SearchArgs {
    /// Working folder of the generated people (kept between runs).
    #[arg(long, value_name = "DIR", default_value = "target/bench-refresh")]
    dir: PathBuf,
    /// Records of the people data.
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    records: usize,
    /// Seed of the people data.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_SEED)]
    seed: u64,
    /// Concurrent clients, each with its own keep-alive connection.
    #[arg(long, value_name = "N", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..))]
    clients: u32,
    /// Seconds the clients send requests.
    #[arg(long, value_name = "S", default_value_t = 30.0)]
    seconds: f64,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// The server's catalog: `sqlite` (a file in a temporary folder) or a
    /// `postgresql://` URL of a server, on which a fresh database is created (through
    /// its `postgres` database) and dropped at the end.
    #[arg(long, value_name = "CATALOG", default_value = "sqlite",
          value_parser = CatalogKind::parse)]
    catalog: CatalogKind,
    /// Concurrent clients, each with its own keep-alive connection.
    #[arg(long, value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..))]
    clients: u32,
    /// Seconds the clients send requests.
    #[arg(long, value_name = "S", default_value_t = 30.0)]
    seconds: f64,
    /// How the clients authenticate: a Viewer API token, or the administrator's session.
    #[arg(long, value_name = "AUTH", default_value = "token")]
    auth: AuthArg,
    /// Scale of the retail sample refreshed first (1 is 45,000 customer records).
    #[arg(long, value_name = "F", default_value_t = 0.1)]
    scale: f64,
    /// Seed of the retail sample.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_SEED)]
    seed: u64,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum AuthArg {
    Token,
    Session,
}

#[derive(Debug, Args)]
struct RefreshArgs {
    /// Working folder: the generated project folder (kept between runs, generated again
    /// only when `--records` or `--seed` change) and the fresh copy each run refreshes.
    #[arg(long, value_name = "DIR", default_value = "target/bench-refresh")]
    dir: PathBuf,
    /// Records of the people data (both sources together).
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    records: usize,
    /// Seed of the people data.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_SEED)]
    seed: u64,
    /// Measured runs, each printed.
    #[arg(long, value_name = "K", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Run this `lakecdp` binary's `refresh --apply --create-container` instead of the
    /// refresh through lakecdp-app in this one, on the same project folder.
    #[arg(long, value_name = "PATH")]
    binary: Option<PathBuf>,
    /// Refresh the retail quickstart (a fresh copy of `--retail-dir`) instead of the
    /// people.
    #[arg(long)]
    retail: bool,
    /// The retail quickstart's project folder.
    #[arg(long, value_name = "DIR", default_value = refresh::RETAIL_EXAMPLE)]
    retail_dir: PathBuf,
}

#[derive(Debug, Args)]
struct RefreshRunArgs {
    #[arg(long)]
    project: PathBuf,
}

#[derive(Debug, Args)]
struct UnifyArgs {
    /// Working folder (the data and the lake are kept between runs).
    #[arg(long, value_name = "DIR", default_value = "target/bench-unify")]
    dir: PathBuf,
    /// The data: `people` (several cultures, two sources) or `retail` (the quickstart's
    /// sample at `--scale`).
    #[arg(long, value_name = "DATA", default_value = "people")]
    data: DataArg,
    /// Records of the people data (both sources together).
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    records: usize,
    /// Scale of the retail sample: 1 is 45,000 customer records, 22 about 1,000,000.
    #[arg(long, value_name = "F", default_value_t = 22.0)]
    scale: f64,
    /// Seed of the sample.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_SEED)]
    seed: u64,
    /// How records are matched: the project's `rules`, the match models of
    /// `people/models.toml` alone (`model`), or `both`.
    #[arg(long, value_name = "HOW", default_value = "rules")]
    matching: MatchingArg,
    /// Train the match models anew instead of using the ones stored by an earlier run.
    #[arg(long)]
    train: bool,
    /// Then change N records of the people (half added, half changed), load them and
    /// unify again incrementally, then in full, and compare the two (the data is
    /// generated anew by the next run).
    #[arg(long, value_name = "N", default_value_t = 0)]
    incremental: usize,
}

#[derive(Debug, Args)]
struct UnifyPhaseArgs {
    #[arg(long)]
    dir: PathBuf,
    #[arg(long)]
    data: DataArg,
    #[arg(long, default_value = "rules")]
    matching: MatchingArg,
    #[arg(long)]
    train: bool,
    /// Match every record (no incremental run).
    #[arg(long)]
    full: bool,
    /// Keep the state an incremental run needs (`incremental = true`).
    #[arg(long)]
    keep_state: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum MatchingArg {
    Rules,
    Model,
    Both,
    /// The three, one after the other on the same data, side by side.
    All,
}

impl MatchingArg {
    fn matching(self) -> lakecdp_bench::unify::Matching {
        match self {
            MatchingArg::Rules => lakecdp_bench::unify::Matching::Rules,
            MatchingArg::Model => lakecdp_bench::unify::Matching::Model,
            MatchingArg::Both | MatchingArg::All => lakecdp_bench::unify::Matching::Both,
        }
    }

    fn name(self) -> &'static str {
        match self {
            MatchingArg::Rules => "rules",
            MatchingArg::Model => "model",
            MatchingArg::Both => "both",
            MatchingArg::All => "all",
        }
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum DataArg {
    People,
    Retail,
}

impl DataArg {
    fn dataset(self) -> lakecdp_bench::unify::Dataset {
        match self {
            DataArg::People => lakecdp_bench::unify::Dataset::People,
            DataArg::Retail => lakecdp_bench::unify::Dataset::Retail,
        }
    }

    fn name(self) -> &'static str {
        match self {
            DataArg::People => "people",
            DataArg::Retail => "retail",
        }
    }
}

#[derive(Debug, Args)]
struct IngestArgs {
    /// Working folder: the generated file and every phase's output (kept between runs;
    /// the file is generated again only when its size changes).
    #[arg(long, value_name = "DIR", default_value = "target/bench-ingest")]
    dir: PathBuf,
    /// Size of the generated CSV file, in GB.
    #[arg(long, value_name = "GB", default_value_t = 2.0)]
    gb: f64,
    /// Seed of the generated file.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_SEED)]
    seed: u64,
}

#[derive(Debug, Args)]
struct PhaseArgs {
    #[arg(long, value_enum)]
    phase: ingest::Phase,
    #[arg(long)]
    csv: PathBuf,
    #[arg(long)]
    dir: PathBuf,
}

#[derive(Debug, Args)]
struct RetailArgs {
    /// Folder to write the files into (created when missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Seed of every random choice; the same seed gives the same bytes.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_SEED)]
    seed: u64,
    /// Multiplies the default row counts (1 gives about 12 MB of files).
    #[arg(long, value_name = "F", default_value_t = 1.0)]
    scale: f64,
    /// Write no deliberately malformed rows.
    #[arg(long)]
    no_malformed: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Retail(args) => run_retail(&args),
        Command::Ingest(args) => run_ingest(&args),
        Command::IngestPhase(args) => run_phase(&args),
        Command::Unify(args) => run_unify(&args),
        Command::UnifyPhase(args) => run_unify_phase(&args),
        Command::Refresh(args) => run_refresh(&args),
        Command::RefreshRun(args) => run_refresh_run(&args),
        Command::Cluster(args) => run_cluster(&args),
        Command::Serve(args) => run_serve(&args),
        Command::Search(args) => run_search(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_retail(args: &RetailArgs) -> anyhow::Result<()> {
    let config = RetailConfig {
        malformed_rows: !args.no_malformed,
        ..RetailConfig::scaled(args.seed, args.scale)?
    };
    let summary = retail::generate(&config, &args.out)
        .with_context(|| format!("generating the retail sample into {}", args.out.display()))?;
    print!("{}", render(&summary, &args.out.display().to_string()));
    Ok(())
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn run_phase(args: &PhaseArgs) -> anyhow::Result<()> {
    let result = runtime()?.block_on(ingest::run_phase(args.phase, &args.csv, &args.dir))?;
    println!("{}", serde_json::to_string(&result)?);
    Ok(())
}

fn run_ingest(args: &IngestArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let dir = args.dir.canonicalize()?;
    let csv = ingest::csv_path(&dir);
    let target = (args.gb * 1e9) as u64;
    let stamp = dir.join("orders.csv.params");
    let params = format!("{target} {}", args.seed);
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(params.as_str()) || !csv.exists() {
        eprintln!("generating {} ({:.1} GB)", csv.display(), args.gb);
        let started = std::time::Instant::now();
        let (rows, bytes) = ingest::generate_orders(&csv, target, args.seed)?;
        std::fs::write(&stamp, &params)?;
        eprintln!(
            "  {rows} rows, {bytes} bytes in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    let bytes = std::fs::metadata(&csv)?.len();
    let exe = std::env::current_exe()?;
    let mut results: Vec<PhaseResult> = Vec::new();
    for phase in [
        ingest::Phase::Datafusion,
        ingest::Phase::Lakecdp,
        ingest::Phase::LakecdpKeyed,
    ] {
        eprintln!("{}", phase.name());
        let output = std::process::Command::new(&exe)
            .args(["ingest-phase", "--phase"])
            .arg(
                clap::ValueEnum::to_possible_value(&phase)
                    .map_or_else(String::new, |v| v.get_name().to_string()),
            )
            .arg("--csv")
            .arg(&csv)
            .arg("--dir")
            .arg(&dir)
            .stderr(std::process::Stdio::inherit())
            .output()?;
        if !output.status.success() {
            anyhow::bail!("phase `{}` failed ({})", phase.name(), output.status);
        }
        let line = String::from_utf8_lossy(&output.stdout);
        let result: PhaseResult = serde_json::from_str(line.trim())
            .with_context(|| format!("reading the result of `{}`: {line}", phase.name()))?;
        eprintln!("  {:.1} s", result.seconds);
        results.push(result);
    }
    print!("{}", render_ingest(bytes, &results));
    Ok(())
}

fn run_unify_phase(args: &UnifyPhaseArgs) -> anyhow::Result<()> {
    let result = runtime()?.block_on(lakecdp_bench::unify::run(
        &args.dir,
        args.data.dataset(),
        args.matching.matching(),
        args.train,
        args.full,
        args.keep_state,
    ))?;
    println!("{}", serde_json::to_string(&result)?);
    Ok(())
}

/// Run the measured unification in a child process.
fn unify_child(
    args: &UnifyArgs,
    dir: &std::path::Path,
    train: bool,
    full: bool,
) -> anyhow::Result<lakecdp_bench::unify::UnifyResult> {
    unify_child_with(args, args.matching, dir, train, full)
}

/// [`unify_child`] matching by `matching`.
fn unify_child_with(
    args: &UnifyArgs,
    matching: MatchingArg,
    dir: &std::path::Path,
    train: bool,
    full: bool,
) -> anyhow::Result<lakecdp_bench::unify::UnifyResult> {
    let output = std::process::Command::new(std::env::current_exe()?)
        .args(["unify-phase", "--data", args.data.name(), "--matching"])
        .arg(matching.name())
        .args(train.then_some("--train"))
        .args(full.then_some("--full"))
        .args((args.incremental > 0).then_some("--keep-state"))
        .arg("--dir")
        .arg(dir)
        .stderr(std::process::Stdio::inherit())
        .output()?;
    if !output.status.success() {
        anyhow::bail!("the unification failed ({})", output.status);
    }
    let line = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(line.trim())
        .with_context(|| format!("reading the unification's result: {line}"))
}

fn run_unify(args: &UnifyArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let dir = args.dir.canonicalize()?;
    let data = dir.join("data");
    let stamp = dir.join("data.params");
    let params = match args.data {
        DataArg::People => format!("people {} {}", args.records, args.seed),
        DataArg::Retail => format!("{} {}", args.scale, args.seed),
    };
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(params.as_str()) {
        let _ = std::fs::remove_dir_all(&data);
        match args.data {
            DataArg::People => {
                eprintln!("generating {} records of people", args.records);
                let s = lakecdp_bench::people::generate(
                    &lakecdp_bench::people::PeopleConfig {
                        seed: args.seed,
                        records: args.records,
                    },
                    &data,
                )?;
                eprintln!(
                    "  {} persons, {} CRM and {} web records, {} duplicates",
                    s.persons, s.crm, s.web, s.duplicates
                );
            }
            DataArg::Retail => {
                eprintln!("generating the retail sample at scale {}", args.scale);
                let config = RetailConfig::scaled(args.seed, args.scale)?;
                let summary = retail::generate(&config, &data)?;
                eprintln!(
                    "  {} files, {}",
                    summary.files.len(),
                    size(summary.total_bytes())
                );
            }
        }
        std::fs::write(&stamp, &params)?;
        // a new sample starts a new lake
        let _ = std::fs::remove_dir_all(dir.join("lake"));
        let _ = std::fs::remove_file(dir.join("environment-id"));
    }
    let rt = runtime()?;
    eprintln!("loading the sources");
    let seconds = rt.block_on(lakecdp_bench::unify::load(&dir, args.data.dataset()))?;
    eprintln!("  {seconds:.1} s");
    if matches!(args.matching, MatchingArg::All) {
        return compare_matchings(args, &dir);
    }
    eprintln!("unifying");
    let result = unify_child(args, &dir, args.train, true)?;
    let predicted = rt.block_on(lakecdp_bench::unify::profiles(&dir))?;
    let truth = lakecdp_bench::unify::truth(&dir)?;
    let s = lakecdp_bench::score::score(&truth, &predicted);
    let phases = result
        .phases
        .iter()
        .map(|(p, t)| format!("{p} {t:.2} s"))
        .collect::<Vec<_>>()
        .join(", ");
    println!(
        "\nunify benchmark: {} data, matching by {}, {} records -> {} profiles ({} true persons)\n",
        args.data.name(),
        args.matching.name(),
        result.records,
        result.profiles,
        s.persons
    );
    let mut rows = vec![
        ["measure".to_string(), "value".into()],
        ["wall time".into(), format!("{:.2} s", result.seconds)],
        ["phases".into(), phases],
        ["peak memory".into(), size(result.peak_rss)],
        ["candidate pairs".into(), result.candidates.to_string()],
        ["matched pairs".into(), result.pairs.to_string()],
        [
            "pairwise precision / recall / F1".into(),
            format!(
                "{:.4} / {:.4} / {:.4}",
                s.pairwise.precision,
                s.pairwise.recall,
                s.pairwise.f1()
            ),
        ],
        [
            "cluster precision / recall / F1".into(),
            format!(
                "{:.4} / {:.4} / {:.4}",
                s.cluster.precision,
                s.cluster.recall,
                s.cluster.f1()
            ),
        ],
    ];
    for m in &result.models {
        rows.push([
            format!("model {}", m.tables),
            format!(
                "{} candidates, {} matched ({}), {}",
                m.candidates,
                m.matched,
                m.thresholds
                    .iter()
                    .map(|(p, n)| format!("{n} at {p}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                if m.trained {
                    format!("trained in this run in {:.2} s", m.training_seconds)
                } else {
                    format!("stored (trained in {:.2} s)", m.training_seconds)
                }
            ),
        ]);
    }
    print!("{}", table(&rows, &[false, false]));
    if args.incremental > 0 {
        incremental_run(args, &dir, &rt, &predicted)?;
    }
    Ok(())
}

/// Unify the same records by rules, by the match models alone (trained in that run when
/// `--train` is given or none is stored) and by both (with the stored models), and
/// print the three side by side, the models' training apart.
fn compare_matchings(args: &UnifyArgs, dir: &std::path::Path) -> anyhow::Result<()> {
    if args.incremental > 0 {
        anyhow::bail!(
            "--incremental measures one way of matching: give --matching rules, model or both"
        );
    }
    let rt = runtime()?;
    let truth = lakecdp_bench::unify::truth(dir)?;
    let mut columns = Vec::new();
    for (matching, train) in [
        (MatchingArg::Rules, false),
        (MatchingArg::Model, args.train),
        (MatchingArg::Both, false),
    ] {
        eprintln!("unifying by {}", matching.name());
        let result = unify_child_with(args, matching, dir, train, true)?;
        let predicted = rt.block_on(lakecdp_bench::unify::profiles(dir))?;
        let s = lakecdp_bench::score::score(&truth, &predicted);
        columns.push((matching, result, s));
    }
    let persons = columns.first().map_or(0, |c| c.2.persons);
    println!(
        "\nunify benchmark: {} data, {} records ({persons} true persons), three ways of matching\n",
        args.data.name(),
        columns.first().map_or(0, |c| c.1.records),
    );
    let mut rows = vec![vec![
        "measure".to_string(),
        "rules".into(),
        "model".into(),
        "both".into(),
    ]];
    let row = |name: &str,
               f: &dyn Fn(
        &lakecdp_bench::unify::UnifyResult,
        &lakecdp_bench::score::Scores,
    ) -> String| {
        let mut r = vec![name.to_string()];
        r.extend(columns.iter().map(|(_, u, s)| f(u, s)));
        r
    };
    rows.push(row("wall time", &|u, _| format!("{:.2} s", u.seconds)));
    rows.push(row("peak memory", &|u, _| size(u.peak_rss)));
    rows.push(row("profiles", &|u, _| u.profiles.to_string()));
    rows.push(row("candidate pairs", &|u, _| u.candidates.to_string()));
    rows.push(row("  of which the models'", &|u, _| {
        u.models
            .iter()
            .map(|m| m.candidates)
            .sum::<u64>()
            .to_string()
    }));
    rows.push(row("pairwise precision", &|_, s| {
        format!("{:.4}", s.pairwise.precision)
    }));
    rows.push(row("pairwise recall", &|_, s| {
        format!("{:.4}", s.pairwise.recall)
    }));
    rows.push(row("pairwise F1", &|_, s| {
        format!("{:.4}", s.pairwise.f1())
    }));
    rows.push(row("cluster precision", &|_, s| {
        format!("{:.4}", s.cluster.precision)
    }));
    rows.push(row("cluster recall", &|_, s| {
        format!("{:.4}", s.cluster.recall)
    }));
    rows.push(row("cluster F1", &|_, s| format!("{:.4}", s.cluster.f1())));
    rows.push(row("models' training", &|u, _| {
        if u.models.is_empty() {
            return "-".into();
        }
        let seconds: f64 = u.models.iter().map(|m| m.training_seconds).sum();
        if u.models.iter().any(|m| m.trained) {
            format!("{seconds:.2} s, in this run")
        } else {
            format!("stored ({seconds:.2} s)")
        }
    }));
    let rows: Vec<[String; 4]> = rows
        .into_iter()
        .map(|r| [r[0].clone(), r[1].clone(), r[2].clone(), r[3].clone()])
        .collect();
    print!("{}", table(&rows, &[false, true, true, true]));
    Ok(())
}

/// Change records, load them, unify incrementally and then in full; print both and
/// whether they published the same profiles with the same ids.
fn incremental_run(
    args: &UnifyArgs,
    dir: &std::path::Path,
    rt: &tokio::runtime::Runtime,
    before: &std::collections::HashMap<(String, String), String>,
) -> anyhow::Result<()> {
    if !matches!(args.data, DataArg::People) {
        anyhow::bail!("--incremental changes the people data only");
    }
    // the changed data is not the generated sample any more: the next run makes it anew
    let _ = std::fs::remove_file(dir.join("data.params"));
    let added = args.incremental / 2;
    let summary = lakecdp_bench::people::change::change(
        &dir.join("data"),
        added,
        args.incremental - added,
        args.seed,
        1,
    )?;
    eprintln!(
        "changed the people: {} records added, {} changed; loading them",
        summary.added, summary.changed
    );
    let seconds = rt.block_on(lakecdp_bench::unify::load(dir, args.data.dataset()))?;
    eprintln!("  {seconds:.1} s");
    eprintln!("unifying what changed");
    let inc = unify_child(args, dir, false, false)?;
    let after_inc = rt.block_on(lakecdp_bench::unify::profiles(dir))?;
    eprintln!("unifying everything, to compare");
    let full = unify_child(args, dir, false, true)?;
    let after_full = rt.block_on(lakecdp_bench::unify::profiles(dir))?;
    let truth = lakecdp_bench::unify::truth(dir)?;
    let s = lakecdp_bench::score::score(&truth, &after_inc);
    let differing = after_inc
        .iter()
        .filter(|(k, id)| after_full.get(*k) != Some(*id))
        .count()
        + after_full
            .keys()
            .filter(|k| !after_inc.contains_key(*k))
            .count();
    let kept_ids = before
        .iter()
        .filter(|(k, id)| after_inc.get(*k) == Some(*id))
        .count();
    let phases = |r: &lakecdp_bench::unify::UnifyResult| {
        r.phases
            .iter()
            .map(|(p, t)| format!("{p} {t:.2} s"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let matching = |r: &lakecdp_bench::unify::UnifyResult| {
        r.phases
            .iter()
            .filter(|(p, _)| *p != "load" && *p != "merge")
            .map(|(_, t)| t)
            .sum::<f64>()
    };
    println!(
        "\nincremental unification: {} records added, {} changed\n",
        summary.added, summary.changed
    );
    let rows = vec![
        ["measure".to_string(), "value".into()],
        ["mode".into(), inc.mode.clone()],
        ["wall time".into(), format!("{:.2} s", inc.seconds)],
        ["phases".into(), phases(&inc)],
        [
            "matching, clustering and ids".into(),
            format!(
                "{:.2} s (the full run: {:.2} s)",
                matching(&inc),
                matching(&full)
            ),
        ],
        ["peak memory".into(), size(inc.peak_rss)],
        [
            "full run wall time".into(),
            format!("{:.2} s", full.seconds),
        ],
        ["full run phases".into(), phases(&full)],
        [
            "records whose CustomerId differs from the full run's".into(),
            differing.to_string(),
        ],
        [
            "records keeping the CustomerId they had before".into(),
            format!("{kept_ids} of {}", before.len()),
        ],
        [
            "cluster precision / recall / F1".into(),
            format!(
                "{:.4} / {:.4} / {:.4}",
                s.cluster.precision,
                s.cluster.recall,
                s.cluster.f1()
            ),
        ],
    ];
    print!("{}", table(&rows, &[false, false]));
    if differing > 0 {
        anyhow::bail!("the incremental run published other profiles than a full run");
    }
    Ok(())
}

fn run_refresh_run(args: &RefreshRunArgs) -> anyhow::Result<()> {
    let result = runtime()?.block_on(refresh::run_app(&args.project))?;
    println!("{}", serde_json::to_string(&result)?);
    Ok(())
}

/// One measured refresh, as printed.
#[derive(Debug, serde::Serialize)]
struct RefreshFigures<'a> {
    bench: &'static str,
    data: &'static str,
    /// Records asked for (people) and written.
    records: Option<usize>,
    records_written: Option<usize>,
    /// `app` (lakecdp-app in a child of the benchmark) or `binary`.
    runner: &'static str,
    binary: Option<&'a std::path::Path>,
    run: u32,
    runs: u32,
    status: String,
    /// Seconds of every process (as the binary prints them: to a tenth).
    processes: Vec<ProcessTime>,
    /// Seconds of the apply and of the refresh, measured in the child (app path only).
    apply_seconds: Option<f64>,
    refresh_seconds: Option<f64>,
    /// Wall seconds of the child process, start to exit.
    wall_seconds: f64,
    /// Its peak resident memory (ru_maxrss), in bytes.
    peak_rss: u64,
}

fn run_refresh(args: &RefreshArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let dir = args.dir.canonicalize()?;
    let (data, project, records) = if args.retail {
        let project = args.retail_dir.canonicalize().with_context(|| {
            format!("the retail quickstart folder {}", args.retail_dir.display())
        })?;
        ("retail", project, None)
    } else {
        let (project, written) = refresh::people_project(&dir, args.records, args.seed)?;
        ("people", project, Some(written))
    };
    let binary = match &args.binary {
        Some(b) => Some(
            b.canonicalize()
                .with_context(|| format!("the binary {}", b.display()))?,
        ),
        None => None,
    };
    let work = dir.join(format!("{data}-run"));
    let runner = match &binary {
        Some(b) => format!("binary {}", b.display()),
        None => "app path (lakecdp-app)".to_string(),
    };
    let what = match records {
        Some(written) => format!("people, {} records ({written} written)", args.records),
        None => format!("retail quickstart ({})", project.display()),
    };
    let mut all = Vec::new();
    for run in 1..=args.runs {
        eprintln!(
            "run {run} of {}: fresh copy in {}",
            args.runs,
            work.display()
        );
        refresh::fresh_copy(&project, &work)?;
        let mut command = match &binary {
            Some(b) => {
                let mut c = std::process::Command::new(b);
                c.arg("-C")
                    .arg(&work)
                    .args(["refresh", "--apply", "--create-container"])
                    .env("NO_COLOR", "1")
                    .env_remove("LAKECDP_PROJECT")
                    .env_remove("LAKECDP_CATALOG");
                c
            }
            None => {
                let mut c = std::process::Command::new(std::env::current_exe()?);
                c.arg("refresh-run").arg("--project").arg(&work);
                c
            }
        };
        let log = dir.join(format!("{data}-run.stderr"));
        let stderr =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        command.current_dir(&work).stderr(stderr);
        eprintln!(
            "  refreshing ({runner}; its errors go to {})",
            log.display()
        );
        let measured = refresh::run_measured(&mut command)?;
        let stdout_log = dir.join(format!("{data}-run.stdout"));
        std::fs::write(&stdout_log, &measured.stdout)?;
        if !measured.status.success() {
            let errors = std::fs::read_to_string(&log).unwrap_or_default();
            anyhow::bail!(
                "run {run} failed ({}):\n{}{}",
                measured.status,
                tail(&measured.stdout, 20),
                tail(&errors, 20)
            );
        }
        let figures = match &binary {
            Some(b) => RefreshFigures {
                bench: "refresh",
                data,
                records: records.map(|_| args.records),
                records_written: records,
                runner: "binary",
                binary: Some(b),
                run,
                runs: args.runs,
                status: "Succeeded".into(),
                processes: refresh::printed_outcomes(&measured.stdout),
                apply_seconds: None,
                refresh_seconds: None,
                wall_seconds: measured.seconds,
                peak_rss: measured.peak_rss,
            },
            None => {
                let line = measured.stdout.trim();
                let result: refresh::AppRefresh = serde_json::from_str(line)
                    .with_context(|| format!("reading the refresh's result: {line}"))?;
                if let Some(problem) = &result.problem {
                    anyhow::bail!("run {run}: the refresh is {}: {problem}", result.status);
                }
                RefreshFigures {
                    bench: "refresh",
                    data,
                    records: records.map(|_| args.records),
                    records_written: records,
                    runner: "app",
                    binary: None,
                    run,
                    runs: args.runs,
                    status: result.status,
                    processes: result.processes,
                    apply_seconds: Some(result.apply_seconds),
                    refresh_seconds: Some(result.refresh_seconds),
                    wall_seconds: measured.seconds,
                    peak_rss: measured.peak_rss,
                }
            }
        };
        println!(
            "\nrefresh benchmark: {what}, {runner}, run {run} of {}\n",
            args.runs
        );
        print!("{}", render_refresh(&figures));
        println!("{}", serde_json::to_string(&figures)?);
        all.push((figures.wall_seconds, figures.peak_rss));
    }
    if all.len() > 1 {
        println!(
            "\nrefresh benchmark: {what}, {runner}, {} runs\n",
            all.len()
        );
        let mut rows = vec![["run".to_string(), "wall time".into(), "peak memory".into()]];
        for (i, (seconds, peak)) in all.iter().enumerate() {
            rows.push([(i + 1).to_string(), format!("{seconds:.2} s"), size(*peak)]);
        }
        print!("{}", table(&rows, &[true, true, true]));
    }
    Ok(())
}

fn run_cluster(args: &ClusterArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let dir = args.dir.canonicalize()?;
    let (what, project) = if args.retail {
        let project = args.retail_dir.canonicalize().with_context(|| {
            format!("the retail quickstart folder {}", args.retail_dir.display())
        })?;
        ("retail quickstart".to_string(), project)
    } else {
        let (project, written) = refresh::people_project(&dir, args.records, args.seed)?;
        (format!("people, {written} records"), project)
    };
    let bench = lakecdp_bench::cluster::ClusterBench {
        binary: args
            .binary
            .canonicalize()
            .with_context(|| format!("the binary {}", args.binary.display()))?,
        project,
        dir,
        executors: args.executors as usize,
        slots: args.slots as usize,
    };
    let figures = lakecdp_bench::cluster::run(&bench)?;
    println!(
        "\ncluster benchmark: {what}, local against a scheduler and {} executors of {} slots\n",
        args.executors, args.slots
    );
    print!("{}", lakecdp_bench::cluster::render(&figures));
    println!("{}", serde_json::to_string(&figures)?);
    if let Some(d) = &figures.difference {
        anyhow::bail!("the cluster published other rows than the local engine: {d}");
    }
    Ok(())
}

fn run_serve(args: &ServeArgs) -> anyhow::Result<()> {
    if !(args.seconds > 0.0 && args.seconds.is_finite()) {
        anyhow::bail!("--seconds must be a positive number");
    }
    let config = ServeConfig {
        catalog: args.catalog.clone(),
        auth: match args.auth {
            AuthArg::Token => AuthKind::Token,
            AuthArg::Session => AuthKind::Session,
        },
        clients: args.clients as usize,
        duration: std::time::Duration::from_secs_f64(args.seconds),
        scale: args.scale,
        seed: args.seed,
    };
    let figures = runtime()?.block_on(serve::run(&config))?;
    print!("{}", render_serve(&figures));
    println!("{}", serde_json::to_string(&figures)?);
    if figures.errors > 0 {
        anyhow::bail!(
            "{} of {} requests got no 200 OK; the first: {}",
            figures.errors,
            figures.requests,
            figures.first_error.as_deref().unwrap_or("(not kept)")
        );
    }
    Ok(())
}

fn run_search(args: &SearchArgs) -> anyhow::Result<()> {
    if !(args.seconds > 0.0 && args.seconds.is_finite()) {
        anyhow::bail!("--seconds must be a positive number");
    }
    let config = lakecdp_bench::search::SearchConfig {
        records: args.records,
        seed: args.seed,
        clients: args.clients as usize,
        duration: std::time::Duration::from_secs_f64(args.seconds),
        work_dir: args.dir.clone(),
    };
    let f = runtime()?.block_on(lakecdp_bench::search::run(&config))?;
    print!(
        "\nsearch benchmark: {} build, {} cores, {} records, {} profiles\n\
         refresh {:.1} s; index built in {:.1} s, {} on disk; typo searches finding their \
         profile in the first page: {} of {}\n{} clients for {:.1} s, peak memory {}\n\n{}",
        f.profile,
        f.cores,
        f.records,
        f.profiles,
        f.refresh_seconds,
        f.index_build_seconds,
        size(f.index_bytes),
        f.queries_found,
        f.queries_checked,
        f.clients,
        f.seconds,
        size(f.peak_rss),
        routes_table(&f.routes)
    );
    println!("{}", serde_json::to_string(&f)?);
    if f.errors > 0 {
        anyhow::bail!(
            "{} requests got no 200 OK; the first: {}",
            f.errors,
            f.first_error.as_deref().unwrap_or("(not kept)")
        );
    }
    Ok(())
}

/// The latency table of a load benchmark's routes.
fn routes_table(routes: &[lakecdp_bench::serve::RouteFigures]) -> String {
    let mut rows = vec![[
        "route".to_string(),
        "requests".into(),
        "req/s".into(),
        "p50 ms".into(),
        "p90 ms".into(),
        "p99 ms".into(),
        "max ms".into(),
        "errors".into(),
    ]];
    for r in routes {
        rows.push([
            r.route.to_string(),
            r.requests.to_string(),
            format!("{:.0}", r.requests_per_second),
            format!("{:.2}", r.p50_ms),
            format!("{:.2}", r.p90_ms),
            format!("{:.2}", r.p99_ms),
            format!("{:.2}", r.max_ms),
            r.errors.to_string(),
        ]);
    }
    table(&rows, &[false, true, true, true, true, true, true, true])
}

fn render_serve(f: &ServeFigures) -> String {
    format!(
        "\nserve benchmark: {} catalog, {}, server {}, {} build, {} cores, {} clients, \
         {:.1} s measured (setup {:.1} s)\n\n{}",
        f.catalog,
        f.auth,
        f.server,
        f.profile,
        f.cores,
        f.clients,
        f.seconds,
        f.setup_seconds,
        routes_table(&f.routes)
    )
}

fn render_refresh(f: &RefreshFigures) -> String {
    let mut rows = vec![[
        "process".to_string(),
        "status".into(),
        "seconds".into(),
        "rows".into(),
    ]];
    for p in &f.processes {
        rows.push([
            p.process.clone(),
            p.status.clone(),
            format!("{:.2}", p.seconds),
            p.rows.map_or_else(|| "-".to_string(), |r| r.to_string()),
        ]);
    }
    if f.processes.is_empty() {
        rows.push([
            "(no process table printed)".into(),
            String::new(),
            String::new(),
            String::new(),
        ]);
    }
    let mut line = |name: &str, value: String| {
        rows.push([name.to_string(), String::new(), value, String::new()]);
    };
    if let Some(s) = f.apply_seconds {
        line("apply", format!("{s:.2}"));
    }
    if let Some(s) = f.refresh_seconds {
        line("refresh", format!("{s:.2}"));
    }
    line("wall time (process)", format!("{:.2}", f.wall_seconds));
    line("peak memory", size(f.peak_rss));
    table(&rows, &[false, false, true, true])
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = lines[lines.len().saturating_sub(n)..].join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

fn render_ingest(bytes: u64, results: &[PhaseResult]) -> String {
    let base = results.first().map_or(1.0, |r| r.seconds);
    let mut rows = vec![[
        "phase".to_string(),
        "rows".into(),
        "corrupt".into(),
        "seconds".into(),
        "MB/s".into(),
        "rows/s".into(),
        "peak memory".into(),
        "parquet".into(),
        "vs COPY".into(),
    ]];
    for r in results {
        rows.push([
            r.phase.clone(),
            r.rows.to_string(),
            r.corrupt.to_string(),
            format!("{:.1}", r.seconds),
            format!("{:.0}", bytes as f64 / 1e6 / r.seconds),
            format!("{:.0}", (r.rows + r.corrupt) as f64 / r.seconds),
            size(r.peak_rss),
            size(r.output_bytes),
            format!("{:.2}", base / r.seconds),
        ]);
    }
    format!(
        "\ningest benchmark: {:.2} GB of CSV\n\n{}",
        bytes as f64 / 1e9,
        table(
            &rows,
            &[false, true, true, true, true, true, true, true, true]
        )
    )
}

/// The summary as plain-text tables.
fn render(summary: &Summary, out: &str) -> String {
    let c = &summary.config;
    let mut text = format!(
        "retail sample in {out}: seed {}, {} people\n\n",
        c.seed, c.customers
    );
    let mut rows = vec![[
        "file".to_string(),
        "format".into(),
        "rows".into(),
        "people".into(),
        "duplicates".into(),
        "malformed".into(),
        "size".into(),
    ]];
    for f in &summary.files {
        rows.push([
            f.file.to_string(),
            f.format.to_string(),
            f.rows.to_string(),
            f.people.map_or_else(|| "-".to_string(), |p| p.to_string()),
            f.duplicates.to_string(),
            f.malformed.to_string(),
            size(f.bytes),
        ]);
    }
    rows.push([
        "total".to_string(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        summary.malformed.len().to_string(),
        size(summary.total_bytes()),
    ]);
    text.push_str(&table(&rows, &[false, false, true, true, true, true, true]));
    if !summary.malformed.is_empty() {
        text.push_str("\nmalformed rows\n");
        let mut rows = vec![[
            "file".to_string(),
            "line".into(),
            "kind".into(),
            "problem".into(),
        ]];
        for m in &summary.malformed {
            rows.push([
                m.file.to_string(),
                m.line.to_string(),
                m.kind.to_string(),
                m.problem.clone(),
            ]);
        }
        text.push_str(&table(&rows, &[false, true, false, false]));
    }
    text
}

/// Aligned columns; `right[i]` aligns column `i` to the right.
fn table<const N: usize>(rows: &[[String; N]], right: &[bool; N]) -> String {
    let mut widths = [0usize; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            let pad = " ".repeat(widths[i] - cell.chars().count());
            if right[i] {
                line.push_str(&pad);
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&pad);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn size(bytes: u64) -> String {
    if bytes >= 1 << 30 {
        format!("{:.2} GiB", bytes as f64 / f64::from(1 << 30))
    } else if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
    } else {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_retail_command() {
        let cli = Cli::try_parse_from(["lakecdp-bench", "retail", "--out", "d", "--scale", "0.5"])
            .expect("valid arguments");
        let Command::Retail(args) = cli.command else {
            panic!("not the retail command")
        };
        assert_eq!(args.seed, DEFAULT_SEED);
        assert_eq!(args.scale, 0.5);
        assert!(!args.no_malformed);
        assert!(Cli::try_parse_from(["lakecdp-bench", "retail"]).is_err());
    }

    #[test]
    fn tables_align() {
        let t = table(
            &[
                ["a".to_string(), "1".into()],
                ["bbb".to_string(), "22".into()],
            ],
            &[false, true],
        );
        assert_eq!(t, "a     1\nbbb  22\n");
    }
}
