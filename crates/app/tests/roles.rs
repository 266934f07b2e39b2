//! Roles are checked against the environment the catalog holds, never against a copy
//! the caller passes.

use std::sync::{Arc, OnceLock};

use lakecdp_app::environments::Saved;
use lakecdp_app::{Actor, App, CancellationToken, ErrorKind, RefreshRequest, Silent};
use lakecdp_core::{Environment, Role, Secret};

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

/// Give vic, cora and ada their roles in the environment of `app`'s project.
async fn grant(app: &App) {
    for (who, role) in [
        ("vic", Role::Viewer),
        ("cora", Role::Contributor),
        ("ada", Role::Admin),
    ] {
        app.set_role(&admin(), who, Some(role)).await.unwrap();
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
    let Saved::Created(env) = app.apply(&admin(), true, &Silent).await.unwrap() else {
        panic!("{name} is created");
    };
    grant(&app).await;
    env
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
    app.set_role(&admin(), "carl", Some(Role::Contributor))
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
