//! The PostgreSQL export target's security against the real test server: TLS
//! (`require`, `verify-full` with the CA of the test services, a wrong CA refused), the
//! refusal of a password over plain TCP, ownership of the tables an export replaces, and
//! the grants, indexes and comments others gave a table kept across runs.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use lakecdp_connect::{Error, ExportTarget, PostgresTarget, PostgresTargetBuilder};
use lakecdp_core::Secret;

fn builder(host: &str, database: &str) -> PostgresTargetBuilder {
    PostgresTarget::builder()
        .host(host)
        .port(pg_port())
        .user(service_var("LAKECDP_TEST_PG_USER"))
        .password(Secret::new(service_var("LAKECDP_TEST_PG_PASSWORD")))
        .database(database)
}

/// Whether every connection of the application `lakecdp` to `database` uses TLS (and
/// there is one).
async fn lakecdp_sessions_use_tls(database: &str) -> bool {
    let admin = pg_client("postgres").await;
    let row = admin
        .query_one(
            "SELECT count(*), coalesce(bool_and(s.ssl), false) FROM pg_stat_activity a \
             JOIN pg_stat_ssl s USING (pid) WHERE a.datname = $1 AND a.application_name = 'lakecdp'",
            &[&database],
        )
        .await
        .unwrap();
    let n: i64 = row.get(0);
    n > 0 && row.get::<_, bool>(1)
}

#[tokio::test]
async fn require_and_verify_full_export_over_tls() {
    let ca = service_var("LAKECDP_TEST_PG_SSLROOTCERT");
    let cases = [
        ("127.0.0.1", builder("127.0.0.1", "x").sslmode("require")),
        (
            "127.0.0.1",
            builder("127.0.0.1", "x")
                .sslmode("verify-full")
                .sslrootcert(&ca),
        ),
        // the certificate names localhost too
        (
            "localhost",
            builder("localhost", "x")
                .sslmode("verify-full")
                .sslrootcert(&ca),
        ),
    ];
    for (host, b) in cases {
        let db = unique("lakecdp_tls");
        let target = b.database(&db).build().unwrap();
        let mut run = target.begin("People").await.unwrap();
        assert!(
            lakecdp_sessions_use_tls(&db).await,
            "{host}: the export's session is not encrypted"
        );
        run.export_table("People", people_schema(), stream(vec![people(0..3, "t")]))
            .await
            .unwrap();
        run.finish().await.unwrap();
        let lines = target.check().await.unwrap();
        assert!(lines[0].is_ok(), "{lines:?}");
        assert!(lines[0].detail.contains("TLS"), "{lines:?}");
        let n: i64 = pg_client(&db)
            .await
            .query_one("SELECT count(*) FROM customerinsights.\"People\"", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 3);
    }
    // without sslmode, on this machine: plain TCP as before
    let db = unique("lakecdp_plain");
    let _run = builder("127.0.0.1", &db)
        .build()
        .unwrap()
        .begin("P")
        .await
        .unwrap();
    assert!(!lakecdp_sessions_use_tls(&db).await);
}

fn openssl(args: &[&str], dir: &Path) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn verify_full_refuses_a_server_whose_certificate_another_ca_signed() {
    let dir = tempfile::tempdir().unwrap();
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=someone else",
            "-keyout",
            "other.key",
            "-out",
            "other.pem",
        ],
        dir.path(),
    );
    let db = unique("lakecdp_wrong_ca");
    let target = builder("127.0.0.1", &db)
        .sslmode("verify-full")
        .sslrootcert(dir.path().join("other.pem"))
        .build()
        .unwrap();
    let err = match target.begin("People").await {
        Err(e) => e,
        Ok(_) => panic!("verify-full accepted a certificate its CA file did not sign"),
    };
    assert!(matches!(err, Error::Unreachable { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.to_lowercase().contains("certificate"), "{text}");
    assert!(
        !text.contains(&service_var("LAKECDP_TEST_PG_PASSWORD")),
        "{text}"
    );
    let lines = target.check().await.unwrap();
    assert!(!lines[0].is_ok(), "{lines:?}");
    // nothing was created
    let exists: bool = pg_client("postgres")
        .await
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)",
            &[&db],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!exists);

    // a host name the certificate does not carry fails too (the address is right)
    let ca = service_var("LAKECDP_TEST_PG_SSLROOTCERT");
    let target = builder("127.0.0.2", &db)
        .sslmode("verify-full")
        .sslrootcert(&ca)
        .connect_timeout(std::time::Duration::from_secs(3))
        .build()
        .unwrap();
    assert!(target.begin("People").await.is_err());
}

#[tokio::test]
async fn a_password_is_not_sent_over_plain_tcp_to_another_machine() {
    for mode in [None, Some("prefer")] {
        let mut b = builder("postgres.example.com", "crm");
        if let Some(m) = mode {
            b = b.sslmode(m);
        }
        let err = b.build().unwrap_err();
        assert!(
            matches!(&err, Error::Config { key, .. } if key == "sslmode"),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains("plain TCP") && text.contains("`disable` explicitly"),
            "{text}"
        );
        assert!(
            !text.contains(&service_var("LAKECDP_TEST_PG_PASSWORD")),
            "{text}"
        );
    }
    assert!(builder("postgres.example.com", "crm")
        .sslmode("disable")
        .build()
        .is_ok());
}

#[tokio::test]
async fn an_export_replaces_only_tables_it_created() {
    let db = unique("lakecdp_owned");
    let target = pg_target(&db);
    // the schema holds an analyst's table named like an exported one
    let run = target.begin("Customers").await.unwrap();
    run.finish().await.unwrap();
    let admin = pg_client(&db).await;
    admin
        .batch_execute(
            "CREATE TABLE customerinsights.\"Customer\" (note text); \
             INSERT INTO customerinsights.\"Customer\" VALUES ('an analyst''s work')",
        )
        .await
        .unwrap();
    let mut run = target.begin("Customers").await.unwrap();
    let err = run
        .export_table("Customer", people_schema(), stream(vec![people(0..3, "x")]))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotOwned { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("customerinsights.Customer"), "{text}");
    assert!(text.contains("not created by a lakecdp export"), "{text}");
    assert!(text.contains("lakecdp_exports"), "{text}");
    // the run goes on with its other tables
    run.export_table("People", people_schema(), stream(vec![people(0..2, "p")]))
        .await
        .unwrap();
    run.finish().await.unwrap();
    let note: String = admin
        .query_one("SELECT note FROM customerinsights.\"Customer\"", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(note, "an analyst's work");

    // a table another export created is not this one's either
    let mut run = target.begin("Other").await.unwrap();
    let err = run
        .export_table("People", people_schema(), stream(vec![people(5..6, "o")]))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("created by export `Customers`"),
        "{err}"
    );
    run.finish().await.unwrap();
    let n: i64 = admin
        .query_one("SELECT count(*) FROM customerinsights.\"People\"", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);

    // its own table it replaces, and ownership is recorded
    let mut run = target.begin("Customers").await.unwrap();
    run.export_table(
        "People",
        people_schema(),
        stream(vec![people(0..5, "again")]),
    )
    .await
    .unwrap();
    run.finish().await.unwrap();
    let owners: Vec<(String, String)> = admin
        .query(
            "SELECT table_name, export_name FROM customerinsights.lakecdp_exports ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(owners, [("People".to_string(), "Customers".to_string())]);
}

#[tokio::test]
async fn a_replaced_table_keeps_its_grants_indexes_and_comments() {
    let db = unique("lakecdp_keep");
    let target = pg_target(&db);
    let mut run = target.begin("People").await.unwrap();
    run.export_table("People", people_schema(), stream(vec![people(0..3, "one")]))
        .await
        .unwrap();
    run.finish().await.unwrap();

    // an analyst's role that reads the table, an index, comments, a constraint
    let admin = pg_client(&db).await;
    let analyst = unique("lakecdp_analyst");
    let password = "analyst-pw";
    admin
        .batch_execute(&format!(
            "CREATE ROLE \"{analyst}\" LOGIN PASSWORD '{password}'; \
             GRANT USAGE ON SCHEMA customerinsights TO \"{analyst}\"; \
             GRANT SELECT ON customerinsights.\"People\" TO \"{analyst}\"; \
             CREATE INDEX people_by_name ON customerinsights.\"People\" (\"Name\"); \
             ALTER TABLE customerinsights.\"People\" ADD CONSTRAINT people_id_positive CHECK (\"Id\" >= 0); \
             COMMENT ON TABLE customerinsights.\"People\" IS 'the people; ask Ann'; \
             COMMENT ON COLUMN customerinsights.\"People\".\"Name\" IS 'display name'"
        ))
        .await
        .unwrap();
    let reader = {
        let mut config = tokio_postgres::Config::new();
        config
            .host(service_var("LAKECDP_TEST_PG_HOST"))
            .port(pg_port())
            .user(&analyst)
            .password(password)
            .dbname(&db);
        config
    };
    let read = || async {
        let (client, conn) = reader.connect(tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        client
            .query_one("SELECT count(*) FROM customerinsights.\"People\"", &[])
            .await
            .map(|r| r.get::<_, i64>(0))
    };
    assert_eq!(read().await.unwrap(), 3);

    let mut run = target.begin("People").await.unwrap();
    run.export_table("People", people_schema(), stream(vec![people(0..7, "two")]))
        .await
        .unwrap();
    run.finish().await.unwrap();

    assert_eq!(read().await.expect("the analyst still reads the table"), 7);
    let indexes: Vec<String> = admin
        .query(
            "SELECT indexname FROM pg_indexes WHERE schemaname = 'customerinsights' AND tablename = 'People'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(indexes, ["people_by_name"]);
    let row = admin
        .query_one(
            "SELECT obj_description('customerinsights.\"People\"'::regclass, 'pg_class'), \
                    col_description('customerinsights.\"People\"'::regclass, 2), \
                    (SELECT count(*) FROM pg_constraint WHERE conname = 'people_id_positive')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        row.get::<_, Option<String>>(0).as_deref(),
        Some("the people; ask Ann")
    );
    assert_eq!(
        row.get::<_, Option<String>>(1).as_deref(),
        Some("display name")
    );
    assert_eq!(row.get::<_, i64>(2), 1);

    // an index on a column the next run no longer has is dropped with a warning, and
    // the rest is still kept
    admin
        .batch_execute("CREATE INDEX people_by_id ON customerinsights.\"People\" (\"Id\")")
        .await
        .unwrap();
    let name_only = std::sync::Arc::new(arrow::datatypes::Schema::new(vec![
        arrow::datatypes::Field::new("Name", arrow::datatypes::DataType::Utf8, true),
    ]));
    let batch = arrow::record_batch::RecordBatch::try_new(
        name_only.clone(),
        vec![std::sync::Arc::new(arrow::array::StringArray::from(vec![
            "solo",
        ]))],
    )
    .unwrap();
    let mut run = target.begin("People").await.unwrap();
    run.export_table("People", name_only, stream(vec![batch]))
        .await
        .unwrap();
    run.finish().await.unwrap();
    assert_eq!(read().await.unwrap(), 1);
    let indexes: Vec<String> = admin
        .query(
            "SELECT indexname FROM pg_indexes WHERE schemaname = 'customerinsights' AND tablename = 'People'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(indexes, ["people_by_name"]);
    drop(admin);
    let root = pg_client("postgres").await;
    root.batch_execute(&format!("DROP DATABASE \"{db}\" WITH (FORCE)"))
        .await
        .unwrap();
    root.batch_execute(&format!("DROP ROLE \"{analyst}\""))
        .await
        .unwrap();
}
