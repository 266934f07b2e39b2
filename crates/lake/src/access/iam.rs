//! Sharing rules of an S3 lake: one identity per group, made through the server's IAM
//! API (the AWS IAM query API: `CreateUser`, `PutUserPolicy`, `GetUserPolicy`,
//! `CreateAccessKey`, `ListAccessKeys`; on AWS at `iam.amazonaws.com`, on servers with
//! an endpoint at that endpoint, as SeaweedFS serves it beside S3), with an inline
//! policy scoped to the environment's prefix:
//!
//! - Reader: `s3:GetObject` on `<bucket>/<prefix>/*`, and `s3:ListBucket` on the
//!   bucket for keys under the prefix only (`s3:prefix` condition);
//! - Contributor: the same, plus `s3:PutObject` and `s3:DeleteObject`.
//!
//! Requests are signed with the lake's own credentials, which must be allowed to manage
//! identities. Secret keys made here are returned once to the caller, never logged.

use std::fmt;

use lakecdp_core::{S3Config, Secret};
use serde_json::{json, Value};
use url::Url;

use super::{Drift, RulesReport};
use crate::backend::{http_client, s3, sign};
use crate::secrets::Secrets;

/// The name of the inline policy lakecdp keeps on each identity.
pub const POLICY_NAME: &str = "lakecdp-sharing";

/// Errors of the IAM API.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The lake's configuration cannot make a client.
    #[error("{0}")]
    Config(String),
    /// The server could not be reached.
    #[error("the IAM API at {endpoint} cannot be reached: {reason}")]
    Unreachable {
        /// Where.
        endpoint: String,
        /// Why.
        reason: String,
    },
    /// The server refused a call.
    #[error("the IAM API refused {action}: {code} {message}")]
    Refused {
        /// The action.
        action: String,
        /// The error code.
        code: String,
        /// The server's message.
        message: String,
    },
}

/// A new access key of an identity.
pub struct AccessKey {
    /// The key id.
    pub id: String,
    /// The secret key.
    pub secret: Secret,
}

impl fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessKey").field("id", &self.id).finish()
    }
}

/// A client of the IAM API of an S3 lake's server.
pub struct IamClient {
    client: reqwest::Client,
    endpoint: Url,
    region: String,
    store: object_store::aws::AmazonS3,
}

impl fmt::Debug for IamClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IamClient")
            .field("endpoint", &self.endpoint.as_str())
            .finish()
    }
}

/// The text between `<tag>` and `</tag>`, unescaped, for each occurrence.
fn elements(xml: &str, tag: &str) -> Vec<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    xml.split(&open)
        .skip(1)
        .filter_map(|s| s.split(&close).next())
        .map(|s| {
            s.replace("&quot;", "\"")
                .replace("&#34;", "\"")
                .replace("&apos;", "'")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&")
        })
        .collect()
}

impl IamClient {
    /// A client for the lake's server, signing with the lake's credentials.
    pub fn new(config: &S3Config, secrets: &Secrets) -> Result<Self, Error> {
        let store = s3::build(config, secrets).map_err(|e| Error::Config(e.to_string()))?;
        let (endpoint, region) = match &config.endpoint {
            Some(ep) => (ep.trim_end_matches('/').to_string(), config.region.clone()),
            // IAM is global on AWS, signed for us-east-1
            None => ("https://iam.amazonaws.com".to_string(), "us-east-1".into()),
        };
        let endpoint = Url::parse(&format!("{endpoint}/"))
            .map_err(|e| Error::Config(format!("invalid IAM endpoint: {e}")))?;
        Ok(Self {
            client: http_client(),
            endpoint,
            region,
            store,
        })
    }

    async fn call(&self, action: &str, params: &[(&str, &str)]) -> Result<String, Error> {
        // built apart: the serializer may not be held across an await
        let body = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("Action", action);
            form.append_pair("Version", "2010-05-08");
            for (k, v) in params {
                form.append_pair(k, v);
            }
            form.finish().into_bytes()
        };
        let cred = self
            .store
            .credentials()
            .get_credential()
            .await
            .map_err(|e| Error::Config(format!("no credentials for the IAM API: {e}")))?;
        let headers = sign::aws_signed_headers(
            &cred,
            "iam",
            &self.region,
            "POST",
            &self.endpoint,
            &[],
            &body,
            vec![(
                "content-type",
                "application/x-www-form-urlencoded".to_string(),
            )],
        );
        let mut req = self.client.post(self.endpoint.clone());
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let resp = req
            .body(body)
            .send()
            .await
            .map_err(|e| Error::Unreachable {
                endpoint: self.endpoint.to_string(),
                reason: e.without_url().to_string(),
            })?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if status.is_success() {
            return Ok(text);
        }
        Err(Error::Refused {
            action: action.to_string(),
            code: elements(&text, "Code")
                .pop()
                .unwrap_or_else(|| status.as_u16().to_string()),
            message: elements(&text, "Message").pop().unwrap_or_default(),
        })
    }

    /// Make the identity `user` unless it exists.
    pub async fn ensure_user(&self, user: &str) -> Result<bool, Error> {
        match self.call("CreateUser", &[("UserName", user)]).await {
            Ok(_) => Ok(true),
            Err(Error::Refused { code, .. }) if code == "EntityAlreadyExists" => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Set the identity's inline policy [`POLICY_NAME`].
    pub async fn put_policy(&self, user: &str, policy: &Value) -> Result<(), Error> {
        self.call(
            "PutUserPolicy",
            &[
                ("UserName", user),
                ("PolicyName", POLICY_NAME),
                ("PolicyDocument", &policy.to_string()),
            ],
        )
        .await
        .map(|_| ())
    }

    /// The identity's inline policy [`POLICY_NAME`], as the server keeps it; `None`
    /// when the identity or the policy is not there.
    pub async fn policy(&self, user: &str) -> Result<Option<Value>, Error> {
        let text = match self
            .call(
                "GetUserPolicy",
                &[("UserName", user), ("PolicyName", POLICY_NAME)],
            )
            .await
        {
            Ok(text) => text,
            Err(Error::Refused { code, .. }) if code == "NoSuchEntity" => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some(doc) = elements(&text, "PolicyDocument").pop() else {
            return Ok(None);
        };
        // AWS answers the document URL-encoded; other servers may not
        let decoded = if doc.trim_start().starts_with('{') {
            doc
        } else {
            url::form_urlencoded::parse(format!("d={doc}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        Ok(serde_json::from_str(&decoded).ok())
    }

    /// The ids of the identity's access keys.
    pub async fn access_keys(&self, user: &str) -> Result<Vec<String>, Error> {
        let text = self.call("ListAccessKeys", &[("UserName", user)]).await?;
        Ok(elements(&text, "AccessKeyId"))
    }

    /// Make an access key for the identity.
    pub async fn create_access_key(&self, user: &str) -> Result<AccessKey, Error> {
        let text = self.call("CreateAccessKey", &[("UserName", user)]).await?;
        let id = elements(&text, "AccessKeyId").pop();
        let secret = elements(&text, "SecretAccessKey").pop();
        match (id, secret) {
            (Some(id), Some(secret)) => Ok(AccessKey {
                id,
                secret: Secret::new(secret),
            }),
            _ => Err(Error::Refused {
                action: "CreateAccessKey".into(),
                code: "MalformedAnswer".into(),
                message: "the answer holds no access key".into(),
            }),
        }
    }

    /// Remove an access key of the identity.
    pub async fn delete_access_key(&self, user: &str, id: &str) -> Result<(), Error> {
        self.call(
            "DeleteAccessKey",
            &[("UserName", user), ("AccessKeyId", id)],
        )
        .await
        .map(|_| ())
    }
}

/// The policy of a group's identity: read (and list) under `prefix` of `bucket`, and
/// with `write`, put and delete there too.
pub fn policy(bucket: &str, prefix: &str, write: bool) -> Value {
    let prefix = prefix.trim_matches('/');
    let objects = format!("arn:aws:s3:::{bucket}/{prefix}/*");
    let mut actions = vec!["s3:GetObject"];
    if write {
        actions.extend(["s3:PutObject", "s3:DeleteObject"]);
    }
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "Objects",
                "Effect": "Allow",
                "Action": actions,
                "Resource": [objects],
            },
            {
                "Sid": "List",
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": [format!("arn:aws:s3:::{bucket}")],
                "Condition": {"StringLike": {"s3:prefix": [prefix.to_string(), format!("{prefix}/*")]}},
            },
        ],
    })
}

/// The identities of the two groups, and where they may act.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Rules {
    /// The bucket.
    pub bucket: String,
    /// The environment's folder in the bucket (`[prefix/]customerinsights/ci_<id>`).
    pub prefix: String,
    /// The Reader group's identity.
    pub reader: String,
    /// The Contributor group's identity.
    pub contributor: String,
}

impl S3Rules {
    fn wanted(&self) -> [(&str, Value); 2] {
        [
            (
                self.reader.as_str(),
                policy(&self.bucket, &self.prefix, false),
            ),
            (
                self.contributor.as_str(),
                policy(&self.bucket, &self.prefix, true),
            ),
        ]
    }

    /// Make the identities and set their policies, then read the policies back.
    pub async fn apply(&self, iam: &IamClient) -> Result<RulesReport, Error> {
        let mut report = RulesReport::default();
        for (user, wanted) in self.wanted() {
            report.checked += 1;
            iam.ensure_user(user).await?;
            if iam.policy(user).await?.as_ref().map(normalised) != Some(normalised(&wanted)) {
                iam.put_policy(user, &wanted).await?;
                report.changed += 1;
            }
            check_one(iam, user, &wanted, &mut report).await?;
        }
        Ok(report)
    }

    /// Read the identities' policies, changing nothing.
    pub async fn check(&self, iam: &IamClient) -> Result<RulesReport, Error> {
        let mut report = RulesReport::default();
        for (user, wanted) in self.wanted() {
            report.checked += 1;
            check_one(iam, user, &wanted, &mut report).await?;
        }
        Ok(report)
    }
}

/// A policy with every one-element list written as a list: servers may answer
/// `"Action": "s3:GetObject"` for `"Action": ["s3:GetObject"]`, which means the same.
fn normalised(policy: &Value) -> Value {
    let list = |v: &Value| match v {
        Value::String(_) => Value::Array(vec![v.clone()]),
        other => other.clone(),
    };
    let mut policy = policy.clone();
    if let Some(statements) = policy.get_mut("Statement") {
        if let Value::Object(_) = statements {
            *statements = Value::Array(vec![statements.clone()]);
        }
        for statement in statements.as_array_mut().into_iter().flatten() {
            let Some(fields) = statement.as_object_mut() else {
                continue;
            };
            for key in ["Action", "NotAction", "Resource", "NotResource"] {
                if let Some(v) = fields.get_mut(key) {
                    *v = list(v);
                }
            }
            if let Some(Value::Object(conditions)) = fields.get_mut("Condition") {
                for operator in conditions.values_mut() {
                    if let Value::Object(keys) = operator {
                        for v in keys.values_mut() {
                            *v = list(v);
                        }
                    }
                }
            }
        }
    }
    policy
}

async fn check_one(
    iam: &IamClient,
    user: &str,
    wanted: &Value,
    report: &mut RulesReport,
) -> Result<(), Error> {
    let found = iam.policy(user).await?;
    if found.as_ref().map(normalised) != Some(normalised(wanted)) {
        report.note(Drift {
            path: format!("identity {user}, policy {POLICY_NAME}"),
            expected: wanted.to_string(),
            found: found.map_or_else(|| "none".to_string(), |v| v.to_string()),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_readers_policy_reads_and_lists_under_the_prefix_only() {
        let p = policy("lake", "/team/customerinsights/ci_1/", false);
        assert_eq!(
            p["Statement"][0]["Resource"][0],
            "arn:aws:s3:::lake/team/customerinsights/ci_1/*"
        );
        assert_eq!(p["Statement"][0]["Action"], json!(["s3:GetObject"]));
        assert_eq!(
            p["Statement"][1]["Condition"]["StringLike"]["s3:prefix"],
            json!(["team/customerinsights/ci_1", "team/customerinsights/ci_1/*"])
        );
        let w = policy("lake", "team/customerinsights/ci_1", true);
        assert_eq!(
            w["Statement"][0]["Action"],
            json!(["s3:GetObject", "s3:PutObject", "s3:DeleteObject"])
        );
    }

    #[test]
    fn a_policy_written_with_single_values_means_the_same() {
        let wanted = policy("lake", "ci_1", false);
        let mut answered = wanted.clone();
        answered["Statement"][0]["Action"] = json!("s3:GetObject");
        answered["Statement"][1]["Resource"] = json!("arn:aws:s3:::lake");
        assert_eq!(normalised(&answered), normalised(&wanted));
        answered["Statement"][0]["Action"] = json!("s3:PutObject");
        assert_ne!(normalised(&answered), normalised(&wanted));
    }

    #[test]
    fn answers_are_read_with_their_entities_unescaped() {
        let xml = "<R><AccessKeyId>AK1</AccessKeyId><AccessKeyId>AK2</AccessKeyId><Message>a &lt;b&gt; &amp; &quot;c&quot;</Message></R>";
        assert_eq!(elements(xml, "AccessKeyId"), ["AK1", "AK2"]);
        assert_eq!(elements(xml, "Message"), ["a <b> & \"c\""]);
        assert!(elements(xml, "Code").is_empty());
    }
}
