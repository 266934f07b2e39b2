//! Sharing rules of an ADLS Gen2 lake. No emulator here serves the Data Lake endpoint's
//! ACLs, so each part is checked against what can run:
//!
//! - the request sequence (root ACL read and merged, the environment folder changed
//!   page after page, per-entry failures, the read-back) against a local HTTP server
//!   that records the requests and answers as the DFS endpoint documents (a stand-in,
//!   named so in the test's name);
//! - OAuth: the service principal's token comes from a local token endpoint (the same
//!   recording server, as the Entra authority);
//! - Shared Key: a getAccessControl request signed with the account key, against
//!   Azurite, which checks signatures on its blob endpoint (it answers a PATCH with 400
//!   before authenticating it, so the PATCH requests' signatures, made by the same
//!   signer, are not checked by a server here).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use lakecdp_core::{AdlsConfig, SecretRef};
use lakecdp_lake::access::adls::AdlsRules;
use lakecdp_lake::backend::azure::AzureService;
use lakecdp_lake::backend::ServiceError;
use lakecdp_lake::secrets::Secrets;

/// One request the stand-in received.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    uri: String,
    acl: Option<String>,
    authorization: String,
    body: String,
}

#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<Seen>>,
    /// The ACL of each path, as set.
    acls: Mutex<HashMap<String, String>>,
}

async fn dfs_stand_in(
    State(state): State<Arc<Recorder>>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    state.seen.lock().unwrap().push(Seen {
        method: method.to_string(),
        uri: uri.to_string(),
        acl: header("x-ms-acl"),
        authorization: header("authorization").unwrap_or_default(),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let path = uri.path().to_string();
    let query = uri.query().unwrap_or_default().to_string();
    if path.ends_with("/oauth2/v2.0/token") {
        return (
            StatusCode::OK,
            [("content-type", "application/json")],
            r#"{"access_token":"token-from-the-stand-in","expires_in":3599,"token_type":"Bearer"}"#,
        )
            .into_response();
    }
    if header("authorization").is_none_or(|a| a != "Bearer token-from-the-stand-in") {
        return (
            StatusCode::FORBIDDEN,
            [("x-ms-error-code", "AuthenticationFailed")],
            "",
        )
            .into_response();
    }
    let mut acls = state.acls.lock().unwrap();
    if query.contains("action=getAccessControl") {
        let acl = acls
            .get(&path)
            .cloned()
            .unwrap_or_else(|| "user::rwx,group::r-x,other::---".to_string());
        return (StatusCode::OK, [("x-ms-acl", acl)]).into_response();
    }
    if query.contains("action=setAccessControlRecursive") {
        let set = header("x-ms-acl").unwrap_or_default();
        acls.insert(path.clone(), format!("user::rwx,group::r-x,{set}"));
        if !query.contains("continuation=") {
            return (
                StatusCode::OK,
                [("x-ms-continuation", "page-2")],
                r#"{"directoriesSuccessful":2,"filesSuccessful":5,"failureCount":0,"failedEntries":[]}"#,
            )
                .into_response();
        }
        return (
            StatusCode::OK,
            [("content-type", "application/json")],
            r#"{"directoriesSuccessful":1,"filesSuccessful":3,"failureCount":1,"failedEntries":[{"errorMessage":"This request is not authorized to perform this operation using this permission.","name":"ci_1/Segments/part-0.parquet","type":"FILE"}]}"#,
        )
            .into_response();
    }
    if query.contains("action=setAccessControl") {
        acls.insert(path, header("x-ms-acl").unwrap_or_default());
        return StatusCode::OK.into_response();
    }
    StatusCode::BAD_REQUEST.into_response()
}

#[tokio::test]
async fn adls_rules_follow_the_dfs_sequence_against_a_recording_stand_in_with_an_oauth_token() {
    let recorder = Arc::new(Recorder::default());
    let app = axum::Router::new()
        .fallback(dfs_stand_in)
        .with_state(Arc::clone(&recorder));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let base = format!("http://{address}");

    std::env::set_var("LAKECDP_ADLS_TEST_CLIENT_SECRET", "the-client-secret");
    let config = AdlsConfig {
        account: Some("contoso".into()),
        container: Some("customerinsights".into()),
        tenant_id: Some("tenant-1".into()),
        client_id: Some("client-1".into()),
        client_secret: Some(SecretRef::Env("LAKECDP_ADLS_TEST_CLIENT_SECRET".into())),
        endpoint: Some(format!("{base}/contoso")),
        emulator: true,
        authority_host: Some(base.clone()),
        ..Default::default()
    };
    let service = AzureService::dfs(&config, &Secrets::from_refs(None)).unwrap();
    let rules = AdlsRules {
        filesystem: "customerinsights".into(),
        environment: "ci_1".into(),
        reader: "11111111-aaaa-4aaa-8aaa-111111111111".into(),
        contributor: "22222222-bbbb-4bbb-8bbb-222222222222".into(),
    };
    let before = rules.check(&service).await.unwrap();
    assert_eq!(before.drifted, 2, "{before:?}");
    let first = recorder.seen.lock().unwrap().drain(..).collect::<Vec<_>>();

    let report = rules.apply(&service).await.unwrap();
    // the root, then 2 + 5 and 1 + 3 paths changed over two pages, one failed
    assert_eq!(report.changed, 1 + 7 + 4);
    assert_eq!(report.drifted, 1, "{report:?}");
    assert_eq!(report.drift[0].path, "ci_1/Segments/part-0.parquet");
    assert!(report.drift[0].found.contains("not authorized"));

    let seen = recorder.seen.lock().unwrap().clone();
    let calls: Vec<(String, String)> = seen
        .iter()
        .filter(|s| !s.uri.contains("oauth2"))
        .map(|s| (s.method.clone(), s.uri.clone()))
        .collect();
    assert_eq!(
        calls,
        [
            ("HEAD", "/contoso/customerinsights/?action=getAccessControl&upn=false"),
            ("PATCH", "/contoso/customerinsights/?action=setAccessControl"),
            ("PATCH", "/contoso/customerinsights/ci_1?action=setAccessControlRecursive&mode=modify"),
            ("PATCH", "/contoso/customerinsights/ci_1?action=setAccessControlRecursive&mode=modify&continuation=page-2"),
            ("HEAD", "/contoso/customerinsights/?action=getAccessControl&upn=false"),
            ("HEAD", "/contoso/customerinsights/ci_1?action=getAccessControl&upn=false"),
        ]
        .map(|(m, u)| (m.to_string(), u.to_string()))
    );
    // the root keeps its own entries, gains the groups' and a mask
    let root_set = seen[1].acl.clone().unwrap();
    assert_eq!(
        root_set,
        format!(
            "user::rwx,group::r-x,other::---,group:{}:r-x,group:{}:r-x,mask::r-x",
            rules.reader, rules.contributor
        )
    );
    assert_eq!(
        seen[2].acl.as_deref(),
        Some(rules.environment_acl().as_str())
    );
    // every storage request carries the token the authority issued; the token request
    // names the client and the storage scope, and the secret goes nowhere else
    let everything: Vec<&Seen> = first.iter().chain(seen.iter()).collect();
    let (tokens, storage): (Vec<&Seen>, Vec<&Seen>) = everything
        .into_iter()
        .partition(|s| s.uri.contains("oauth2"));
    assert_eq!(tokens.len(), 1, "one token, reused: {tokens:?}");
    assert_eq!(tokens[0].uri, "/tenant-1/oauth2/v2.0/token");
    assert!(
        tokens[0].body.contains("client_id=client-1"),
        "{}",
        tokens[0].body
    );
    assert!(tokens[0].body.contains("grant_type=client_credentials"));
    assert!(tokens[0].body.contains("storage.azure.com"));
    for s in storage {
        assert_eq!(s.authorization, "Bearer token-from-the-stand-in");
        assert!(
            !s.uri.contains("the-client-secret")
                && s.acl
                    .as_deref()
                    .is_none_or(|a| !a.contains("the-client-secret"))
        );
    }

    // read back: no drift left on the root and the folder
    assert_eq!(rules.check(&service).await.unwrap().drifted, 0);
}

fn var(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run the tests with scripts/test.sh"))
}

#[tokio::test]
async fn dfs_requests_are_signed_with_the_account_key_as_azurite_checks_them() {
    use object_store::path::Path as ObjectPath;
    use object_store::{ObjectStoreExt, PutPayload};
    let container = format!("acl{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let config = |key: &str| AdlsConfig {
        account: Some(var("LAKECDP_TEST_AZURITE_ACCOUNT")),
        container: Some(container.clone()),
        account_key: Some(SecretRef::Env(key.into())),
        endpoint: Some(var("LAKECDP_TEST_AZURITE_ENDPOINT")),
        emulator: true,
        allow_flat_namespace: true,
        ..Default::default()
    };
    let good = config("LAKECDP_TEST_AZURITE_KEY");
    AzureService::new(&good, None)
        .unwrap()
        .create_container(&container)
        .await
        .unwrap();
    lakecdp_lake::backend::azure::open(&good, None)
        .unwrap()
        .store
        .put(
            &ObjectPath::from("ci_1/model.json"),
            PutPayload::from_static(b"{}"),
        )
        .await
        .unwrap();

    // Azurite authenticates the request (its query in the signed resource included),
    // then answers as its blob endpoint does: no ACL header, no hierarchical namespace
    let service = AzureService::dfs(&good, &Secrets::from_refs(None)).unwrap();
    match service
        .get_access_control(&container, "ci_1/model.json")
        .await
    {
        Err(ServiceError::Other { code, .. }) => assert!(code.contains("no x-ms-acl"), "{code}"),
        other => panic!("a signed request Azurite accepts, not {other:?}"),
    }
    // the same request signed with another key is refused (403)
    std::env::set_var(
        "LAKECDP_ADLS_TEST_WRONG_KEY",
        "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5LXdyb25nIQ==",
    );
    let wrong = AzureService::dfs(
        &config("LAKECDP_ADLS_TEST_WRONG_KEY"),
        &Secrets::from_refs(None),
    )
    .unwrap();
    // (Azurite answers a PATCH with 400 before it authenticates it, so only the
    // getAccessControl request's signature is checked here)
    match wrong
        .get_access_control(&container, "ci_1/model.json")
        .await
    {
        Err(ServiceError::Unauthenticated { .. }) => {}
        Err(ServiceError::Forbidden { code }) if code == "AuthorizationFailure" => {}
        other => panic!("a wrong key is refused, not {other:?}"),
    }
}
