//! S3 and S3-compatible stores, through object_store's S3 backend for data, and a small
//! signed client (Signature Version 4) for what object_store does not offer: bucket
//! existence, its region, and bucket creation.
//!
//! The bucket plays the container; an optional prefix places the environments deeper.
//! Conditional puts use `If-Match` / `If-None-Match`, which AWS S3 and most compatible
//! stores implement.

use std::path::Path as FsPath;
use std::sync::Arc;

use lakecdp_core::{s3_credential_errors, Credentials, S3Config};
use object_store::aws::{AmazonS3, AmazonS3Builder, S3ConditionalPut};
use object_store::path::Path;
use url::Url;

use super::{http_client, sign, unreachable, Capabilities, ServiceError, StoreHandle};
use crate::error::{Error, Result};
use crate::secrets::Secrets;

pub(crate) fn build(config: &S3Config, secrets: &Secrets) -> Result<AmazonS3> {
    builder(config, secrets)?
        .build()
        .map_err(|e| Error::Service(format!("cannot configure S3 storage: {e}")))
}

/// The store's builder. Only `credentials = "ambient"` reads the host's `AWS_*`
/// variables (and lets object_store fall back to the profile and the instance role);
/// otherwise the store knows only what the configuration declares, and with no key and
/// no choice the configuration is refused (validation says so first).
fn builder(config: &S3Config, secrets: &Secrets) -> Result<AmazonS3Builder> {
    let keys = config.access_key_id.is_some() || config.secret_access_key.is_some();
    let base = match config.credentials {
        Credentials::Ambient => AmazonS3Builder::from_env(),
        Credentials::Anonymous => AmazonS3Builder::new().with_skip_signature(true),
        Credentials::Declared if keys => AmazonS3Builder::new(),
        Credentials::Declared => {
            return Err(lakecdp_core::ConfigErrors(s3_credential_errors(
                "environment.storage",
                false,
                false,
                config.session_token.is_some(),
                config.credentials,
            ))
            .into())
        }
    };
    let mut b = base
        .with_bucket_name(&config.bucket)
        .with_region(&config.region)
        .with_conditional_put(S3ConditionalPut::ETagMatch);
    if let (Some(id), Some(secret)) = (&config.access_key_id, &config.secret_access_key) {
        b = b
            .with_access_key_id(
                secrets
                    .resolve("environment.storage.access_key_id", id)?
                    .expose(),
            )
            .with_secret_access_key(
                secrets
                    .resolve("environment.storage.secret_access_key", secret)?
                    .expose(),
            );
    }
    if let Some(token) = &config.session_token {
        b = b.with_token(
            secrets
                .resolve("environment.storage.session_token", token)?
                .expose(),
        );
    }
    if let Some(ep) = &config.endpoint {
        b = b
            .with_endpoint(ep.trim_end_matches('/'))
            .with_allow_http(ep.starts_with("http://"));
    }
    b = b.with_virtual_hosted_style_request(!path_style(config));
    Ok(b)
}

fn path_style(config: &S3Config) -> bool {
    config.path_style.unwrap_or(config.endpoint.is_some())
}

/// The container path inside the bucket: the prefix, or the bucket root.
pub fn container_path(config: &S3Config) -> Path {
    config
        .prefix
        .as_deref()
        .map(|p| Path::from(p.trim_matches('/')))
        .unwrap_or_default()
}

/// Open an S3 bucket.
pub fn open(config: &S3Config, project_dir: Option<&FsPath>) -> Result<StoreHandle> {
    open_with(config, &Secrets::from_refs(project_dir))
}

/// Open an S3 bucket, its secrets found through `secrets`.
pub fn open_with(config: &S3Config, secrets: &Secrets) -> Result<StoreHandle> {
    let store = build(config, secrets)?;
    let container = container_path(config);
    let base_url = if container.as_ref().is_empty() {
        format!("s3://{}", config.bucket)
    } else {
        format!("s3://{}/{}", config.bucket, container)
    };
    Ok(StoreHandle {
        store: Arc::new(store),
        container,
        capabilities: Capabilities {
            conditional_update: true,
            conditional_create: true,
        },
        base_url,
        kind: "s3",
    })
}

/// What a HEAD on the bucket said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketInfo {
    /// `x-amz-bucket-region`, when the server returned it.
    pub region: Option<String>,
}

/// A signed client for bucket-level calls.
pub struct S3Service {
    client: reqwest::Client,
    store: AmazonS3,
    bucket_url: Url,
    region: String,
    /// Unsigned requests (`credentials = "anonymous"`).
    anonymous: bool,
}

impl std::fmt::Debug for S3Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Service")
            .field("bucket_url", &self.bucket_url.as_str())
            .finish()
    }
}

impl S3Service {
    /// A client for the bucket a configuration names.
    pub fn new(config: &S3Config, project_dir: Option<&FsPath>) -> Result<Self> {
        Self::new_with(config, &Secrets::from_refs(project_dir))
    }

    /// A client for the bucket a configuration names, its secrets found through
    /// `secrets`.
    pub fn new_with(config: &S3Config, secrets: &Secrets) -> Result<Self> {
        let store = build(config, secrets)?;
        let bucket_url = match (&config.endpoint, path_style(config)) {
            (Some(ep), true) => format!("{}/{}", ep.trim_end_matches('/'), config.bucket),
            (Some(ep), false) => {
                let u =
                    Url::parse(ep).map_err(|e| Error::Service(format!("invalid endpoint: {e}")))?;
                format!("{}://{}.{}", u.scheme(), config.bucket, u.authority())
            }
            (None, true) => format!(
                "https://s3.{}.amazonaws.com/{}",
                config.region, config.bucket
            ),
            (None, false) => format!(
                "https://{}.s3.{}.amazonaws.com",
                config.bucket, config.region
            ),
        };
        let bucket_url = Url::parse(&bucket_url)
            .map_err(|e| Error::Service(format!("invalid bucket URL: {e}")))?;
        Ok(Self {
            client: http_client(),
            store,
            bucket_url,
            region: config.region.clone(),
            anonymous: config.credentials == Credentials::Anonymous,
        })
    }

    async fn send(
        &self,
        method: reqwest::Method,
        query: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<reqwest::Response, ServiceError> {
        let mut url = self.bucket_url.clone();
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query.iter());
        }
        if self.anonymous {
            let resp = self
                .client
                .request(method, url)
                .body(body)
                .send()
                .await
                .map_err(unreachable)?;
            return Self::answer(resp).await;
        }
        let cred = self
            .store
            .credentials()
            .get_credential()
            .await
            .map_err(|e| ServiceError::Unauthenticated {
                code: format!("no credentials: {e}"),
            })?;
        let headers = sign::aws_signed_headers(
            &cred,
            "s3",
            &self.region,
            method.as_str(),
            &self.bucket_url,
            query,
            &body,
            Vec::new(),
        );
        let mut req = self.client.request(method, url);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let resp = req.body(body).send().await.map_err(unreachable)?;
        Self::answer(resp).await
    }

    /// The response when it succeeded, else the error its status and code say.
    async fn answer(resp: reqwest::Response) -> Result<reqwest::Response, ServiceError> {
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let code = text
            .split("<Code>")
            .nth(1)
            .and_then(|s| s.split("</Code>").next())
            .unwrap_or("")
            .to_string();
        Err(match (status, code.as_str()) {
            (_, "InvalidAccessKeyId")
            | (_, "SignatureDoesNotMatch")
            | (_, "ExpiredToken")
            | (_, "InvalidToken")
            | (401, _) => ServiceError::Unauthenticated { code },
            (404, _) | (_, "NoSuchBucket") => ServiceError::NotFound { code },
            // HEAD answers carry no body: a 403 there may be a bad key or a missing
            // permission; the permission probe tells them apart.
            (403, "") => ServiceError::Forbidden {
                code: "Forbidden".into(),
            },
            (403, _) => ServiceError::Forbidden { code },
            _ => ServiceError::Other { status, code },
        })
    }

    /// Look at the bucket (a one-key listing, whose errors carry a code, unlike HEAD's):
    /// `None` when it does not exist; its region when the server tells.
    pub async fn head_bucket(&self) -> Result<Option<BucketInfo>, ServiceError> {
        match self
            .send(
                reqwest::Method::GET,
                &[("list-type", "2"), ("max-keys", "1")],
                Vec::new(),
            )
            .await
        {
            Ok(resp) => Ok(Some(BucketInfo {
                region: resp
                    .headers()
                    .get("x-amz-bucket-region")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string),
            })),
            Err(ServiceError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Create the bucket in the configured region (an existing bucket owned by the
    /// caller is not an error).
    pub async fn create_bucket(&self) -> Result<(), ServiceError> {
        let body = if self.region == "us-east-1" {
            Vec::new()
        } else {
            format!(
                "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><LocationConstraint>{}</LocationConstraint></CreateBucketConfiguration>",
                self.region
            )
            .into_bytes()
        };
        match self.send(reqwest::Method::PUT, &[], body).await {
            Ok(_) => Ok(()),
            Err(ServiceError::Other { code, .. }) if code == "BucketAlreadyOwnedByYou" => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lakecdp_core::SecretRef;
    use object_store::aws::AmazonS3ConfigKey;

    fn config(credentials: Credentials, keys: bool) -> S3Config {
        S3Config {
            bucket: "lake".into(),
            region: "eu-west-1".into(),
            access_key_id: keys.then(|| SecretRef::Env("LAKECDP_S3_UNIT_KEY_ID".into())),
            secret_access_key: keys.then(|| SecretRef::Env("LAKECDP_S3_UNIT_SECRET".into())),
            credentials,
            ..Default::default()
        }
    }

    #[test]
    fn the_hosts_credentials_are_read_only_when_the_configuration_asks() {
        // The host's ambient credentials, as a machine with an AWS profile has them.
        // (These variables are read by this test only.)
        std::env::set_var("AWS_ACCESS_KEY_ID", "AKIAAMBIENT");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "ambient-secret");
        std::env::set_var("AWS_SESSION_TOKEN", "ambient-token");
        std::env::set_var("LAKECDP_S3_UNIT_KEY_ID", "AKIADECLARED");
        std::env::set_var("LAKECDP_S3_UNIT_SECRET", "declared-secret");
        let secrets = Secrets::from_refs(None);
        let value = |b: &AmazonS3Builder, k: AmazonS3ConfigKey| b.get_config_value(&k);

        // no key and no choice: refused, naming the key and both fixes
        let err = builder(&config(Credentials::Declared, false), &secrets).unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("environment.storage.access_key_id")
                && text.contains("credentials = \"ambient\"")
                && text.contains("credentials = \"anonymous\""),
            "{text}"
        );
        assert!(open(&config(Credentials::Declared, false), None).is_err());

        // declared keys: those, and nothing of the host's (not its session token)
        let b = builder(&config(Credentials::Declared, true), &secrets).unwrap();
        assert_eq!(
            value(&b, AmazonS3ConfigKey::AccessKeyId).as_deref(),
            Some("AKIADECLARED")
        );
        assert_eq!(value(&b, AmazonS3ConfigKey::Token), None);
        assert!(b.build().is_ok());

        // anonymous: unsigned, no key at all
        let b = builder(&config(Credentials::Anonymous, false), &secrets).unwrap();
        assert_eq!(value(&b, AmazonS3ConfigKey::AccessKeyId), None);
        assert_eq!(value(&b, AmazonS3ConfigKey::Token), None);
        assert_eq!(
            value(&b, AmazonS3ConfigKey::SkipSignature).as_deref(),
            Some("true")
        );
        assert!(open(&config(Credentials::Anonymous, false), None).is_ok());

        // ambient, said explicitly: the host's
        let b = builder(&config(Credentials::Ambient, false), &secrets).unwrap();
        assert_eq!(
            value(&b, AmazonS3ConfigKey::AccessKeyId).as_deref(),
            Some("AKIAAMBIENT")
        );
        assert_eq!(
            value(&b, AmazonS3ConfigKey::Token).as_deref(),
            Some("ambient-token")
        );
    }
}
