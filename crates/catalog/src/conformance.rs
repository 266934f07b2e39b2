//! The conformance suite every [`Catalog`] implementation runs.
//!
//! Each case is an async function that takes the catalog under test and panics when the
//! catalog breaks the contract written on [`Catalog`].
//! [`catalog_conformance_suite!`](crate::catalog_conformance_suite) turns them into one
//! `#[tokio::test]` each:
//!
//! ```text
//! async fn harness() -> MyHarness { /* a fresh catalog */ }
//! lakecdp_catalog::catalog_conformance_suite!(harness());
//! ```
//!
//! The argument is an expression evaluated once per test that yields a future of a
//! [`CatalogHarness`]. Cases create objects with unique names and only look at their own
//! objects, so several tests may share one database. The crate that expands the macro
//! needs `tokio` with the `macros` and `rt` features.
//!
//! Available with the `testing` feature.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use lakecdp_core::{
    AdlsConfig, Connection, ConnectionId, ConnectionKind, ConnectionSharing, Environment,
    EnvironmentId, Export, ExportId, ExportSchedule, LocalConfig, PartitionFormat, Principal,
    Revision, Role, RoleAssignment, RunId, RunRecord, RunStatus, S3Config, SecretOwner, SecretRef,
    StorageConfig, Watermark,
};
use lakecdp_core::{
    ApiToken, AuditEntry, AuditOutcome, AuditQuery, PasswordCredential, PrincipalKind, Session,
};

use crate::{Catalog, CatalogExt, Error, Result, SealedSecret, CONNECTION, ENVIRONMENT, RUN};

/// A catalog under test, with read access to what it stores.
#[async_trait]
pub trait CatalogHarness: Send + Sync {
    /// The catalog under test.
    fn catalog(&self) -> &dyn Catalog;

    /// Every stored value of the environment's row as raw text, read past the catalog's
    /// own decoding (e.g. its columns joined with `|`), or `None` when there is no row.
    async fn raw_environment_row(&self, id: EnvironmentId) -> Result<Option<String>>;
}

/// Expands to one `#[tokio::test]` per conformance case, each on a fresh harness from
/// `$harness` (an expression yielding a future of a [`CatalogHarness`]).
///
/// [`CatalogHarness`]: crate::conformance::CatalogHarness
#[macro_export]
macro_rules! catalog_conformance_suite {
    ($harness:expr) => {
        $crate::catalog_conformance_suite!(@catalog $harness;
            environments_are_created_found_and_listed,
            duplicate_environments_are_refused,
            update_changes_name_and_storage,
            update_of_unknown_environment_is_not_found,
            rename_onto_a_taken_name_is_refused,
            delete_removes_the_environment_and_its_runs,
            invalid_environments_are_refused,
            storage_configs_round_trip,
            timestamps_are_kept_to_the_microsecond,
            environment_is_found_by_name_or_id,
            runs_are_recorded_updated_and_read_back,
            runs_are_listed_newest_first_with_limit,
            the_latest_run_of_a_process_is_found_past_newer_ones,
            runs_of_one_environment_are_not_visible_from_another,
            update_of_unknown_run_is_not_found,
            runs_need_a_known_environment_and_a_new_id,
            finished_runs_cannot_change,
            watermarks_are_set_replaced_listed_and_cleared,
            watermarks_need_a_known_environment,
            invalid_watermarks_are_refused,
            delete_removes_the_environments_watermarks,
            watermarks_of_one_environment_or_source_are_not_visible_from_another,
            roles_are_set_replaced_listed_and_removed,
            connections_and_their_sealed_secrets_round_trip,
            a_connection_used_by_exports_cannot_be_deleted,
            exports_need_a_connection_of_their_environment,
            delete_removes_the_environments_connections_and_exports,
            environment_secrets_are_sealed_listed_rotated_and_removed,
            a_rotation_sees_every_secret_it_replaces,
            processes_of_a_refresh_are_its_child_runs,
            revisions_are_numbered_read_and_listed,
            invalid_or_racing_revisions_are_refused,
            delete_removes_the_environments_revisions,
            principal_flags_and_passwords_round_trip,
            groups_hold_members_and_pass_on_their_roles,
            sessions_are_created_touched_and_ended,
            api_tokens_are_scoped_listed_and_revoked,
            sign_in_failures_are_counted_in_a_window,
            audit_entries_are_appended_and_read_newest_first,
            run_events_and_cancel_requests_are_shared,
            leadership_is_taken_renewed_and_taken_over,
            a_key_is_made_once_and_then_the_same_for_everyone,
            sharing_is_recorded_replaced_and_removed,
            an_organisation_is_attached_once_whatever_its_case,
            reporting_connections_are_stored_replaced_and_removed,
        );
        $crate::catalog_conformance_suite!(@harness $harness;
            stored_storage_holds_secret_references_only,
        );
    };
    (@catalog $harness:expr; $($case:ident),+ $(,)?) => {
        $(
            #[::tokio::test]
            async fn $case() {
                let harness = $harness.await;
                $crate::conformance::$case(
                    $crate::conformance::CatalogHarness::catalog(&harness),
                )
                .await;
            }
        )+
    };
    (@harness $harness:expr; $($case:ident),+ $(,)?) => {
        $(
            #[::tokio::test]
            async fn $case() {
                let harness = $harness.await;
                $crate::conformance::$case(&harness).await;
            }
        )+
    };
}

/// The environment variable the ADLS fixture's account key refers to.
pub const ACCOUNT_KEY_VAR: &str = "LAKECDP_CONFORMANCE_ACCOUNT_KEY";

/// A value [`ACCOUNT_KEY_VAR`] might hold; it must never appear in a stored row.
pub const ACCOUNT_KEY_VALUE: &str = "c2VjcmV0LWtleS1tdXN0LW5vdC1iZS1zdG9yZWQ=";

/// A short random suffix that keeps names of concurrent tests apart.
fn suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_string()
}

/// The current time, to the microsecond the catalog keeps.
fn now() -> DateTime<Utc> {
    let micros = Utc::now().timestamp_micros();
    DateTime::from_timestamp_micros(micros).unwrap_or_default()
}

/// A local-folder storage configuration.
pub fn local_storage(path: &str) -> StorageConfig {
    StorageConfig::Local(LocalConfig { path: path.into() })
}

/// An ADLS Gen2 configuration authenticated by an account key in [`ACCOUNT_KEY_VAR`].
pub fn adls_storage() -> StorageConfig {
    StorageConfig::Adls(AdlsConfig {
        url: Some("abfss://customerinsights@contoso.dfs.core.windows.net".into()),
        account_key: Some(SecretRef::Env(ACCOUNT_KEY_VAR.into())),
        region: Some("westeurope".into()),
        ..Default::default()
    })
}

/// An S3 configuration with every optional field set.
pub fn s3_storage() -> StorageConfig {
    StorageConfig::S3(S3Config {
        bucket: "lakecdp-conformance".into(),
        prefix: Some("teams/marketing".into()),
        region: "eu-west-1".into(),
        endpoint: Some("http://127.0.0.1:8333".into()),
        access_key_id: Some(SecretRef::Env("LAKECDP_CONFORMANCE_S3_KEY_ID".into())),
        secret_access_key: Some(SecretRef::File("/run/secrets/s3-secret".into())),
        session_token: Some(SecretRef::Env("LAKECDP_CONFORMANCE_S3_TOKEN".into())),
        path_style: Some(true),
        credentials: lakecdp_core::Credentials::Declared,
    })
}

/// A valid environment named `name` on local storage, created now.
pub fn environment(name: &str) -> Environment {
    let at = now();
    Environment {
        id: EnvironmentId::new(),
        name: name.to_string(),
        region: None,
        storage: local_storage("lake"),
        output_format: PartitionFormat::Csv,
        retention_runs: 3,
        created_by: "conformance".into(),
        created_at: at,
        updated_at: at,
    }
}

/// A running run of `process` in `environment_id` that started at `started_at`.
pub fn run(environment_id: EnvironmentId, process: &str, started_at: DateTime<Utc>) -> RunRecord {
    RunRecord {
        id: RunId::new(started_at),
        environment_id,
        process: process.to_string(),
        status: RunStatus::Running,
        started_at,
        finished_at: None,
        rows: None,
        error: None,
        parent: None,
        revision: None,
    }
}

/// The start of the hour `t` is in.
fn start_of_hour(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp() - t.timestamp().rem_euclid(3600), 0).unwrap_or(t)
}

/// The watermark of `source`.`table` in `environment_id` at `hour`, set now.
pub fn watermark(
    environment_id: EnvironmentId,
    source: &str,
    table: &str,
    hour: DateTime<Utc>,
) -> Watermark {
    Watermark {
        environment_id,
        source: source.to_string(),
        table: table.to_string(),
        hour,
        updated_at: now(),
    }
}

async fn create(catalog: &dyn Catalog, name: &str) -> Environment {
    let env = environment(name);
    catalog
        .create_environment(&env)
        .await
        .unwrap_or_else(|e| panic!("create_environment({name}): {e}"));
    env
}

async fn get(catalog: &dyn Catalog, id: EnvironmentId) -> Option<Environment> {
    catalog
        .get_environment(id)
        .await
        .unwrap_or_else(|e| panic!("get_environment({id}): {e}"))
}

async fn find(catalog: &dyn Catalog, name: &str) -> Option<Environment> {
    catalog
        .find_environment(name)
        .await
        .unwrap_or_else(|e| panic!("find_environment({name}): {e}"))
}

async fn record(catalog: &dyn Catalog, run: &RunRecord) {
    catalog
        .record_run(run)
        .await
        .unwrap_or_else(|e| panic!("record_run({}): {e}", run.id));
}

async fn get_run(catalog: &dyn Catalog, id: &RunId) -> Option<RunRecord> {
    catalog
        .get_run(id)
        .await
        .unwrap_or_else(|e| panic!("get_run({id}): {e}"))
}

async fn list_runs(catalog: &dyn Catalog, id: EnvironmentId, limit: usize) -> Vec<RunRecord> {
    catalog
        .list_runs(id, limit)
        .await
        .unwrap_or_else(|e| panic!("list_runs({id}, {limit}): {e}"))
}

async fn set_watermark(catalog: &dyn Catalog, watermark: &Watermark) {
    catalog.set_watermark(watermark).await.unwrap_or_else(|e| {
        panic!(
            "set_watermark({}.{}): {e}",
            watermark.source, watermark.table
        )
    });
}

async fn watermarks(catalog: &dyn Catalog, id: EnvironmentId, source: &str) -> Vec<Watermark> {
    catalog
        .watermarks(id, source)
        .await
        .unwrap_or_else(|e| panic!("watermarks({id}, {source}): {e}"))
}

async fn clear_watermarks(
    catalog: &dyn Catalog,
    id: EnvironmentId,
    source: &str,
    table: Option<&str>,
) -> u64 {
    catalog
        .clear_watermarks(id, source, table)
        .await
        .unwrap_or_else(|e| panic!("clear_watermarks({id}, {source}, {table:?}): {e}"))
}

fn finished(mut run: RunRecord, status: RunStatus, rows: Option<u64>) -> RunRecord {
    run.status = status;
    run.finished_at = Some(run.started_at + Duration::seconds(7));
    run.rows = rows;
    run
}

#[track_caller]
fn assert_not_found<T: std::fmt::Debug>(result: Result<T>, kind: &str, name: &str) {
    match result {
        Err(Error::NotFound { kind: k, name: n }) => {
            assert_eq!((k, n.as_str()), (kind, name), "wrong object reported");
        }
        other => panic!("expected {kind} `{name}` not found, got {other:?}"),
    }
}

#[track_caller]
fn assert_already_exists<T: std::fmt::Debug>(result: Result<T>, kind: &str, name: &str) {
    match result {
        Err(Error::AlreadyExists { kind: k, name: n }) => {
            assert_eq!((k, n.as_str()), (kind, name), "wrong object reported");
        }
        other => panic!("expected {kind} `{name}` already exists, got {other:?}"),
    }
}

#[track_caller]
fn assert_kind_not_found<T: std::fmt::Debug>(result: Result<T>, kind: &str) {
    match result {
        Err(Error::NotFound { kind: k, .. }) => {
            assert_eq!(k, kind, "wrong kind of object reported")
        }
        other => panic!("expected a {kind} not found, got {other:?}"),
    }
}

#[track_caller]
fn assert_kind_already_exists<T: std::fmt::Debug>(result: Result<T>, kind: &str) {
    match result {
        Err(Error::AlreadyExists { kind: k, .. }) => {
            assert_eq!(k, kind, "wrong kind of object reported")
        }
        other => panic!("expected a {kind} that exists already, got {other:?}"),
    }
}

/// Created environments are read back equal by id, found by name in any ASCII case,
/// and listed sorted by name without regard to case.
pub async fn environments_are_created_found_and_listed(catalog: &dyn Catalog) {
    let s = suffix();
    let charlie = create(catalog, &format!("charlie-{s}")).await;
    let bravo = create(catalog, &format!("Bravo-{s}")).await;
    let alpha = create(catalog, &format!("alpha-{s}")).await;

    for env in [&alpha, &bravo, &charlie] {
        assert_eq!(get(catalog, env.id).await.as_ref(), Some(env));
        for name in [
            env.name.clone(),
            env.name.to_ascii_uppercase(),
            env.name.to_ascii_lowercase(),
        ] {
            assert_eq!(find(catalog, &name).await.as_ref(), Some(env), "{name}");
        }
    }
    assert_eq!(get(catalog, EnvironmentId::new()).await, None);
    assert_eq!(find(catalog, &format!("delta-{s}")).await, None);

    let listed = catalog
        .list_environments()
        .await
        .expect("list_environments");
    let ours: Vec<&Environment> = listed.iter().filter(|e| e.name.ends_with(&s)).collect();
    assert_eq!(ours, [&alpha, &bravo, &charlie]);
    for pair in listed.windows(2) {
        assert!(
            pair[0].name.to_ascii_lowercase() <= pair[1].name.to_ascii_lowercase(),
            "`{}` is listed before `{}`",
            pair[0].name,
            pair[1].name
        );
    }
}

/// A second environment with a taken name (in any case) or a taken id is refused, and
/// the first one stays as it was.
pub async fn duplicate_environments_are_refused(catalog: &dyn Catalog) {
    let s = suffix();
    let first = create(catalog, &format!("Retail-{s}")).await;

    let same_name = environment(&format!("rETAIL-{s}"));
    assert_already_exists(
        catalog.create_environment(&same_name).await,
        ENVIRONMENT,
        &same_name.name,
    );
    assert_eq!(get(catalog, same_name.id).await, None);

    let mut same_id = environment(&format!("other-{s}"));
    same_id.id = first.id;
    assert_already_exists(
        catalog.create_environment(&same_id).await,
        ENVIRONMENT,
        &first.id.to_string(),
    );
    assert_eq!(find(catalog, &same_id.name).await, None);
    assert_eq!(get(catalog, first.id).await, Some(first));
}

/// An update replaces the name, region, storage, format, retention and `updated_at`,
/// and keeps `created_by` and `created_at`.
pub async fn update_changes_name_and_storage(catalog: &dyn Catalog) {
    let s = suffix();
    let original = create(catalog, &format!("before-{s}")).await;

    let mut changed = original.clone();
    changed.name = format!("after-{s}");
    changed.region = Some("westeurope".into());
    changed.storage = adls_storage();
    changed.output_format = PartitionFormat::Parquet;
    changed.retention_runs = 5;
    changed.updated_at = original.updated_at + Duration::minutes(5);
    changed.created_by = "someone-else".into();
    changed.created_at = original.created_at - Duration::days(1);
    catalog
        .update_environment(&changed)
        .await
        .expect("update_environment");

    let expected = Environment {
        created_by: original.created_by.clone(),
        created_at: original.created_at,
        ..changed.clone()
    };
    assert_eq!(get(catalog, original.id).await, Some(expected.clone()));
    assert_eq!(find(catalog, &original.name).await, None);
    assert_eq!(find(catalog, &changed.name).await, Some(expected.clone()));

    // Changing only the case of its own name is allowed.
    let mut recased = expected.clone();
    recased.name = recased.name.to_ascii_uppercase();
    catalog
        .update_environment(&recased)
        .await
        .expect("update_environment to a case variant of its own name");
    assert_eq!(get(catalog, original.id).await, Some(recased));
}

/// Updating an environment that does not exist fails with not found and creates
/// nothing.
pub async fn update_of_unknown_environment_is_not_found(catalog: &dyn Catalog) {
    let ghost = environment(&format!("ghost-{}", suffix()));
    assert_not_found(
        catalog.update_environment(&ghost).await,
        ENVIRONMENT,
        &ghost.id.to_string(),
    );
    assert_eq!(get(catalog, ghost.id).await, None);
    assert_eq!(find(catalog, &ghost.name).await, None);
}

/// Renaming an environment onto another's name, in any case, is refused and changes
/// nothing.
pub async fn rename_onto_a_taken_name_is_refused(catalog: &dyn Catalog) {
    let s = suffix();
    let a = create(catalog, &format!("first-{s}")).await;
    let b = create(catalog, &format!("second-{s}")).await;

    let mut renamed = b.clone();
    renamed.name = a.name.to_ascii_uppercase();
    renamed.retention_runs = 9;
    assert_already_exists(
        catalog.update_environment(&renamed).await,
        ENVIRONMENT,
        &renamed.name,
    );
    assert_eq!(get(catalog, b.id).await, Some(b));
    assert_eq!(get(catalog, a.id).await, Some(a));
}

/// Deleting an environment removes it and every run it has, and leaves other
/// environments' runs alone; deleting it again fails with not found.
pub async fn delete_removes_the_environment_and_its_runs(catalog: &dyn Catalog) {
    let s = suffix();
    let doomed = create(catalog, &format!("doomed-{s}")).await;
    let kept = create(catalog, &format!("kept-{s}")).await;
    let t0 = now();
    let doomed_runs = [
        run(doomed.id, "ingest:crm", t0),
        run(doomed.id, "unify", t0 + Duration::seconds(1)),
    ];
    let kept_run = run(kept.id, "ingest:crm", t0);
    for r in doomed_runs.iter().chain([&kept_run]) {
        record(catalog, r).await;
    }

    catalog
        .delete_environment(doomed.id)
        .await
        .expect("delete_environment");

    assert_eq!(get(catalog, doomed.id).await, None);
    assert_eq!(find(catalog, &doomed.name).await, None);
    for r in &doomed_runs {
        assert_eq!(get_run(catalog, &r.id).await, None, "run {} survived", r.id);
    }
    assert_not_found(
        catalog.list_runs(doomed.id, 10).await,
        ENVIRONMENT,
        &doomed.id.to_string(),
    );
    assert_eq!(get(catalog, kept.id).await, Some(kept.clone()));
    assert_eq!(list_runs(catalog, kept.id, 10).await, [kept_run]);
    assert_not_found(
        catalog.delete_environment(doomed.id).await,
        ENVIRONMENT,
        &doomed.id.to_string(),
    );
}

/// Environments with an empty name, a retention of 0 or a storage configuration that
/// does not validate are refused as invalid, on create and on update.
pub async fn invalid_environments_are_refused(catalog: &dyn Catalog) {
    let s = suffix();
    let empty_name = environment("  ");
    let mut no_retention = environment(&format!("no-retention-{s}"));
    no_retention.retention_runs = 0;
    let mut bad_bucket = environment(&format!("bad-bucket-{s}"));
    bad_bucket.storage = StorageConfig::S3(S3Config {
        bucket: "Not_A_Bucket".into(),
        region: "eu-west-1".into(),
        ..Default::default()
    });
    for env in [&empty_name, &no_retention, &bad_bucket] {
        let result = catalog.create_environment(env).await;
        assert!(
            matches!(result, Err(Error::Invalid(_))),
            "{}: {result:?}",
            env.name
        );
        assert_eq!(get(catalog, env.id).await, None);
    }

    let valid = create(catalog, &format!("valid-{s}")).await;
    let mut broken = valid.clone();
    broken.retention_runs = 0;
    let result = catalog.update_environment(&broken).await;
    assert!(matches!(result, Err(Error::Invalid(_))), "{result:?}");
    assert_eq!(get(catalog, valid.id).await, Some(valid));
}

/// Local, ADLS (account key, service principal, emulator) and S3 configurations are
/// read back exactly as stored.
pub async fn storage_configs_round_trip(catalog: &dyn Catalog) {
    let s = suffix();
    let service_principal = StorageConfig::Adls(AdlsConfig {
        account: Some("contoso".into()),
        container: Some("customerinsights".into()),
        tenant_id: Some("00000000-0000-0000-0000-000000000001".into()),
        client_id: Some("00000000-0000-0000-0000-000000000002".into()),
        client_secret: Some(SecretRef::File("/run/secrets/client-secret".into())),
        ..Default::default()
    });
    let emulator = StorageConfig::Adls(AdlsConfig {
        account: Some("devstoreaccount1".into()),
        sas_token: Some(SecretRef::Env("LAKECDP_CONFORMANCE_SAS".into())),
        endpoint: Some("http://127.0.0.1:10000/devstoreaccount1".into()),
        emulator: true,
        allow_flat_namespace: true,
        ..Default::default()
    });
    let configs = [
        ("local", local_storage("/data/lake with spaces/ümlaut")),
        ("adls-key", adls_storage()),
        ("adls-sp", service_principal),
        ("adls-emulator", emulator),
        ("s3", s3_storage()),
    ];
    for (label, storage) in configs {
        let mut env = environment(&format!("{label}-{s}"));
        env.storage = storage;
        env.region = env.storage.region().map(str::to_string);
        catalog
            .create_environment(&env)
            .await
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(get(catalog, env.id).await, Some(env.clone()), "{label}");
        assert_eq!(find(catalog, &env.name).await, Some(env), "{label}");
    }
}

/// Timestamps are read back to the microsecond; finer digits are dropped.
pub async fn timestamps_are_kept_to_the_microsecond(catalog: &dyn Catalog) {
    let precise: DateTime<Utc> = "2026-03-04T05:06:07.123456789Z"
        .parse()
        .expect("a timestamp");
    let kept: DateTime<Utc> = "2026-03-04T05:06:07.123456Z".parse().expect("a timestamp");
    let mut env = environment(&format!("precise-{}", suffix()));
    env.created_at = precise;
    env.updated_at = precise + Duration::nanoseconds(1);
    catalog.create_environment(&env).await.expect("create");
    let stored = get(catalog, env.id).await.expect("stored");
    assert_eq!((stored.created_at, stored.updated_at), (kept, kept));

    let mut r = run(env.id, "unify", precise);
    r.finished_at = Some(precise + Duration::nanoseconds(200));
    record(catalog, &r).await;
    let stored = get_run(catalog, &r.id).await.expect("stored run");
    assert_eq!((stored.started_at, stored.finished_at), (kept, Some(kept)));

    let mut w = watermark(env.id, "Crm", "Contacts", start_of_hour(precise));
    w.updated_at = precise;
    set_watermark(catalog, &w).await;
    let stored = watermarks(catalog, env.id, "Crm").await;
    assert_eq!(
        stored
            .iter()
            .map(|w| (w.hour, w.updated_at))
            .collect::<Vec<_>>(),
        [(start_of_hour(precise), kept)]
    );
}

/// [`CatalogExt::environment_by_name_or_id`] takes an id, a `ci_` folder name or a name
/// in any case.
pub async fn environment_is_found_by_name_or_id(catalog: &dyn Catalog) {
    let env = create(catalog, &format!("Lookup-{}", suffix())).await;
    for key in [
        env.id.to_string(),
        env.id.folder(),
        env.name.clone(),
        env.name.to_ascii_lowercase(),
    ] {
        let found = catalog
            .environment_by_name_or_id(&key)
            .await
            .unwrap_or_else(|e| panic!("{key}: {e}"));
        assert_eq!(found, env, "{key}");
    }
    let unknown = EnvironmentId::new().to_string();
    assert_not_found(
        catalog.environment_by_name_or_id(&unknown).await,
        ENVIRONMENT,
        &unknown,
    );
    let id = EnvironmentId::new();
    assert_not_found(catalog.environment(id).await, ENVIRONMENT, &id.to_string());
}

/// A recorded run is read back equal, then updated to a final status with its end,
/// row count and error.
pub async fn runs_are_recorded_updated_and_read_back(catalog: &dyn Catalog) {
    let env = create(catalog, &format!("runs-{}", suffix())).await;
    let t0 = now();

    let ok = run(env.id, "ingest:crm", t0);
    record(catalog, &ok).await;
    assert_eq!(get_run(catalog, &ok.id).await, Some(ok.clone()));

    // The process and start time stay as recorded.
    let mut moved = ok.clone();
    moved.process = "renamed".into();
    moved.started_at = t0 - Duration::hours(1);
    catalog.update_run(&moved).await.expect("update_run");
    assert_eq!(get_run(catalog, &ok.id).await, Some(ok.clone()));

    let ok = finished(ok, RunStatus::Succeeded, Some(42));
    catalog.update_run(&ok).await.expect("update_run");
    assert_eq!(get_run(catalog, &ok.id).await, Some(ok.clone()));
    assert_eq!(catalog.run(&ok.id).await.expect("run"), ok);

    let mut failed = run(env.id, "unify", t0 + Duration::seconds(1));
    failed.status = RunStatus::Queued;
    record(catalog, &failed).await;
    failed.status = RunStatus::Running;
    catalog
        .update_run(&failed)
        .await
        .expect("update to running");
    let mut failed = finished(failed, RunStatus::Failed, None);
    failed.error = Some("source `crm` has no table `contacts`".into());
    catalog.update_run(&failed).await.expect("update to failed");
    assert_eq!(get_run(catalog, &failed.id).await, Some(failed.clone()));

    let missing = RunId::now();
    assert_eq!(get_run(catalog, &missing).await, None);
    assert_not_found(catalog.run(&missing).await, RUN, missing.as_str());
}

/// Runs are listed newest first, at most `limit` of them.
pub async fn runs_are_listed_newest_first_with_limit(catalog: &dyn Catalog) {
    let env = create(catalog, &format!("listing-{}", suffix())).await;
    let t0 = now() - Duration::hours(1);
    let runs: Vec<RunRecord> = (0..5)
        .map(|i| run(env.id, &format!("process-{i}"), t0 + Duration::minutes(i)))
        .collect();
    for i in [2, 0, 4, 1, 3] {
        record(catalog, &runs[i]).await;
    }
    let newest_first: Vec<RunRecord> = runs.iter().rev().cloned().collect();
    assert_eq!(list_runs(catalog, env.id, 10).await, newest_first);
    assert_eq!(list_runs(catalog, env.id, 5).await, newest_first);
    assert_eq!(list_runs(catalog, env.id, 2).await, newest_first[..2]);
    assert_eq!(list_runs(catalog, env.id, 0).await, []);
    assert_eq!(list_runs(catalog, env.id, usize::MAX).await, newest_first);
}

/// The newest run of a process (of a status) is found however many newer runs of
/// other processes follow it; none when there is none; an unknown environment is not
/// found.
pub async fn the_latest_run_of_a_process_is_found_past_newer_ones(catalog: &dyn Catalog) {
    let env = create(catalog, &format!("latest-{}", suffix())).await;
    let other = create(catalog, &format!("latest-other-{}", suffix())).await;
    let t0 = now() - Duration::hours(2);
    let old = finished(run(env.id, "unify", t0), RunStatus::Succeeded, Some(7));
    record(catalog, &old).await;
    let good = finished(
        run(env.id, "unify", t0 + Duration::minutes(1)),
        RunStatus::Succeeded,
        Some(9),
    );
    record(catalog, &good).await;
    let failed = finished(
        run(env.id, "unify", t0 + Duration::minutes(2)),
        RunStatus::Failed,
        None,
    );
    record(catalog, &failed).await;
    for i in 0..30 {
        record(
            catalog,
            &run(env.id, "ingest:crm", t0 + Duration::minutes(3 + i)),
        )
        .await;
    }
    // a newer unification elsewhere is not this environment's
    record(
        catalog,
        &finished(
            run(other.id, "unify", t0 + Duration::minutes(50)),
            RunStatus::Succeeded,
            Some(1),
        ),
    )
    .await;
    let latest = |process: &'static str, status| async move {
        catalog
            .latest_run(env.id, process, status)
            .await
            .expect("latest_run")
    };
    assert_eq!(
        latest("unify", Some(RunStatus::Succeeded)).await,
        Some(good)
    );
    assert_eq!(latest("unify", None).await, Some(failed));
    assert_eq!(latest("unify", Some(RunStatus::Canceled)).await, None);
    assert_eq!(latest("segments", None).await, None);
    let missing = EnvironmentId::new();
    assert_not_found(
        catalog.latest_run(missing, "unify", None).await,
        ENVIRONMENT,
        &missing.to_string(),
    );
}

/// Runs of one environment never appear in another's list, nor move to another by an
/// update.
pub async fn runs_of_one_environment_are_not_visible_from_another(catalog: &dyn Catalog) {
    let s = suffix();
    let a = create(catalog, &format!("env-a-{s}")).await;
    let b = create(catalog, &format!("env-b-{s}")).await;
    let empty = create(catalog, &format!("env-c-{s}")).await;
    let t0 = now();
    let run_a = run(a.id, "unify", t0);
    let run_b = run(b.id, "unify", t0);
    record(catalog, &run_a).await;
    record(catalog, &run_b).await;
    let mut moved = run_a.clone();
    moved.environment_id = b.id;
    let result = catalog.update_run(&moved).await;
    assert!(matches!(result, Err(Error::Conflict(_))), "{result:?}");
    assert_eq!(list_runs(catalog, a.id, 10).await, [run_a]);
    assert_eq!(list_runs(catalog, b.id, 10).await, [run_b]);
    assert_eq!(list_runs(catalog, empty.id, 10).await, []);
    let unknown = EnvironmentId::new();
    assert_not_found(
        catalog.list_runs(unknown, 10).await,
        ENVIRONMENT,
        &unknown.to_string(),
    );
}

/// Updating a run that was never recorded fails with not found and records nothing.
pub async fn update_of_unknown_run_is_not_found(catalog: &dyn Catalog) {
    let env = create(catalog, &format!("no-run-{}", suffix())).await;
    let ghost = finished(run(env.id, "unify", now()), RunStatus::Succeeded, Some(1));
    assert_not_found(catalog.update_run(&ghost).await, RUN, ghost.id.as_str());
    assert_eq!(get_run(catalog, &ghost.id).await, None);
    assert_eq!(list_runs(catalog, env.id, 10).await, []);
}

/// A run of an unknown environment is refused with not found, a second run with the
/// same id with already exists.
pub async fn runs_need_a_known_environment_and_a_new_id(catalog: &dyn Catalog) {
    let env = create(catalog, &format!("run-ids-{}", suffix())).await;
    let orphan = run(EnvironmentId::new(), "unify", now());
    assert_not_found(
        catalog.record_run(&orphan).await,
        ENVIRONMENT,
        &orphan.environment_id.to_string(),
    );
    assert_eq!(get_run(catalog, &orphan.id).await, None);

    let first = run(env.id, "unify", now());
    record(catalog, &first).await;
    let mut again = first.clone();
    again.process = "measures".into();
    assert_already_exists(catalog.record_run(&again).await, RUN, first.id.as_str());
    assert_eq!(get_run(catalog, &first.id).await, Some(first));

    let nameless = run(env.id, " ", now());
    let result = catalog.record_run(&nameless).await;
    assert!(matches!(result, Err(Error::Invalid(_))), "{result:?}");
}

/// A run with a final status cannot change any more; repeating the same final update
/// is accepted.
pub async fn finished_runs_cannot_change(catalog: &dyn Catalog) {
    let env = create(catalog, &format!("final-{}", suffix())).await;
    let done = run(env.id, "segments", now());
    record(catalog, &done).await;
    let done = finished(done, RunStatus::Canceled, None);
    catalog.update_run(&done).await.expect("cancel");
    catalog
        .update_run(&done)
        .await
        .expect("the same final update again");

    let mut revived = done.clone();
    revived.status = RunStatus::Running;
    revived.finished_at = None;
    let result = catalog.update_run(&revived).await;
    assert!(matches!(result, Err(Error::Conflict(_))), "{result:?}");
    let mut recounted = done.clone();
    recounted.rows = Some(10);
    let result = catalog.update_run(&recounted).await;
    assert!(matches!(result, Err(Error::Conflict(_))), "{result:?}");
    assert_eq!(get_run(catalog, &done.id).await, Some(done));
}

/// The stored row of an ADLS environment holds the secret references (the variable's
/// name, the file's path) and no secret value.
pub async fn stored_storage_holds_secret_references_only(harness: &dyn CatalogHarness) {
    let catalog = harness.catalog();
    let mut env = environment(&format!("secrets-{}", suffix()));
    env.storage = adls_storage();
    catalog.create_environment(&env).await.expect("create");

    let raw = harness
        .raw_environment_row(env.id)
        .await
        .expect("raw_environment_row")
        .expect("the row exists");
    assert!(
        raw.contains(ACCOUNT_KEY_VAR),
        "the row does not name the variable: {raw}"
    );
    assert!(
        !raw.contains(ACCOUNT_KEY_VALUE),
        "the row holds a secret value: {raw}"
    );
    assert!(raw.contains("contoso"), "the row lacks the account: {raw}");
    assert_eq!(get(catalog, env.id).await, Some(env));
}

/// Watermarks are set, replaced (forward and back), listed sorted by table name byte by
/// byte, and cleared one table or a whole source at a time, with the count removed.
pub async fn watermarks_are_set_replaced_listed_and_cleared(catalog: &dyn Catalog) {
    let env = create(catalog, &format!("watermarks-{}", suffix())).await;
    let h0 = start_of_hour(now()) - Duration::days(1);
    assert_eq!(watermarks(catalog, env.id, "Crm").await, []);

    // Set neither sorted nor reversed; upper case sorts before lower case.
    let mut set: Vec<Watermark> = ["orders", "Contacts", "accounts", "order_lines"]
        .into_iter()
        .zip(0..)
        .map(|(table, i)| watermark(env.id, "Crm", table, h0 + Duration::hours(i)))
        .collect();
    for w in &set {
        set_watermark(catalog, w).await;
    }
    set.sort_by(|a, b| a.table.cmp(&b.table));
    let listed = watermarks(catalog, env.id, "Crm").await;
    let tables: Vec<&str> = listed.iter().map(|w| w.table.as_str()).collect();
    assert_eq!(tables, ["Contacts", "accounts", "order_lines", "orders"]);
    assert_eq!(listed, set);

    // Setting again replaces, whether the hour moves forward or back.
    for hours in [30, -5] {
        let mut moved = set[0].clone();
        moved.hour = h0 + Duration::hours(hours);
        moved.updated_at = set[0].updated_at + Duration::minutes(hours);
        set_watermark(catalog, &moved).await;
        set[0] = moved;
        assert_eq!(watermarks(catalog, env.id, "Crm").await, set, "{hours}h");
    }

    // One table: names are compared exactly.
    assert_eq!(
        clear_watermarks(catalog, env.id, "Crm", Some("ORDERS")).await,
        0
    );
    assert_eq!(
        clear_watermarks(catalog, env.id, "Crm", Some("orders")).await,
        1
    );
    assert_eq!(
        clear_watermarks(catalog, env.id, "Crm", Some("orders")).await,
        0
    );
    set.retain(|w| w.table != "orders");
    assert_eq!(watermarks(catalog, env.id, "Crm").await, set);

    // The whole source.
    assert_eq!(clear_watermarks(catalog, env.id, "Crm", None).await, 3);
    assert_eq!(watermarks(catalog, env.id, "Crm").await, []);
    assert_eq!(clear_watermarks(catalog, env.id, "Crm", None).await, 0);

    // A cleared table can be set again.
    set_watermark(catalog, &set[1]).await;
    assert_eq!(watermarks(catalog, env.id, "Crm").await, [set[1].clone()]);
}

/// A watermark of an unknown environment is refused with not found and stored nowhere;
/// an unknown environment has no watermarks to list or clear.
pub async fn watermarks_need_a_known_environment(catalog: &dyn Catalog) {
    let unknown = EnvironmentId::new();
    let orphan = watermark(unknown, "Crm", "Contacts", start_of_hour(now()));
    assert_not_found(
        catalog.set_watermark(&orphan).await,
        ENVIRONMENT,
        &unknown.to_string(),
    );
    assert_eq!(watermarks(catalog, unknown, "Crm").await, []);
    assert_eq!(clear_watermarks(catalog, unknown, "Crm", None).await, 0);
    assert_eq!(
        clear_watermarks(catalog, unknown, "Crm", Some("Contacts")).await,
        0
    );
}

/// A watermark without a source or table name, or whose hour is not the start of an
/// hour, is refused as invalid and changes nothing.
pub async fn invalid_watermarks_are_refused(catalog: &dyn Catalog) {
    let env = create(catalog, &format!("bad-watermarks-{}", suffix())).await;
    let hour = start_of_hour(now());
    let valid = watermark(env.id, "Crm", "Contacts", hour);
    set_watermark(catalog, &valid).await;

    let mut nameless_source = valid.clone();
    nameless_source.source = String::new();
    let mut nameless_table = valid.clone();
    nameless_table.table = "  ".into();
    let mut half_past = valid.clone();
    half_past.hour = hour + Duration::minutes(30);
    let mut just_after = valid.clone();
    just_after.hour = hour + Duration::microseconds(1);
    for (label, bad) in [
        ("no source", nameless_source),
        ("no table", nameless_table),
        ("half past", half_past),
        ("just after", just_after),
    ] {
        let result = catalog.set_watermark(&bad).await;
        assert!(
            matches!(result, Err(Error::Invalid(_))),
            "{label}: {result:?}"
        );
    }
    assert_eq!(watermarks(catalog, env.id, "Crm").await, [valid]);
    assert_eq!(watermarks(catalog, env.id, "").await, []);
}

/// Deleting an environment removes its watermarks and leaves other environments'
/// alone; an environment created again with the same id starts without any.
pub async fn delete_removes_the_environments_watermarks(catalog: &dyn Catalog) {
    let s = suffix();
    let doomed = create(catalog, &format!("doomed-watermarks-{s}")).await;
    let kept = create(catalog, &format!("kept-watermarks-{s}")).await;
    let hour = start_of_hour(now());
    let kept_watermark = watermark(kept.id, "Crm", "Contacts", hour);
    for w in [
        watermark(doomed.id, "Crm", "Contacts", hour),
        watermark(doomed.id, "Erp", "Orders", hour),
        kept_watermark.clone(),
    ] {
        set_watermark(catalog, &w).await;
    }

    catalog
        .delete_environment(doomed.id)
        .await
        .expect("delete_environment");

    for source in ["Crm", "Erp"] {
        assert_eq!(watermarks(catalog, doomed.id, source).await, [], "{source}");
    }
    assert_eq!(watermarks(catalog, kept.id, "Crm").await, [kept_watermark]);

    let mut reborn = environment(&format!("reborn-watermarks-{s}"));
    reborn.id = doomed.id;
    catalog
        .create_environment(&reborn)
        .await
        .expect("create_environment with the deleted id");
    for source in ["Crm", "Erp"] {
        assert_eq!(watermarks(catalog, reborn.id, source).await, [], "{source}");
    }
}

/// Watermarks of one environment or source never appear in another's list, and
/// clearing one source leaves every other alone.
pub async fn watermarks_of_one_environment_or_source_are_not_visible_from_another(
    catalog: &dyn Catalog,
) {
    let s = suffix();
    let a = create(catalog, &format!("watermarks-a-{s}")).await;
    let b = create(catalog, &format!("watermarks-b-{s}")).await;
    let hour = start_of_hour(now());
    let a_crm = watermark(a.id, "Crm", "Contacts", hour - Duration::hours(1));
    let a_erp = watermark(a.id, "Erp", "Contacts", hour - Duration::hours(2));
    let b_crm = watermark(b.id, "Crm", "Contacts", hour - Duration::hours(3));
    for w in [&a_crm, &a_erp, &b_crm] {
        set_watermark(catalog, w).await;
    }

    assert_eq!(
        watermarks(catalog, a.id, "Crm").await,
        std::slice::from_ref(&a_crm)
    );
    assert_eq!(
        watermarks(catalog, a.id, "Erp").await,
        std::slice::from_ref(&a_erp)
    );
    assert_eq!(
        watermarks(catalog, b.id, "Crm").await,
        std::slice::from_ref(&b_crm)
    );
    assert_eq!(watermarks(catalog, b.id, "Erp").await, []);
    // Source names are compared exactly.
    assert_eq!(watermarks(catalog, a.id, "crm").await, []);
    assert_eq!(clear_watermarks(catalog, a.id, "crm", None).await, 0);

    assert_eq!(clear_watermarks(catalog, a.id, "Crm", None).await, 1);
    assert_eq!(watermarks(catalog, a.id, "Crm").await, []);
    assert_eq!(
        watermarks(catalog, a.id, "Erp").await,
        std::slice::from_ref(&a_erp)
    );
    assert_eq!(watermarks(catalog, b.id, "Crm").await, [b_crm]);

    assert_eq!(
        clear_watermarks(catalog, b.id, "Crm", Some("Contacts")).await,
        1
    );
    assert_eq!(watermarks(catalog, b.id, "Crm").await, []);
    assert_eq!(watermarks(catalog, a.id, "Erp").await, [a_erp]);
}

/// A PostgreSQL connection named `name` in `environment_id`, shared as `sharing`.
pub fn pg_connection(
    environment_id: EnvironmentId,
    name: &str,
    sharing: ConnectionSharing,
) -> Connection {
    let at = now();
    Connection {
        id: ConnectionId::new(),
        environment_id,
        name: name.to_string(),
        kind: ConnectionKind::Postgresql,
        settings: [("host", "127.0.0.1"), ("port", "5432"), ("user", "cdp")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        secrets: Vec::new(),
        sharing,
        created_by: "conformance".into(),
        created_at: at,
        updated_at: at,
    }
}

/// An export named `name` of the Customer table through `connection`.
pub fn export(connection: &Connection, name: &str) -> Export {
    let at = now();
    Export {
        id: ExportId::new(),
        environment_id: connection.environment_id,
        name: name.to_string(),
        connection_id: connection.id,
        tables: vec!["Unification/Customer".into()],
        settings: [("database".to_string(), "analytics".to_string())].into(),
        schedule: ExportSchedule::OnRefresh,
        created_by: "conformance".into(),
        created_at: at,
        updated_at: at,
    }
}

/// Roles are set, replaced, read, listed and removed; principals are recorded once.
pub async fn roles_are_set_replaced_listed_and_removed(catalog: &dyn Catalog) {
    let env = create(catalog, &format!("roles-{}", suffix())).await;
    let (ann, bob) = (format!("ann-{}", suffix()), format!("Bob-{}", suffix()));
    let assign = |p: &str, role| RoleAssignment {
        environment_id: env.id,
        principal: p.to_string(),
        role,
        assigned_by: "conformance".into(),
        assigned_at: now(),
    };
    catalog.set_role(&assign(&ann, Role::Viewer)).await.unwrap();
    catalog
        .set_role(&assign(&bob, Role::Contributor))
        .await
        .unwrap();
    catalog.set_role(&assign(&ann, Role::Admin)).await.unwrap();
    assert_eq!(
        catalog.role_of(env.id, &ann).await.unwrap(),
        Some(Role::Admin)
    );
    // names are compared without regard to ASCII case
    assert_eq!(
        catalog.role_of(env.id, &bob.to_lowercase()).await.unwrap(),
        Some(Role::Contributor)
    );
    let listed: Vec<(String, Role)> = catalog
        .list_roles(env.id)
        .await
        .unwrap()
        .into_iter()
        .map(|a| (a.principal, a.role))
        .collect();
    assert_eq!(
        listed,
        vec![(ann.clone(), Role::Admin), (bob.clone(), Role::Contributor)]
    );
    let first = catalog
        .upsert_principal(&Principal::person(&ann))
        .await
        .unwrap();
    let again = catalog
        .upsert_principal(&Principal::person(&ann))
        .await
        .unwrap();
    assert_eq!(first, again, "a recorded principal is kept as it was");
    assert!(catalog.remove_role(env.id, &ann).await.unwrap());
    assert!(!catalog.remove_role(env.id, &ann).await.unwrap());
    assert_eq!(catalog.role_of(env.id, &ann).await.unwrap(), None);
    let other = environment("no-such");
    assert!(matches!(
        catalog
            .set_role(&RoleAssignment {
                environment_id: other.id,
                ..assign(&ann, Role::Viewer)
            })
            .await,
        Err(Error::NotFound { .. })
    ));
}

/// Connections round-trip, names are unique per environment, secrets are listed by name
/// and replaced one at a time.
pub async fn connections_and_their_sealed_secrets_round_trip(catalog: &dyn Catalog) {
    let env = create(catalog, &format!("conn-{}", suffix())).await;
    let c = pg_connection(
        env.id,
        "Warehouse",
        ConnectionSharing::AdminsAndContributors,
    );
    catalog.create_connection(&c).await.unwrap();
    let dup = pg_connection(env.id, "warehouse", ConnectionSharing::Admins);
    assert!(matches!(
        catalog.create_connection(&dup).await,
        Err(Error::AlreadyExists {
            kind: CONNECTION,
            ..
        })
    ));
    catalog
        .set_connection_secret(c.id, "password", b"sealed-1")
        .await
        .unwrap();
    let read = catalog
        .find_connection(env.id, "WAREHOUSE")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.secrets, vec!["password".to_string()]);
    assert_eq!(
        Connection {
            secrets: Vec::new(),
            updated_at: c.updated_at,
            ..read.clone()
        },
        c
    );
    assert!(read.updated_at >= c.updated_at);
    assert_eq!(
        catalog
            .connection_secret(c.id, "password")
            .await
            .unwrap()
            .as_deref(),
        Some(&b"sealed-1"[..])
    );
    assert!(matches!(
        catalog.set_connection_secret(c.id, "host", b"x").await,
        Err(Error::Invalid(_))
    ));
    let mut changed = read.clone();
    changed.settings.insert("port".into(), "6543".into());
    changed.sharing = ConnectionSharing::Admins;
    catalog.update_connection(&changed).await.unwrap();
    let read = catalog.get_connection(c.id).await.unwrap().unwrap();
    assert_eq!(read.setting("port"), Some("6543"));
    assert_eq!(read.sharing, ConnectionSharing::Admins);
    let mut bad = read.clone();
    bad.settings.insert("password".into(), "plain".into());
    assert!(matches!(
        catalog.update_connection(&bad).await,
        Err(Error::Invalid(_))
    ));
    // a master-key rotation swaps every blob at once, or none
    let ours: Vec<SealedSecret> = catalog
        .sealed_secrets()
        .await
        .unwrap()
        .into_iter()
        .filter(|s| s.owner == SecretOwner::Connection(c.id))
        .map(|s| SealedSecret {
            sealed: b"sealed-2".to_vec(),
            ..s
        })
        .collect();
    assert_eq!(ours.len(), 1);
    let unknown = SealedSecret {
        owner: SecretOwner::Connection(ConnectionId::new()),
        name: "password".into(),
        sealed: b"x".to_vec(),
    };
    let mut with_unknown = ours.clone();
    with_unknown.push(unknown);
    assert!(catalog.replace_sealed_secrets(&with_unknown).await.is_err());
    assert_eq!(
        catalog
            .connection_secret(c.id, "password")
            .await
            .unwrap()
            .as_deref(),
        Some(&b"sealed-1"[..])
    );
    catalog.replace_sealed_secrets(&ours).await.unwrap();
    assert_eq!(
        catalog
            .connection_secret(c.id, "password")
            .await
            .unwrap()
            .as_deref(),
        Some(&b"sealed-2"[..])
    );
}

/// Exports round-trip; a connection that exports use cannot be deleted.
pub async fn a_connection_used_by_exports_cannot_be_deleted(catalog: &dyn Catalog) {
    let env = create(catalog, &format!("exp-{}", suffix())).await;
    let c = pg_connection(env.id, "pg", ConnectionSharing::Admins);
    catalog.create_connection(&c).await.unwrap();
    let e = export(&c, "Nightly");
    catalog.create_export(&e).await.unwrap();
    let read = catalog
        .find_export(env.id, "nightly")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read, e);
    let mut changed = read.clone();
    changed.tables.push("Unification/AlternateKey".into());
    changed.schedule = "daily 02:00 Europe/Paris".parse().unwrap();
    catalog.update_export(&changed).await.unwrap();
    assert_eq!(
        catalog.list_exports(env.id).await.unwrap(),
        vec![changed.clone()]
    );
    match catalog.delete_connection(c.id).await {
        Err(Error::ConnectionInUse {
            connection,
            exports,
        }) => {
            assert_eq!(connection, "pg");
            assert_eq!(exports, vec!["Nightly".to_string()]);
        }
        other => panic!("a used connection was deleted: {other:?}"),
    }
    catalog.delete_export(e.id).await.unwrap();
    catalog.delete_connection(c.id).await.unwrap();
    assert_eq!(catalog.get_connection(c.id).await.unwrap(), None);
    assert!(catalog
        .sealed_secrets()
        .await
        .unwrap()
        .iter()
        .all(|s| s.owner != SecretOwner::Connection(c.id)));
}

/// An export needs a valid selection and a connection of its own environment.
pub async fn exports_need_a_connection_of_their_environment(catalog: &dyn Catalog) {
    let env = create(catalog, &format!("exp-a-{}", suffix())).await;
    let other = create(catalog, &format!("exp-b-{}", suffix())).await;
    let theirs = pg_connection(other.id, "pg", ConnectionSharing::Admins);
    catalog.create_connection(&theirs).await.unwrap();
    let mut e = export(&theirs, "x");
    e.environment_id = env.id;
    assert!(matches!(
        catalog.create_export(&e).await,
        Err(Error::NotFound {
            kind: CONNECTION,
            ..
        })
    ));
    let ours = pg_connection(env.id, "pg", ConnectionSharing::Admins);
    catalog.create_connection(&ours).await.unwrap();
    let mut e = export(&ours, "x");
    e.tables = vec!["Customer".into()];
    assert!(matches!(
        catalog.create_export(&e).await,
        Err(Error::Invalid(_))
    ));
}

/// Deleting an environment removes its roles, connections, secrets and exports.
pub async fn delete_removes_the_environments_connections_and_exports(catalog: &dyn Catalog) {
    let env = create(catalog, &format!("del-{}", suffix())).await;
    let c = pg_connection(env.id, "pg", ConnectionSharing::Admins);
    catalog.create_connection(&c).await.unwrap();
    catalog
        .set_connection_secret(c.id, "password", b"s")
        .await
        .unwrap();
    catalog.create_export(&export(&c, "e")).await.unwrap();
    catalog
        .set_role(&RoleAssignment {
            environment_id: env.id,
            principal: "someone".into(),
            role: Role::Viewer,
            assigned_by: "conformance".into(),
            assigned_at: now(),
        })
        .await
        .unwrap();
    catalog.delete_environment(env.id).await.unwrap();
    assert_eq!(catalog.get_connection(c.id).await.unwrap(), None);
    assert!(catalog.list_exports(env.id).await.unwrap().is_empty());
    assert!(catalog.list_roles(env.id).await.unwrap().is_empty());
    assert!(catalog
        .sealed_secrets()
        .await
        .unwrap()
        .iter()
        .all(|s| s.owner != SecretOwner::Connection(c.id)));
}

/// Environments keep sealed secrets: set, replaced, listed by name, rotated with the
/// connections' secrets, removed, and gone with the environment.
pub async fn environment_secrets_are_sealed_listed_rotated_and_removed(catalog: &dyn Catalog) {
    let env = create(catalog, &format!("envsec-{}", suffix())).await;
    catalog
        .set_environment_secret(env.id, "account_key", b"s1")
        .await
        .unwrap();
    catalog
        .set_environment_secret(env.id, "account_key", b"s2")
        .await
        .unwrap();
    catalog
        .set_environment_secret(env.id, "client_secret", b"c1")
        .await
        .unwrap();
    assert_eq!(
        catalog.environment_secret_names(env.id).await.unwrap(),
        ["account_key", "client_secret"]
    );
    assert_eq!(
        catalog
            .environment_secret(env.id, "account_key")
            .await
            .unwrap()
            .as_deref(),
        Some(&b"s2"[..])
    );
    let ours: Vec<SealedSecret> = catalog
        .sealed_secrets()
        .await
        .unwrap()
        .into_iter()
        .filter(|s| s.owner == SecretOwner::Environment(env.id))
        .map(|s| SealedSecret {
            sealed: [s.sealed.as_slice(), b"-new"].concat(),
            ..s
        })
        .collect();
    assert_eq!(ours.len(), 2);
    catalog.replace_sealed_secrets(&ours).await.unwrap();
    assert_eq!(
        catalog
            .environment_secret(env.id, "client_secret")
            .await
            .unwrap()
            .as_deref(),
        Some(&b"c1-new"[..])
    );
    assert!(catalog
        .remove_environment_secret(env.id, "client_secret")
        .await
        .unwrap());
    assert!(!catalog
        .remove_environment_secret(env.id, "client_secret")
        .await
        .unwrap());
    assert!(matches!(
        catalog
            .set_environment_secret(EnvironmentId::new(), "x", b"x")
            .await,
        Err(Error::NotFound { .. })
    ));
    catalog.delete_environment(env.id).await.unwrap();
    assert!(catalog
        .environment_secret_names(env.id)
        .await
        .unwrap()
        .is_empty());
}

/// The processes of a refresh are runs that name it; they are listed in start order.
pub async fn processes_of_a_refresh_are_its_child_runs(catalog: &dyn Catalog) {
    let env = create(catalog, &format!("tree-{}", suffix())).await;
    let t0 = now();
    let refresh = run(env.id, "refresh", t0);
    catalog.record_run(&refresh).await.unwrap();
    let mut ingest = run(env.id, "ingest:crm", t0 + Duration::milliseconds(1));
    ingest.parent = Some(refresh.id.clone());
    let mut unify = run(env.id, "unify", t0 + Duration::milliseconds(2));
    unify.parent = Some(refresh.id.clone());
    catalog.record_run(&unify).await.unwrap();
    catalog.record_run(&ingest).await.unwrap();
    catalog
        .record_run(&run(env.id, "env-check", t0))
        .await
        .unwrap();
    let children = catalog.child_runs(&refresh.id).await.unwrap();
    assert_eq!(
        children
            .iter()
            .map(|r| r.process.as_str())
            .collect::<Vec<_>>(),
        ["ingest:crm", "unify"]
    );
    assert_eq!(children[0], ingest);
    assert_eq!(
        catalog.run(&unify.id).await.unwrap().parent,
        Some(refresh.id.clone())
    );
    assert!(catalog.child_runs(&ingest.id).await.unwrap().is_empty());
}

/// Revision `number` of `environment_id` with `text`, applied now.
pub fn revision(environment_id: EnvironmentId, number: u32, text: &str) -> Revision {
    Revision {
        environment_id,
        number,
        text: text.to_string(),
        hash: format!("{:064x}", u128::from(number) + text.len() as u128),
        base_dir: "/projects/retail".into(),
        applied_by: "conformance".into(),
        applied_at: now(),
    }
}

/// Revisions are numbered from 1, read by number or latest, listed newest first; a run
/// records the revision it ran.
pub async fn revisions_are_numbered_read_and_listed(catalog: &dyn Catalog) {
    let env = create(catalog, &format!("rev-{}", suffix())).await;
    assert_eq!(catalog.revision(env.id, None).await.unwrap(), None);
    assert!(catalog.list_revisions(env.id).await.unwrap().is_empty());
    let first = revision(env.id, 1, "[environment]\nname = \"a\"\n");
    let second = revision(env.id, 2, "[environment]\nname = \"a\" # changed\n");
    catalog.add_revision(&first).await.unwrap();
    catalog.add_revision(&second).await.unwrap();
    assert_eq!(
        catalog.revision(env.id, None).await.unwrap(),
        Some(second.clone())
    );
    assert_eq!(
        catalog.revision(env.id, Some(1)).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(catalog.revision(env.id, Some(3)).await.unwrap(), None);
    assert_eq!(
        catalog.list_revisions(env.id).await.unwrap(),
        vec![second.clone(), first.clone()]
    );
    // another environment sees none of them
    let other = create(catalog, &format!("rev-other-{}", suffix())).await;
    assert_eq!(catalog.revision(other.id, None).await.unwrap(), None);
    // a run names its revision
    let mut r = run(env.id, "refresh", now());
    r.revision = Some(2);
    record(catalog, &r).await;
    assert_eq!(get_run(catalog, &r.id).await.unwrap().revision, Some(2));
}

/// A number taken (two applies racing) is a conflict; a gap, zero, no text or no hash
/// is invalid; an unknown environment is not found.
pub async fn invalid_or_racing_revisions_are_refused(catalog: &dyn Catalog) {
    let env = create(catalog, &format!("rev-bad-{}", suffix())).await;
    catalog
        .add_revision(&revision(env.id, 1, "text"))
        .await
        .unwrap();
    let taken = catalog
        .add_revision(&revision(env.id, 1, "other text"))
        .await
        .unwrap_err();
    assert!(matches!(taken, Error::Conflict(_)), "{taken}");
    let gap = catalog
        .add_revision(&revision(env.id, 3, "text"))
        .await
        .unwrap_err();
    assert!(matches!(gap, Error::Invalid(_)), "{gap}");
    let zero = catalog
        .add_revision(&revision(env.id, 0, "text"))
        .await
        .unwrap_err();
    assert!(matches!(zero, Error::Invalid(_)), "{zero}");
    let empty = catalog
        .add_revision(&revision(env.id, 2, " "))
        .await
        .unwrap_err();
    assert!(matches!(empty, Error::Invalid(_)), "{empty}");
    let mut no_hash = revision(env.id, 2, "text");
    no_hash.hash = "abc".into();
    let e = catalog.add_revision(&no_hash).await.unwrap_err();
    assert!(matches!(e, Error::Invalid(_)), "{e}");
    let unknown = catalog
        .add_revision(&revision(EnvironmentId::new(), 1, "text"))
        .await
        .unwrap_err();
    assert!(matches!(unknown, Error::NotFound { .. }), "{unknown}");
    // nothing of the refused ones was stored
    assert_eq!(catalog.list_revisions(env.id).await.unwrap().len(), 1);
}

/// Deleting an environment removes its revisions.
pub async fn delete_removes_the_environments_revisions(catalog: &dyn Catalog) {
    let env = create(catalog, &format!("rev-del-{}", suffix())).await;
    catalog
        .add_revision(&revision(env.id, 1, "text"))
        .await
        .unwrap();
    catalog.delete_environment(env.id).await.unwrap();
    assert!(catalog.list_revisions(env.id).await.unwrap().is_empty());
}

/// A rotation replaces every secret only if none was sealed, changed or removed since
/// they were read.
pub async fn a_rotation_sees_every_secret_it_replaces(catalog: &dyn Catalog) {
    let env = create(catalog, &format!("rotate-{}", suffix())).await;
    catalog
        .set_environment_secret(env.id, "account_key", b"old-1")
        .await
        .unwrap();
    let read = catalog.sealed_secrets().await.unwrap();
    let resealed: Vec<SealedSecret> = read
        .iter()
        .map(|s| SealedSecret {
            sealed: [s.sealed.as_slice(), b"-new"].concat(),
            ..s.clone()
        })
        .collect();
    // sealed meanwhile: it would stay under the old key
    catalog
        .set_environment_secret(env.id, "client_secret", b"old-2")
        .await
        .unwrap();
    let e = catalog
        .rotate_sealed_secrets(&read, &resealed)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Conflict(_)), "{e}");
    assert_eq!(
        catalog
            .environment_secret(env.id, "account_key")
            .await
            .unwrap()
            .as_deref(),
        Some(&b"old-1"[..]),
        "nothing changed"
    );
    // changed meanwhile: it would be reverted
    let read = catalog.sealed_secrets().await.unwrap();
    catalog
        .set_environment_secret(env.id, "account_key", b"rotated-by-hand")
        .await
        .unwrap();
    let resealed: Vec<SealedSecret> = read
        .iter()
        .map(|s| SealedSecret {
            sealed: [s.sealed.as_slice(), b"-new"].concat(),
            ..s.clone()
        })
        .collect();
    assert!(matches!(
        catalog.rotate_sealed_secrets(&read, &resealed).await,
        Err(Error::Conflict(_))
    ));
    // nothing in between: every secret is replaced
    let read = catalog.sealed_secrets().await.unwrap();
    let resealed: Vec<SealedSecret> = read
        .iter()
        .map(|s| SealedSecret {
            sealed: [s.sealed.as_slice(), b"-new"].concat(),
            ..s.clone()
        })
        .collect();
    catalog
        .rotate_sealed_secrets(&read, &resealed)
        .await
        .unwrap();
    assert_eq!(
        catalog
            .environment_secret(env.id, "account_key")
            .await
            .unwrap()
            .as_deref(),
        Some(&b"rotated-by-hand-new"[..])
    );
    assert_eq!(
        catalog
            .environment_secret(env.id, "client_secret")
            .await
            .unwrap()
            .as_deref(),
        Some(&b"old-2-new"[..])
    );
}

/// Principals' flags are set and read back; passwords belong to people only and are
/// replaced; `upsert_principal` keeps the flags.
pub async fn principal_flags_and_passwords_round_trip(catalog: &dyn Catalog) {
    let ann = format!("ann-{}", suffix());
    catalog
        .upsert_principal(&Principal::person(&ann))
        .await
        .unwrap();
    let stored = catalog
        .get_principal(&ann.to_uppercase())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.name, ann);
    assert!(!stored.disabled && !stored.administrator);
    catalog.set_principal_flags(&ann, true, true).await.unwrap();
    catalog
        .upsert_principal(&Principal::person(&ann))
        .await
        .unwrap();
    let stored = catalog.get_principal(&ann).await.unwrap().unwrap();
    assert!(
        stored.disabled && stored.administrator,
        "upsert keeps the flags"
    );
    catalog
        .set_principal_flags(&ann, false, true)
        .await
        .unwrap();
    assert!(!catalog.get_principal(&ann).await.unwrap().unwrap().disabled);
    assert_kind_not_found(
        catalog
            .set_principal_flags(&format!("nobody-{}", suffix()), true, false)
            .await,
        "principal",
    );
    assert!(catalog.password(&ann).await.unwrap().is_none());
    let first = PasswordCredential {
        principal: ann.clone(),
        hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        changed_at: now(),
    };
    catalog.set_password(&first).await.unwrap();
    assert_eq!(
        catalog.password(&ann.to_uppercase()).await.unwrap(),
        Some(first.clone())
    );
    let second = PasswordCredential {
        hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdDI$aGFzaDI".into(),
        ..first.clone()
    };
    catalog.set_password(&second).await.unwrap();
    assert_eq!(catalog.password(&ann).await.unwrap(), Some(second));
    let group = format!("group-{}", suffix());
    catalog
        .upsert_principal(&Principal::new(&group, PrincipalKind::Group))
        .await
        .unwrap();
    assert!(matches!(
        catalog
            .set_password(&PasswordCredential {
                principal: group,
                ..first.clone()
            })
            .await,
        Err(Error::Invalid(_))
    ));
    assert_kind_not_found(
        catalog
            .set_password(&PasswordCredential {
                principal: format!("nobody-{}", suffix()),
                ..first
            })
            .await,
        "principal",
    );
}

/// Groups hold people, not groups; a member's grants include its groups' roles; deleting
/// a group removes its memberships and roles.
pub async fn groups_hold_members_and_pass_on_their_roles(catalog: &dyn Catalog) {
    let env = create(catalog, &format!("groups-{}", suffix())).await;
    let (ann, bob) = (format!("ann-{}", suffix()), format!("bob-{}", suffix()));
    let (readers, writers) = (
        format!("Readers-{}", suffix()),
        format!("writers-{}", suffix()),
    );
    for name in [&ann, &bob] {
        catalog
            .upsert_principal(&Principal::person(name))
            .await
            .unwrap();
    }
    for name in [&readers, &writers] {
        catalog
            .upsert_principal(&Principal::new(name, PrincipalKind::Group))
            .await
            .unwrap();
    }
    assert!(catalog.add_group_member(&readers, &ann).await.unwrap());
    assert!(!catalog
        .add_group_member(&readers.to_lowercase(), &ann)
        .await
        .unwrap());
    assert!(catalog.add_group_member(&readers, &bob).await.unwrap());
    assert!(catalog
        .add_group_member(&writers, &ann.to_uppercase())
        .await
        .unwrap());
    assert!(matches!(
        catalog.add_group_member(&readers, &writers).await,
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        catalog.add_group_member(&ann, &bob).await,
        Err(Error::Invalid(_))
    ));
    assert_kind_not_found(
        catalog
            .add_group_member(&format!("nogroup-{}", suffix()), &ann)
            .await,
        "group",
    );
    assert_kind_not_found(
        catalog
            .add_group_member(&readers, &format!("nobody-{}", suffix()))
            .await,
        "principal",
    );
    assert_eq!(
        catalog.group_members(&readers).await.unwrap(),
        vec![ann.clone(), bob.clone()]
    );
    let mut expected = vec![readers.clone(), writers.clone()];
    expected.sort_by_key(|g| g.to_ascii_lowercase());
    assert_eq!(catalog.groups_of(&ann).await.unwrap(), expected);

    let assign = |p: &str, role| RoleAssignment {
        environment_id: env.id,
        principal: p.to_string(),
        role,
        assigned_by: "conformance".into(),
        assigned_at: now(),
    };
    catalog
        .set_role(&assign(&readers, Role::Viewer))
        .await
        .unwrap();
    catalog
        .set_role(&assign(&writers, Role::Contributor))
        .await
        .unwrap();
    catalog.set_role(&assign(&bob, Role::Admin)).await.unwrap();
    let roles = |grants: Vec<RoleAssignment>| {
        grants
            .into_iter()
            .map(|g| (g.principal, g.role))
            .collect::<Vec<_>>()
    };
    let mut ann_expected = vec![
        (readers.clone(), Role::Viewer),
        (writers.clone(), Role::Contributor),
    ];
    ann_expected.sort_by_key(|(g, _)| g.to_ascii_lowercase());
    assert_eq!(
        roles(catalog.grants(env.id, &ann).await.unwrap()),
        ann_expected
    );
    let mut bob_expected = vec![(readers.clone(), Role::Viewer), (bob.clone(), Role::Admin)];
    bob_expected.sort_by_key(|(g, _)| g.to_ascii_lowercase());
    assert_eq!(
        roles(catalog.grants(env.id, &bob).await.unwrap()),
        bob_expected
    );
    let elsewhere = create(catalog, &format!("groups-other-{}", suffix())).await;
    assert!(catalog.grants(elsewhere.id, &ann).await.unwrap().is_empty());

    assert!(catalog.remove_group_member(&readers, &bob).await.unwrap());
    assert!(!catalog.remove_group_member(&readers, &bob).await.unwrap());
    assert_eq!(
        roles(catalog.grants(env.id, &bob).await.unwrap()),
        vec![(bob.clone(), Role::Admin)]
    );

    assert!(catalog.delete_group(&writers).await.unwrap());
    assert!(!catalog.delete_group(&writers).await.unwrap());
    assert!(catalog.get_principal(&writers).await.unwrap().is_none());
    assert_eq!(
        catalog.groups_of(&ann).await.unwrap(),
        vec![readers.clone()]
    );
    assert_eq!(
        roles(catalog.grants(env.id, &ann).await.unwrap()),
        vec![(readers, Role::Viewer)]
    );
    assert!(matches!(
        catalog.delete_group(&ann).await,
        Err(Error::Invalid(_))
    ));
}

/// Sessions are found by digest, touched, and ended one by one or all of a principal's.
pub async fn sessions_are_created_touched_and_ended(catalog: &dyn Catalog) {
    let ann = format!("ann-{}", suffix());
    catalog
        .upsert_principal(&Principal::person(&ann))
        .await
        .unwrap();
    let at = now();
    let session = |hash: &str| Session {
        token_hash: hash.to_string(),
        principal: ann.clone(),
        created_at: at,
        last_seen_at: at,
        expires_at: at + Duration::hours(12),
        address: Some("127.0.0.1".into()),
    };
    let (one, two) = (format!("h1-{}", suffix()), format!("h2-{}", suffix()));
    catalog.create_session(&session(&one)).await.unwrap();
    catalog.create_session(&session(&two)).await.unwrap();
    assert_kind_already_exists(catalog.create_session(&session(&one)).await, "session");
    assert_eq!(catalog.session(&one).await.unwrap(), Some(session(&one)));
    let later = at + Duration::minutes(5);
    assert!(catalog.touch_session(&one, later).await.unwrap());
    assert_eq!(
        catalog.session(&one).await.unwrap().unwrap().last_seen_at,
        later
    );
    assert!(!catalog.touch_session("no-such-hash", later).await.unwrap());
    assert!(catalog.delete_session(&one).await.unwrap());
    assert!(!catalog.delete_session(&one).await.unwrap());
    assert!(catalog.session(&one).await.unwrap().is_none());
    catalog.create_session(&session(&one)).await.unwrap();
    assert_eq!(
        catalog
            .delete_sessions_of(&ann.to_uppercase())
            .await
            .unwrap(),
        2
    );
    assert!(catalog.session(&two).await.unwrap().is_none());
    assert_kind_not_found(
        catalog
            .create_session(&Session {
                principal: format!("nobody-{}", suffix()),
                ..session("h3")
            })
            .await,
        "principal",
    );
}

/// API tokens need an environment, are found by digest, listed by name, revoked (the name
/// is free again) and touched; they go with their environment.
pub async fn api_tokens_are_scoped_listed_and_revoked(catalog: &dyn Catalog) {
    let env = create(catalog, &format!("tokens-{}", suffix())).await;
    let at = now();
    let token = |name: &str| ApiToken {
        id: format!("id-{}", suffix()),
        name: name.to_string(),
        environment_id: env.id,
        role: Role::Viewer,
        token_hash: format!("hash-{}", suffix()),
        created_by: "conformance".into(),
        created_at: at,
        expires_at: Some(at + Duration::days(90)),
        revoked_at: None,
        last_used_at: None,
    };
    let reports = token("reports");
    let etl = ApiToken {
        role: Role::Contributor,
        expires_at: None,
        ..token("ETL")
    };
    catalog.create_token(&reports).await.unwrap();
    catalog.create_token(&etl).await.unwrap();
    assert_already_exists(
        catalog.create_token(&token("Reports")).await,
        "token",
        "Reports",
    );
    assert_eq!(
        catalog.token_by_hash(&reports.token_hash).await.unwrap(),
        Some(reports.clone())
    );
    assert!(catalog
        .token_by_hash("no-such-hash")
        .await
        .unwrap()
        .is_none());
    let names: Vec<String> = catalog
        .list_tokens(env.id)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, vec!["ETL".to_string(), "reports".to_string()]);
    let used = at + Duration::seconds(3);
    catalog.touch_token(&etl.id, used).await.unwrap();
    assert_eq!(
        catalog
            .token_by_hash(&etl.token_hash)
            .await
            .unwrap()
            .unwrap()
            .last_used_at,
        Some(used)
    );
    assert!(catalog.revoke_token(env.id, "REPORTS", used).await.unwrap());
    assert!(!catalog.revoke_token(env.id, "reports", used).await.unwrap());
    let revoked = catalog
        .token_by_hash(&reports.token_hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(revoked.revoked_at, Some(used));
    assert!(!revoked.is_active(used));
    // the name of a revoked token may be used again
    catalog.create_token(&token("reports")).await.unwrap();
    assert_eq!(catalog.list_tokens(env.id).await.unwrap().len(), 3);
    assert_kind_not_found(
        catalog
            .create_token(&ApiToken {
                environment_id: EnvironmentId::new(),
                ..token("x")
            })
            .await,
        "environment",
    );
    catalog.delete_environment(env.id).await.unwrap();
    assert!(catalog
        .token_by_hash(&etl.token_hash)
        .await
        .unwrap()
        .is_none());
}

/// Failed sign-ins are counted per key within a window, and forgotten on request.
pub async fn sign_in_failures_are_counted_in_a_window(catalog: &dyn Catalog) {
    let key = format!("account:ann-{}", suffix());
    let window = Duration::minutes(15);
    let t0 = now();
    assert!(catalog.sign_in_failures(&key).await.unwrap().is_none());
    for i in 1..=3 {
        let t = catalog
            .record_sign_in_failure(&key, t0 + Duration::minutes(i64::from(i)), window)
            .await
            .unwrap();
        assert_eq!((t.failures, t.first_at), (i, t0 + Duration::minutes(1)));
    }
    let stored = catalog.sign_in_failures(&key).await.unwrap().unwrap();
    assert_eq!(
        (stored.failures, stored.last_at),
        (3, t0 + Duration::minutes(3))
    );
    // past the window the count starts again
    let late = t0 + Duration::minutes(30);
    let t = catalog
        .record_sign_in_failure(&key, late, window)
        .await
        .unwrap();
    assert_eq!((t.failures, t.first_at), (1, late));
    let other = format!("address:10.0.0.{}", suffix().len());
    catalog
        .record_sign_in_failure(&other, late, window)
        .await
        .unwrap();
    catalog.clear_sign_in_failures(&key).await.unwrap();
    assert!(catalog.sign_in_failures(&key).await.unwrap().is_none());
    assert!(catalog.sign_in_failures(&other).await.unwrap().is_some());
    catalog.clear_sign_in_failures(&other).await.unwrap();
}

/// The audit log numbers entries in order, reads them newest first with filters and
/// paging, and outlives the environment it names.
pub async fn audit_entries_are_appended_and_read_newest_first(catalog: &dyn Catalog) {
    let env = create(catalog, &format!("audit-{}", suffix())).await;
    let actor = format!("Ann-{}", suffix());
    let entry = |action: &str, environment_id| AuditEntry {
        id: 0,
        at: now(),
        actor: actor.clone(),
        action: action.to_string(),
        environment_id,
        object: "obj".into(),
        outcome: AuditOutcome::Succeeded,
        address: Some("127.0.0.1".into()),
    };
    let a = catalog.append_audit(&entry("sign-in", None)).await.unwrap();
    let b = catalog
        .append_audit(&entry("refresh.start", Some(env.id)))
        .await
        .unwrap();
    let c = catalog
        .append_audit(&AuditEntry {
            outcome: AuditOutcome::Denied,
            ..entry("role.set", Some(env.id))
        })
        .await
        .unwrap();
    assert!(a < b && b < c, "entries are numbered in order of writing");
    let mine = catalog
        .audit(&AuditQuery {
            actor: Some(actor.to_lowercase()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(mine.iter().map(|e| e.id).collect::<Vec<_>>(), vec![c, b, a]);
    assert_eq!(mine[0].outcome, AuditOutcome::Denied);
    assert_eq!(mine[2].environment_id, None);
    let in_env = catalog
        .audit(&AuditQuery {
            environment_id: Some(env.id),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(in_env.iter().map(|e| e.id).collect::<Vec<_>>(), vec![c, b]);
    let page = catalog
        .audit(&AuditQuery {
            environment_id: Some(env.id),
            before: Some(c),
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.iter().map(|e| e.id).collect::<Vec<_>>(), vec![b]);
    catalog.delete_environment(env.id).await.unwrap();
    let kept = catalog
        .audit(&AuditQuery {
            environment_id: Some(env.id),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(kept.len(), 2, "the log outlives the environment");
}

/// A run's events are numbered and read after a number; cancel requests are recorded;
/// both need a known run and go with its environment.
pub async fn run_events_and_cancel_requests_are_shared(catalog: &dyn Catalog) {
    let env = create(catalog, &format!("events-{}", suffix())).await;
    let run = run(env.id, "unify", now());
    record(catalog, &run).await;
    let at = now();
    for (i, body) in ["{\"a\":1}", "{\"b\":2}", "{\"c\":3}"].iter().enumerate() {
        assert_eq!(
            catalog.append_run_event(&run.id, at, body).await.unwrap(),
            i as u64 + 1
        );
    }
    let all = catalog.run_events(&run.id, 0, 100).await.unwrap();
    assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(all[1].body, "{\"b\":2}");
    let after = catalog.run_events(&run.id, 1, 1).await.unwrap();
    assert_eq!(after.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![2]);
    let unknown = RunId::new(now());
    assert_kind_not_found(catalog.append_run_event(&unknown, at, "{}").await, RUN);
    assert!(catalog
        .run_events(&unknown, 0, 10)
        .await
        .unwrap()
        .is_empty());

    assert!(!catalog.cancel_requested(&run.id).await.unwrap());
    catalog.request_cancel(&run.id, at).await.unwrap();
    catalog.request_cancel(&run.id, at).await.unwrap();
    assert!(catalog.cancel_requested(&run.id).await.unwrap());
    assert_kind_not_found(catalog.request_cancel(&unknown, at).await, RUN);
    catalog.delete_environment(env.id).await.unwrap();
    assert!(catalog.run_events(&run.id, 0, 10).await.unwrap().is_empty());
}

/// A key is made by the first process that asks for it; every later ask, with whatever
/// fresh bytes, gets the same key; keys of other names are their own.
pub async fn a_key_is_made_once_and_then_the_same_for_everyone(catalog: &dyn Catalog) {
    let name = format!("sharing-urls-{}", suffix());
    let first = catalog.key(&name, [7; 32], now()).await.unwrap();
    assert_eq!(first, [7; 32]);
    assert_eq!(catalog.key(&name, [9; 32], now()).await.unwrap(), first);
    let other = format!("other-{}", suffix());
    assert_eq!(catalog.key(&other, [9; 32], now()).await.unwrap(), [9; 32]);
    // many first asks at once: one key wins for all
    let name = format!("raced-{}", suffix());
    let t = now();
    let (a, b, c, d) = tokio::join!(
        catalog.key(&name, [1; 32], t),
        catalog.key(&name, [2; 32], t),
        catalog.key(&name, [3; 32], t),
        catalog.key(&name, [4; 32], t),
    );
    let keys = [a.unwrap(), b.unwrap(), c.unwrap(), d.unwrap()];
    assert!(keys.iter().all(|k| *k == keys[0]), "{keys:?}");
}

/// Leadership goes to one holder at a time, is renewed by it, taken over once expired,
/// and released only by its holder.
pub async fn leadership_is_taken_renewed_and_taken_over(catalog: &dyn Catalog) {
    let name = format!("scheduler-{}", suffix());
    let t0 = now();
    let ttl = Duration::seconds(30);
    let a = catalog
        .take_leadership(&name, "a", t0, t0 + ttl)
        .await
        .unwrap();
    assert_eq!((a.holder.as_str(), a.expires_at), ("a", t0 + ttl));
    let b = catalog
        .take_leadership(&name, "b", t0 + Duration::seconds(1), t0 + ttl * 2)
        .await
        .unwrap();
    assert_eq!(
        (b.holder.as_str(), b.expires_at),
        ("a", t0 + ttl),
        "a holds it"
    );
    let renewed = catalog
        .take_leadership(
            &name,
            "a",
            t0 + Duration::seconds(10),
            t0 + Duration::seconds(40),
        )
        .await
        .unwrap();
    assert_eq!(
        (renewed.holder.as_str(), renewed.expires_at),
        ("a", t0 + Duration::seconds(40))
    );
    catalog.release_leadership(&name, "b").await.unwrap();
    let still = catalog
        .take_leadership(&name, "b", t0 + Duration::seconds(11), t0 + ttl)
        .await
        .unwrap();
    assert_eq!(still.holder, "a", "only the holder releases");
    let taken = catalog
        .take_leadership(
            &name,
            "b",
            t0 + Duration::seconds(41),
            t0 + Duration::seconds(71),
        )
        .await
        .unwrap();
    assert_eq!(taken.holder, "b", "an expired holder is taken over");
    catalog.release_leadership(&name, "b").await.unwrap();
    let free = catalog
        .take_leadership(&name, "a", t0 + Duration::seconds(42), t0 + ttl * 3)
        .await
        .unwrap();
    assert_eq!(free.holder, "a");
}

/// The sharing of an environment is recorded, replaced, refused when invalid or for an
/// unknown environment, removed, and goes with its environment.
pub async fn sharing_is_recorded_replaced_and_removed(catalog: &dyn Catalog) {
    let env = create(catalog, &format!("shared-{}", suffix())).await;
    assert_eq!(catalog.sharing(env.id).await.unwrap(), None);
    let mut sharing = lakecdp_core::Sharing {
        environment: env.id,
        reader_group: "contoso-readers".into(),
        contributor_group: "contoso-contributors".into(),
        storage_reader: "1001".into(),
        storage_contributor: "1002".into(),
        enabled_by: "admin".into(),
        enabled_at: now(),
    };
    catalog.set_sharing(&sharing).await.unwrap();
    assert_eq!(
        catalog.sharing(env.id).await.unwrap(),
        Some(sharing.clone())
    );
    sharing.storage_reader = "2001".into();
    sharing.enabled_by = "other-admin".into();
    catalog.set_sharing(&sharing).await.unwrap();
    assert_eq!(
        catalog.sharing(env.id).await.unwrap(),
        Some(sharing.clone())
    );

    let mut same_groups = sharing.clone();
    same_groups.contributor_group = "Contoso-Readers".into();
    assert!(matches!(
        catalog.set_sharing(&same_groups).await,
        Err(Error::Invalid(_))
    ));
    let mut unknown = sharing.clone();
    unknown.environment = EnvironmentId::new();
    assert!(matches!(
        catalog.set_sharing(&unknown).await,
        Err(Error::NotFound { .. })
    ));

    assert!(catalog.remove_sharing(env.id).await.unwrap());
    assert!(!catalog.remove_sharing(env.id).await.unwrap());
    assert_eq!(catalog.sharing(env.id).await.unwrap(), None);
    catalog.set_sharing(&sharing).await.unwrap();
    catalog.delete_environment(env.id).await.unwrap();
    assert_eq!(catalog.sharing(env.id).await.unwrap(), None);
}

/// An organisation is attached once (the first attachment stays, whatever the case of a
/// later one's name and even when many race), listed, and detached.
pub async fn an_organisation_is_attached_once_whatever_its_case(catalog: &dyn Catalog) {
    let org = format!("Contoso-{}", suffix());
    let first = lakecdp_core::Attachment {
        organization: org.clone(),
        account: "file:///srv/a/customerinsights".into(),
        identifier: "file:///srv/a/customerinsights?rg=1&cg=2".into(),
        attached_by: "admin".into(),
        attached_at: now(),
    };
    assert_eq!(catalog.attach(&first).await.unwrap(), first);
    let mut second = first.clone();
    second.organization = org.to_uppercase();
    second.account = "s3://other".into();
    assert_eq!(catalog.attach(&second).await.unwrap(), first);
    assert!(catalog
        .attachments()
        .await
        .unwrap()
        .iter()
        .any(|a| a == &first));
    let invalid = lakecdp_core::Attachment {
        account: " ".into(),
        ..first.clone()
    };
    assert!(matches!(
        catalog.attach(&invalid).await,
        Err(Error::Invalid(_))
    ));
    assert!(catalog.detach(&org.to_lowercase()).await.unwrap());
    assert!(!catalog.detach(&org).await.unwrap());

    // many first attachments at once: one wins for all
    let raced = format!("raced-{}", suffix());
    let make = |account: &str| lakecdp_core::Attachment {
        organization: raced.clone(),
        account: account.into(),
        ..first.clone()
    };
    let (x, y, z) = (make("s3://a"), make("s3://b"), make("s3://c"));
    let (a, b, c) = tokio::join!(catalog.attach(&x), catalog.attach(&y), catalog.attach(&z));
    let kept = [a.unwrap(), b.unwrap(), c.unwrap()];
    assert!(kept.iter().all(|k| k == &kept[0]), "{kept:?}");
}

/// A reporting connection is stored and read back equal, replaced by name whatever its
/// case, listed by name, refused for a missing environment or an unusable name, removed,
/// and removed with its environment.
pub async fn reporting_connections_are_stored_replaced_and_removed(catalog: &dyn Catalog) {
    use lakecdp_core::{ReportingConnection, ReportingStatus};
    let env = create(catalog, &format!("reporting-{}", suffix())).await;
    let first = ReportingConnection {
        environment_id: env.id,
        name: "Sales-BI".into(),
        storage: local_storage("/srv/lake"),
        instance: env.id,
        status: ReportingStatus::Pending,
        reason: None,
        checked_at: None,
        members: vec![],
        created_by: "ada".into(),
        created_at: now(),
    };
    catalog.put_reporting_connection(&first).await.unwrap();
    let other = ReportingConnection {
        name: "audience".into(),
        ..first.clone()
    };
    catalog.put_reporting_connection(&other).await.unwrap();
    assert_eq!(
        catalog.reporting_connections(env.id).await.unwrap(),
        [other.clone(), first.clone()],
        "listed by name, without regard to case"
    );
    // the same name in another case replaces it
    let ready = ReportingConnection {
        name: "sales-bi".into(),
        status: ReportingStatus::Ready,
        checked_at: Some(now()),
        members: vec!["vera".into(), "analysts".into()],
        ..first.clone()
    };
    catalog.put_reporting_connection(&ready).await.unwrap();
    let listed = catalog.reporting_connections(env.id).await.unwrap();
    assert_eq!(listed, [other.clone(), ready.clone()]);

    let missing = ReportingConnection {
        environment_id: EnvironmentId::new(),
        ..first.clone()
    };
    assert!(matches!(
        catalog.put_reporting_connection(&missing).await,
        Err(Error::NotFound { .. })
    ));
    let unusable = ReportingConnection {
        name: "../x".into(),
        ..first.clone()
    };
    assert!(matches!(
        catalog.put_reporting_connection(&unusable).await,
        Err(Error::Invalid(_))
    ));

    assert!(catalog
        .delete_reporting_connection(env.id, "SALES-BI")
        .await
        .unwrap());
    assert!(!catalog
        .delete_reporting_connection(env.id, "sales-bi")
        .await
        .unwrap());
    assert_eq!(
        catalog.reporting_connections(env.id).await.unwrap(),
        [other]
    );
    catalog.delete_environment(env.id).await.unwrap();
    assert!(catalog
        .reporting_connections(env.id)
        .await
        .unwrap()
        .is_empty());
}
