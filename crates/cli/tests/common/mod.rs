//! What the binary's tests share: running `lakecdp` in a project folder, and the retail
//! quickstart copied into a fresh one.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// `lakecdp -C project ARGS`, with the variables of the caller's shell that would change
/// its behaviour removed.
pub fn lakecdp(project: &Path, args: &[&str]) -> Output {
    command(project, args).output().expect("the binary runs")
}

/// The command `lakecdp -C project ARGS`, with the variables of the caller's shell that
/// would change its behaviour removed, and no input.
pub fn command(project: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lakecdp"));
    c.arg("-C")
        .arg(project)
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("LAKECDP_PROJECT")
        .env_remove("LAKECDP_CATALOG")
        .env_remove("LAKECDP_PRINCIPAL")
        .stdin(Stdio::null());
    c
}

/// Everything a run printed.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The retail quickstart's folder.
pub fn retail_example() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/retail")
}

/// The retail quickstart's project file and sources, copied into `dir`.
pub fn copy_retail(dir: &Path) {
    let example = retail_example();
    std::fs::copy(example.join("lakecdp.toml"), dir.join("lakecdp.toml")).unwrap();
    std::fs::create_dir_all(dir.join("data")).unwrap();
    for f in [
        "crm_contacts.csv",
        "shop_customers.parquet",
        "orders.csv",
        "loyalty_members.jsonl",
    ] {
        std::fs::copy(example.join("data").join(f), dir.join("data").join(f)).unwrap();
    }
}

/// An environment variable the test services export; a clear panic when missing.
pub fn service_var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests with scripts/test.sh, which starts Azurite, the S3 server and PostgreSQL")
    })
}
