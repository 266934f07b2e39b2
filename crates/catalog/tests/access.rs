//! Role checks through [`Acting`]: each role against each operation on connections and
//! exports, connections shared with Contributors, and the rules that keep an environment
//! administrable.

use lakecdp_catalog::conformance::{environment, export, pg_connection};
use lakecdp_catalog::{Acting, Catalog, Error, SqliteCatalog};
use lakecdp_core::{ConnectionSharing, Environment, Role};

const ADMIN: &str = "ann";

async fn setup() -> (SqliteCatalog, Environment) {
    let catalog = SqliteCatalog::open_in_memory().await.unwrap();
    let mut env = environment("retail");
    env.created_by = ADMIN.into();
    Acting::new(&catalog, ADMIN)
        .create_environment(&env)
        .await
        .unwrap();
    let admin = Acting::new(&catalog, ADMIN);
    for (who, role) in [
        ("carl", Role::Contributor),
        ("vera", Role::Viewer),
        ("adam", Role::Admin),
    ] {
        admin.set_role(&env, who, Some(role)).await.unwrap();
    }
    (catalog, env)
}

fn denied(r: Result<impl std::fmt::Debug, Error>) -> String {
    match r {
        Err(Error::AccessDenied(d)) => d.to_string(),
        other => panic!("expected a denial, got {other:?}"),
    }
}

#[tokio::test]
async fn the_creator_is_admin_and_roles_are_recorded() {
    let (catalog, env) = setup().await;
    let roles: Vec<(String, Role)> = Acting::new(&catalog, "vera")
        .roles(&env)
        .await
        .unwrap()
        .into_iter()
        .map(|a| (a.principal, a.role))
        .collect();
    assert_eq!(
        roles,
        vec![
            ("adam".into(), Role::Admin),
            ("ann".into(), Role::Admin),
            ("carl".into(), Role::Contributor),
            ("vera".into(), Role::Viewer),
        ]
    );
    // someone with no role sees nothing
    let m = denied(Acting::new(&catalog, "mallory").roles(&env).await);
    assert!(m.contains("holds no role"), "{m}");
}

#[tokio::test]
async fn only_admins_create_change_see_and_delete_connections() {
    let (catalog, env) = setup().await;
    for who in ["carl", "vera", "nobody"] {
        let acting = Acting::new(&catalog, who);
        let c = pg_connection(env.id, &format!("pg-{who}"), ConnectionSharing::Admins);
        let m = denied(acting.create_connection(&env, &c).await);
        assert!(m.contains("needs the Admin role"), "{m}");
        assert!(m.contains(&format!("lakecdp role set {who} admin")), "{m}");
    }
    let admin = Acting::new(&catalog, "adam");
    let c = pg_connection(env.id, "pg", ConnectionSharing::Admins);
    admin.create_connection(&env, &c).await.unwrap();
    admin
        .set_connection_secret(&env, &c, "password", b"sealed")
        .await
        .unwrap();
    assert_eq!(admin.connection(&env, "pg").await.unwrap().id, c.id);
    for who in ["carl", "vera"] {
        let acting = Acting::new(&catalog, who);
        denied(acting.connection(&env, "pg").await);
        denied(acting.update_connection(&env, &c).await);
        denied(
            acting
                .set_connection_secret(&env, &c, "password", b"x")
                .await,
        );
        denied(acting.delete_connection(&env, "pg").await);
    }
    admin.delete_connection(&env, "pg").await.unwrap();
}

#[tokio::test]
async fn contributors_see_and_use_only_connections_shared_with_them() {
    let (catalog, env) = setup().await;
    let admin = Acting::new(&catalog, ADMIN);
    let private = pg_connection(env.id, "private", ConnectionSharing::Admins);
    let shared = pg_connection(env.id, "shared", ConnectionSharing::AdminsAndContributors);
    admin.create_connection(&env, &private).await.unwrap();
    admin.create_connection(&env, &shared).await.unwrap();

    let names = |list: Vec<lakecdp_core::ConnectionSummary>| {
        list.into_iter().map(|c| c.name).collect::<Vec<_>>()
    };
    assert_eq!(
        names(admin.connections(&env).await.unwrap()),
        ["private", "shared"]
    );
    let carl = Acting::new(&catalog, "carl");
    assert_eq!(names(carl.connections(&env).await.unwrap()), ["shared"]);
    let vera = Acting::new(&catalog, "vera");
    denied(vera.connections(&env).await);

    // exports: a Contributor uses the shared connection only
    carl.create_export(&env, &export(&shared, "to-shared"))
        .await
        .unwrap();
    let m = denied(
        carl.create_export(&env, &export(&private, "to-private"))
            .await,
    );
    assert!(m.contains("use connection `private`"), "{m}");
    assert!(m.contains("admins-and-contributors"), "{m}");
    let (e, c) = carl.runnable_export(&env, "to-shared").await.unwrap();
    assert_eq!((e.name.as_str(), c.name.as_str()), ("to-shared", "shared"));
    // a Viewer sees exports but neither creates nor runs them
    assert_eq!(vera.export(&env, "to-shared").await.unwrap().id, e.id);
    denied(vera.create_export(&env, &export(&shared, "v")).await);
    denied(vera.runnable_export(&env, "to-shared").await);
    denied(vera.delete_export(&env, "to-shared").await);

    // the admin takes sharing back: the Contributor can no longer run the export
    let mut back = catalog
        .find_connection(env.id, "shared")
        .await
        .unwrap()
        .unwrap();
    back.sharing = ConnectionSharing::Admins;
    admin.update_connection(&env, &back).await.unwrap();
    denied(carl.runnable_export(&env, "to-shared").await);
    assert!(admin.runnable_export(&env, "to-shared").await.is_ok());
}

#[tokio::test]
async fn deleting_a_used_connection_is_refused_with_its_exports() {
    let (catalog, env) = setup().await;
    let admin = Acting::new(&catalog, ADMIN);
    let c = pg_connection(env.id, "pg", ConnectionSharing::Admins);
    admin.create_connection(&env, &c).await.unwrap();
    admin
        .create_export(&env, &export(&c, "b-nightly"))
        .await
        .unwrap();
    admin
        .create_export(&env, &export(&c, "a-hourly"))
        .await
        .unwrap();
    let err = admin.delete_connection(&env, "pg").await.unwrap_err();
    let m = err.to_string();
    assert!(matches!(err, Error::ConnectionInUse { .. }), "{err:?}");
    assert!(m.contains("`a-hourly`, `b-nightly`"), "{m}");
    admin.delete_export(&env, "a-hourly").await.unwrap();
    admin.delete_export(&env, "b-nightly").await.unwrap();
    admin.delete_connection(&env, "pg").await.unwrap();
}

#[tokio::test]
async fn roles_are_managed_by_admins_and_the_last_admin_stays() {
    let (catalog, env) = setup().await;
    denied(
        Acting::new(&catalog, "carl")
            .set_role(&env, "vera", Some(Role::Admin))
            .await,
    );
    let admin = Acting::new(&catalog, ADMIN);
    admin.set_role(&env, "adam", None).await.unwrap();
    let err = admin
        .set_role(&env, ADMIN, Some(Role::Viewer))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("last Admin"), "{err}");
    // with another admin, ann may step down and then loses admin rights
    admin
        .set_role(&env, "carl", Some(Role::Admin))
        .await
        .unwrap();
    admin
        .set_role(&env, ADMIN, Some(Role::Viewer))
        .await
        .unwrap();
    denied(Acting::new(&catalog, ADMIN).delete_environment(&env).await);
    Acting::new(&catalog, "carl")
        .delete_environment(&env)
        .await
        .unwrap();
    assert!(catalog.get_environment(env.id).await.unwrap().is_none());
}

#[tokio::test]
async fn environment_changes_need_an_admin() {
    let (catalog, env) = setup().await;
    let mut renamed = env.clone();
    renamed.name = "retail-2".into();
    for who in ["carl", "vera"] {
        denied(
            Acting::new(&catalog, who)
                .update_environment(&renamed)
                .await,
        );
    }
    Acting::new(&catalog, "adam")
        .update_environment(&renamed)
        .await
        .unwrap();
}
