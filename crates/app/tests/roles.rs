//! Every operation of `App` against the role it needs: allowed at that role, refused
//! (`ErrorKind::Denied`) one role below, where a principal without a role is below
//! Viewer. One table lists them; adding an operation is one line of it.
//!
//! The operations run in the table's order, each on objects of its own (the export
//! `exp-delete` for `delete_export`…), so none depends on another.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use lakecdp_app::connections::{ConnectionChanges, NewConnection};
use lakecdp_app::environments::{EnvironmentChanges, Saved};
use lakecdp_app::exports::{ExportChanges, NewExport};
use lakecdp_app::sharing::EnableSharing;
use lakecdp_app::sources::NewTable;
use lakecdp_app::{
    Actor, App, CancellationToken, ErrorKind, Event, Observer, RefreshRequest, SchedulerEvent,
    SchedulerObserver, Silent,
};
use lakecdp_core::{Environment, Role, Secret, SourceFormat, TableSpec};

#[macro_use]
mod common;
use common::{admin, retail};

/// The master key of this test binary, set in `LAKECDP_MASTER_KEY` once, first thing in
/// every test (before any of them reads the environment).
fn master_key() -> Secret {
    static KEY: OnceLock<String> = OnceLock::new();
    let key = KEY.get_or_init(|| {
        let key = lakecdp_connect::MasterKey::generate().unwrap().to_base64();
        std::env::remove_var("LAKECDP_MASTER_KEY_FILE");
        std::env::set_var("LAKECDP_MASTER_KEY", key.expose());
        key.expose().to_string()
    });
    Secret::new(key.clone())
}

/// What a row expects at the role it names.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// It succeeds.
    Allowed,
    /// It passes the role check and fails for another reason, of this kind.
    Fails(ErrorKind),
}

type Outcome = Pin<Box<dyn Future<Output = lakecdp_app::Result<()>>>>;
type Run = Box<dyn Fn(Arc<Ctx>, Actor) -> Outcome>;

/// One operation, the role it needs and what it does at that role.
struct Row {
    name: &'static str,
    role: Role,
    expect: Expect,
    run: Run,
}

/// `row!("name", Role, Expect, |ctx, actor| <call>.await)`: the call's value is dropped.
macro_rules! row {
    ($name:literal, $role:ident, $expect:expr, |$c:ident, $a:ident| $call:expr) => {
        Row {
            name: $name,
            role: Role::$role,
            expect: $expect,
            run: Box::new(|$c: Arc<Ctx>, $a: Actor| -> Outcome {
                Box::pin(async move { ($call).map(drop) })
            }),
        }
    };
}

/// What the operations act on.
struct Ctx {
    app: App,
    env: Environment,
    /// An environment for `env update`.
    spare_update: String,
    /// An environment for `env delete`.
    spare_delete: Environment,
    /// A refresh.
    run_id: String,
    /// A published profile.
    customer_id: String,
    /// Where local connections write.
    folder: PathBuf,
    /// The master key, as base64.
    key: Secret,
}

/// A scheduler observer that ignores everything.
struct Quiet;

impl Observer for Quiet {
    fn event(&self, _: &Event) {}
}

impl SchedulerObserver for Quiet {
    fn scheduler(&self, _: &SchedulerEvent) {}
}

fn local_connection(name: &str, usable_by: &str, folder: &Path) -> NewConnection {
    NewConnection {
        name: name.into(),
        kind: "local".into(),
        usable_by: usable_by.into(),
        settings: [("path".to_string(), folder.display().to_string())].into(),
        secrets: Default::default(),
    }
}

fn customer_export(name: &str) -> NewExport {
    NewExport {
        name: name.into(),
        connection: "shared".into(),
        tables: vec!["Unification/Customer".into()],
        schedule: "off".into(),
        ..Default::default()
    }
}

fn contacts_table(source: &str) -> NewTable {
    NewTable {
        source: source.into(),
        description: None,
        table: TableSpec {
            name: "Contacts".into(),
            location: "data/crm_contacts.csv".into(),
            format: SourceFormat::Csv,
            primary_key: Some("ContactId".into()),
            last_updated: None,
            csv: None,
            entity: None,
            schema: Vec::new(),
            incremental: false,
        },
        infer_schema: false,
    }
}

fn only(process: &str) -> RefreshRequest {
    RefreshRequest {
        only: Some(process.into()),
        ..Default::default()
    }
}

fn stopped() -> CancellationToken {
    let t = CancellationToken::new();
    t.cancel();
    t
}

/// Every operation with the role it needs.
#[rustfmt::skip]
fn operations() -> Vec<Row> {
    use Expect::{Allowed, Fails};
    vec![
        // Viewer
        row!("show_environment", Viewer, Allowed, |c, a| c.app.show_environment(&a, None).await),
        row!("check_environment", Viewer, Allowed, |c, a| c.app.check_environment(&a, &c.env, true, false, &Silent).await),
        row!("check_environment (told it is not stored)", Viewer, Allowed, |c, a| c.app.check_environment(&a, &c.env, false, false, &Silent).await),
        row!("environment_to_check (named)", Viewer, Allowed, |c, a| c.app.environment_to_check(&a, Some("retail-demo")).await),
        row!("environment_to_check (the project's)", Viewer, Allowed, |c, a| c.app.environment_to_check(&a, None).await),
        row!("apply (nothing changes)", Viewer, Allowed, |c, a| c.app.apply(&a, false, &Silent).await),
        row!("runs", Viewer, Allowed, |c, a| c.app.runs(&a, None, 10).await),
        row!("run", Viewer, Allowed, |c, a| c.app.run(&a, &c.run_id).await),
        row!("list_sources", Viewer, Allowed, |c, a| c.app.list_sources(&a).await),
        row!("show_source", Viewer, Allowed, |c, a| c.app.show_source(&a, "Crm").await),
        row!("explain", Viewer, Allowed, |c, a| c.app.explain(&a, &c.customer_id).await),
        row!("preview_unification", Viewer, Allowed, |c, a| c.app.preview_unification(&a, None, 50).await),
        row!("segments", Viewer, Allowed, |c, a| c.app.segments(&a, None).await),
        row!("segment", Viewer, Allowed, |c, a| c.app.segment(&a, "HighValue").await),
        row!("preview_segment", Viewer, Allowed, |c, a| c.app.preview_segment(&a, "CustomerId is not empty", 3).await),
        row!("roles", Viewer, Allowed, |c, a| c.app.roles(&a, None).await),
        row!("list_exports", Viewer, Allowed, |c, a| c.app.list_exports(&a, None).await),
        row!("sharing_status (not enabled)", Viewer, Fails(ErrorKind::NotFound), |c, a| c.app.sharing_status(&a, None).await),
        row!("show_export", Viewer, Allowed, |c, a| c.app.show_export(&a, "exp").await),
        row!("exportable_tables", Viewer, Allowed, |c, a| c.app.exportable_tables(&a, "retail-demo").await),
        row!("ingestion_status", Viewer, Allowed, |c, a| c.app.ingestion_status(&a, "retail-demo").await),
        row!("corrupt_rows", Viewer, Allowed, |c, a| c.app.corrupt_rows(&a, "retail-demo", "Loyalty", "Members", 5).await),
        row!("unification_status", Viewer, Allowed, |c, a| c.app.unification_status(&a, "retail-demo").await),
        row!("preview_unification_rules", Viewer, Allowed, |c, a| async {
            let rules = lakecdp_app::status::unification_section(&c.app.read_project_file()?)?;
            c.app.preview_unification_rules(&a, "retail-demo", &rules, 50).await
        }.await),
        // Contributor
        row!("inspect_source", Contributor, Allowed, |c, a| c.app.inspect_source(&a, "Crm", Some("Contacts")).await),
        row!("add_source_table", Contributor, Allowed, |c, a| c.app.add_source_table(&a, contacts_table("Extra")).await),
        row!("remove_source", Contributor, Allowed, |c, a| c.app.remove_source(&a, "Spare", None).await),
        row!("plan_refresh", Contributor, Allowed, |c, a| c.app.plan_refresh(&a, &RefreshRequest::default()).await),
        row!("refresh", Contributor, Allowed, |c, a| c.app.refresh(&a, &only("reports"), CancellationToken::new(), Arc::new(Silent)).await),
        row!("run_scheduler (no schedule)", Contributor, Fails(ErrorKind::Invalid), |c, a| c.app.run_scheduler(&a, None, stopped(), Arc::new(Quiet)).await),
        row!("add_export", Contributor, Allowed, |c, a| c.app.add_export(&a, customer_export("exp-new")).await),
        row!("edit_export", Contributor, Allowed, |c, a| c.app.edit_export(&a, "exp-edit", ExportChanges { add_tables: vec!["Unification/AlternateKey".into()], ..Default::default() }).await),
        row!("delete_export", Contributor, Allowed, |c, a| c.app.delete_export(&a, "exp-delete").await),
        row!("run_exports", Contributor, Allowed, |c, a| c.app.run_exports(&a, Some("exp"), &Silent).await),
        row!("list_connections", Contributor, Allowed, |c, a| c.app.list_connections(&a, None).await),
        row!("apply_unification", Contributor, Allowed, |c, a| async {
            let rules = lakecdp_app::status::unification_section(&c.app.read_project_file()?)?;
            c.app.apply_unification(&a, "retail-demo", &rules, None).await
        }.await),
        // Admin
        row!("set_role", Admin, Allowed, |c, a| c.app.set_role(&a, None, "tess", Some(Role::Viewer)).await),
        row!("update_environment", Admin, Allowed, |c, a| c.app.update_environment(&a, &c.spare_update, &EnvironmentChanges { retention_runs: Some(5), ..Default::default() }, &Silent).await),
        row!("delete_environment", Admin, Allowed, |c, a| c.app.delete_environment(&a, &c.spare_delete, false).await),
        row!("set_environment_secret", Admin, Allowed, |c, a| c.app.set_environment_secret(&a, &c.env, "s-set", &Secret::new("v")).await),
        row!("environment_secrets", Admin, Allowed, |c, a| c.app.environment_secrets(&a, &c.env).await),
        row!("remove_environment_secret", Admin, Allowed, |c, a| c.app.remove_environment_secret(&a, &c.env, "s-remove").await),
        row!("show_connection", Admin, Allowed, |c, a| c.app.show_connection(&a, "shared").await),
        row!("add_connection", Admin, Allowed, |c, a| c.app.add_connection(&a, local_connection("conn-new", "admins", &c.folder)).await),
        row!("edit_connection", Admin, Allowed, |c, a| c.app.edit_connection(&a, "conn-edit", ConnectionChanges { usable_by: Some("contributors".into()), ..Default::default() }).await),
        row!("test_connection", Admin, Allowed, |c, a| c.app.test_connection(&a, "shared").await),
        row!("rotate_connection_secret (a local one has none)", Admin, Fails(ErrorKind::Invalid), |c, a| c.app.rotate_connection_secret(&a, "shared", "env:UNSET", |s| c.app.resolve_secret(s)).await),
        row!("delete_connection", Admin, Allowed, |c, a| c.app.delete_connection(&a, "conn-delete").await),
        row!("enable_sharing (CSV output)", Admin, Fails(ErrorKind::Invalid), |c, a| c.app.enable_sharing(&a, None, &EnableSharing::default()).await),
        row!("repair_sharing (not enabled)", Admin, Fails(ErrorKind::NotFound), |c, a| c.app.repair_sharing(&a, None).await),
        row!("add_sharing_recipient (not enabled)", Admin, Fails(ErrorKind::NotFound), |c, a| c.app.add_sharing_recipient(&a, None, "partner", None).await),
        row!("rotate_master_key", Admin, Allowed, |c, a| c.app.rotate_master_key(&a, &c.key, "the test's key").await),
    ]
}

/// The principal holding `role`, and the one a role below it.
fn principals(role: Role) -> (&'static str, &'static str) {
    match role {
        Role::Viewer => ("vic", "sam"),
        Role::Contributor => ("cora", "vic"),
        Role::Admin => ("ada", "cora"),
    }
}

/// Give vic, cora and ada their roles in the environment of `app`'s project.
async fn grant(app: &App) {
    for (who, role) in [
        ("vic", Role::Viewer),
        ("cora", Role::Contributor),
        ("ada", Role::Admin),
    ] {
        app.set_role(&admin(), None, who, Some(role)).await.unwrap();
    }
}

/// An environment of its own project folder in the same catalog, with the same roles.
async fn spare(r: &common::Retail, name: &str) -> Environment {
    let dir = r.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("lakecdp.toml"),
        format!("[environment]\nname = \"{name}\"\n\n[environment.storage]\nkind = \"local\"\npath = \"lake\"\n"),
    )
    .unwrap();
    let app = App::new(Arc::clone(&r.catalog), &dir);
    let Saved::Created(env) = app.apply(&admin(), true, &Silent).await.unwrap().0 else {
        panic!("{name} is created");
    };
    grant(&app).await;
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_needs_its_role_and_is_refused_one_role_below() {
    let key = master_key();
    let r = retail().await;
    let app = r.app.clone();
    let me = admin();
    grant(&app).await;
    let report = r.full_refresh(Arc::new(Silent)).await;
    let (_, sample) = app
        .preview_segment(&me, "CustomerId is not empty", 1)
        .await
        .unwrap();
    let column = arrow::compute::cast(
        sample.column_by_name("CustomerId").unwrap(),
        &arrow::datatypes::DataType::Utf8,
    )
    .unwrap();
    let customer_id = column
        .as_any()
        .downcast_ref::<arrow::array::StringArray>()
        .unwrap()
        .value(0)
        .to_string();
    let folder = r.path().join("exports");
    app.add_connection(&me, local_connection("shared", "contributors", &folder))
        .await
        .unwrap();
    for name in ["conn-edit", "conn-delete"] {
        app.add_connection(&me, local_connection(name, "admins", &folder))
            .await
            .unwrap();
    }
    for name in ["exp", "exp-edit", "exp-delete"] {
        app.add_export(&me, customer_export(name)).await.unwrap();
    }
    app.add_source_table(&me, contacts_table("Spare"))
        .await
        .unwrap();
    for name in ["s-keep", "s-remove"] {
        app.set_environment_secret(&me, &r.env, name, &Secret::new("v"))
            .await
            .unwrap();
    }
    let ctx = Arc::new(Ctx {
        app: app.clone(),
        env: r.env.clone(),
        spare_update: spare(&r, "spare-update").await.name,
        spare_delete: spare(&r, "spare-delete").await,
        run_id: report.run.to_string(),
        customer_id,
        folder,
        key,
    });

    let mut problems = Vec::new();
    for row in operations() {
        let (holder, below) = principals(row.role);
        // one role below: refused, with a message naming the principal and the role needed
        match (row.run)(Arc::clone(&ctx), Actor::named(below)).await {
            // a run of an environment one holds no role in does not exist for them
            Err(e) if row.name == "run" && e.kind() == ErrorKind::NotFound => {
                if !e.full_message().contains(&ctx.run_id) {
                    problems.push(format!("run: `{below}` is told: {}", e.full_message()));
                }
            }
            Err(e) if e.kind() == ErrorKind::Denied => {
                let m = e.full_message();
                let needs = format!("needs the {} role", row.role);
                if !m.contains(&format!("`{below}`")) || !m.contains(&needs) {
                    problems.push(format!("{}: `{below}` is refused with: {m}", row.name));
                }
            }
            Err(e) => problems.push(format!(
                "{}: `{below}` gets {} rather than denied: {}",
                row.name,
                e.kind(),
                e.full_message()
            )),
            Ok(()) => problems.push(format!("{}: `{below}` is allowed", row.name)),
        }
        // at the role: allowed
        let outcome = (row.run)(Arc::clone(&ctx), Actor::named(holder)).await;
        match (row.expect, outcome) {
            (Expect::Allowed, Ok(())) => {}
            (Expect::Fails(kind), Err(e)) if e.kind() == kind => {}
            (expect, outcome) => problems.push(format!(
                "{}: `{holder}` ({}) expected {expect:?}, got {:?}",
                row.name,
                row.role,
                outcome.map_err(|e| format!("{}: {}", e.kind(), e.full_message()))
            )),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // the rows did what they say at their role
    let (_, exports) = app.list_exports(&me, None).await.unwrap();
    let mut names: Vec<&str> = exports.iter().map(|e| e.export.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["exp", "exp-edit", "exp-new"]);
    let (_, connections) = app.list_connections(&me, None).await.unwrap();
    let mut names: Vec<&str> = connections.iter().map(|c| c.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["conn-edit", "conn-new", "shared"]);
    let sources: Vec<String> = app
        .list_sources(&me)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert!(
        sources.contains(&"Extra".to_string()) && !sources.contains(&"Spare".to_string()),
        "{sources:?}"
    );
    let secrets: Vec<String> = app
        .environment_secrets(&me, &r.env)
        .await
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(secrets, ["s-keep", "s-set"]);
    assert!(app.environment(Some("spare-delete")).await.is_err());
    assert_eq!(
        app.environment(Some("spare-update"))
            .await
            .unwrap()
            .retention_runs,
        5
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environments_are_listed_to_their_roles_only() {
    master_key();
    let r = retail().await;
    grant(&r.app).await;
    spare(&r, "spare").await;
    let names = |list: Vec<Environment>| {
        let mut names: Vec<String> = list.into_iter().map(|e| e.name).collect();
        names.sort();
        names
    };
    for who in ["vic", "cora", "ada", "local-admin"] {
        let seen = names(r.app.list_environments(&Actor::named(who)).await.unwrap());
        assert_eq!(seen, ["retail-demo", "spare"], "{who}");
    }
    // a principal without a role sees none, rather than being refused
    let seen = r.app.list_environments(&Actor::named("sam")).await.unwrap();
    assert!(seen.is_empty(), "{seen:?}");
    // a role taken away takes its environment out of the list
    r.app.set_role(&admin(), None, "vic", None).await.unwrap();
    let seen = names(r.app.list_environments(&Actor::named("vic")).await.unwrap());
    assert_eq!(seen, ["spare"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_copy_of_an_environment_grants_nothing() {
    master_key();
    let r = retail().await;
    let app = &r.app;
    let spare = spare(&r, "spare").await;
    // a copy naming another creator (the implicit Admin when no role is stored for it):
    // the roles checked are those of the environment the catalog holds
    let sam = Actor::named("sam");
    let forge = |env: &Environment, creator: &str| Environment {
        created_by: creator.into(),
        ..env.clone()
    };
    let forged = forge(&r.env, "sam");
    let mut outcomes = vec![
        (
            "check_environment",
            app.check_environment(&sam, &forged, true, false, &Silent)
                .await
                .map(drop),
        ),
        (
            "check_environment (told it is not stored)",
            app.check_environment(&sam, &forged, false, false, &Silent)
                .await
                .map(drop),
        ),
        (
            "environment_secrets",
            app.environment_secrets(&sam, &forged).await.map(drop),
        ),
        (
            "set_environment_secret",
            app.set_environment_secret(&sam, &forged, "s", &Secret::new("v"))
                .await
                .map(drop),
        ),
        (
            "remove_environment_secret",
            app.remove_environment_secret(&sam, &forged, "s").await,
        ),
        (
            "delete_environment",
            app.delete_environment(&sam, &forge(&spare, "sam"), true)
                .await
                .map(drop),
        ),
    ];
    // a plan made by a Contributor of one environment, pointed at another
    app.set_role(&admin(), None, "carl", Some(Role::Contributor))
        .await
        .unwrap();
    let carl = Actor::named("carl");
    let mut plan = app
        .plan_refresh(&carl, &RefreshRequest::default())
        .await
        .unwrap()
        .expect("a plan");
    plan.environment = forge(&spare, "carl");
    outcomes.push((
        "run_plan",
        app.run_plan(
            &carl,
            &RefreshRequest::default(),
            &plan,
            CancellationToken::new(),
            Arc::new(Silent),
        )
        .await
        .map(drop),
    ));
    let problems: Vec<String> = outcomes
        .into_iter()
        .filter(|(_, o)| !matches!(o, Err(e) if e.kind() == ErrorKind::Denied))
        .map(|(name, o)| {
            format!(
                "{name} on a changed copy is not refused: {:?}",
                o.map_err(|e| e.full_message())
            )
        })
        .collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // nothing was deleted, run or recorded
    assert!(app.environment(Some("spare")).await.is_ok());
    assert!(r.path().join("spare/lake").exists());
    let (_, runs) = app.runs(&admin(), Some("spare"), 50).await.unwrap();
    assert!(runs.iter().all(|r| r.process != "refresh"), "{runs:?}");
    // the roles the catalog holds still apply through a changed copy
    assert!(app.environment_secrets(&admin(), &forged).await.is_ok());
}
