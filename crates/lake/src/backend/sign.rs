//! Request signing for the few storage service calls object_store does not offer
//! (account information, container and bucket existence and creation): Azure Shared Key
//! and AWS Signature Version 4.

use base64::prelude::{Engine, BASE64_STANDARD};
use ring::{digest, hmac};

/// Azure Shared Key signature of a request (Blob service, version 2015-02-21 and later).
///
/// `headers` are the request's headers (names in any case); `path` is the URL path as
/// sent; `query` the query pairs.
pub fn azure_shared_key(
    account: &str,
    key_b64: &str,
    method: &str,
    path: &str,
    query: &[(&str, &str)],
    headers: &[(&str, String)],
) -> Option<String> {
    let key = BASE64_STANDARD.decode(key_b64).ok()?;
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    let content_length = match get("content-length") {
        "0" => "",
        other => other,
    };
    let mut ms: Vec<(String, &str)> = headers
        .iter()
        .filter(|(k, _)| k.to_ascii_lowercase().starts_with("x-ms-"))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim()))
        .collect();
    ms.sort();
    let canonical_headers: String = ms.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let mut q: Vec<(String, &str)> = query
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), *v))
        .collect();
    q.sort();
    let mut resource = format!("/{account}{path}");
    for (k, v) in q {
        resource.push_str(&format!("\n{k}:{v}"));
    }
    let string_to_sign = format!(
        "{method}\n{}\n{}\n{content_length}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{canonical_headers}{resource}",
        get("content-encoding"),
        get("content-language"),
        get("content-md5"),
        get("content-type"),
        get("date"),
        get("if-modified-since"),
        get("if-match"),
        get("if-none-match"),
        get("if-unmodified-since"),
        get("range"),
    );
    let tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, &key),
        string_to_sign.as_bytes(),
    );
    Some(format!(
        "SharedKey {account}:{}",
        BASE64_STANDARD.encode(tag.as_ref())
    ))
}

/// The headers of a request to `url` signed now with AWS Signature Version 4 for
/// `service`: `authorization`, `x-amz-content-sha256`, `x-amz-date`, the security token
/// when the credential has one, and the `extra` headers (signed too). `host` is signed
/// but left out: the HTTP client sends it.
#[allow(clippy::too_many_arguments)]
pub fn aws_signed_headers(
    credential: &object_store::aws::AwsCredential,
    service: &str,
    region: &str,
    method: &str,
    url: &url::Url,
    query: &[(&str, &str)],
    body: &[u8],
    extra: Vec<(&'static str, String)>,
) -> Vec<(&'static str, String)> {
    let amz_date = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let payload = sha256_hex(body);
    let host = match url.port() {
        Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_string(),
    };
    let path = match url.path() {
        "" => "/".to_string(),
        p => p.to_string(),
    };
    let mut headers = vec![
        ("host", host),
        ("x-amz-content-sha256", payload.clone()),
        ("x-amz-date", amz_date.clone()),
    ];
    if let Some(t) = &credential.token {
        headers.push(("x-amz-security-token", t.clone()));
    }
    headers.extend(extra);
    let auth = aws_sigv4(
        service,
        &credential.key_id,
        &credential.secret_key,
        region,
        method,
        &path,
        query,
        &headers,
        &payload,
        &amz_date,
    );
    headers.retain(|(k, _)| *k != "host");
    headers.push(("authorization", auth));
    headers
}

/// Hex SHA-256 of a payload.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, data))
}

/// AWS Signature Version 4 `Authorization` header for a request to `service` (`s3`,
/// `iam`).
///
/// `headers` must include `host`, `x-amz-date` and `x-amz-content-sha256` (and
/// `x-amz-security-token` for temporary credentials); `amz_date` is `yyyymmddThhmmssZ`.
#[allow(clippy::too_many_arguments)]
pub fn aws_sigv4(
    service: &str,
    key_id: &str,
    secret: &str,
    region: &str,
    method: &str,
    path: &str,
    query: &[(&str, &str)],
    headers: &[(&str, String)],
    payload_sha256: &str,
    amz_date: &str,
) -> String {
    let mut hs: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    hs.sort();
    let canonical_headers: String = hs.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed_headers = hs
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let mut q: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| (uri_encode(k, true), uri_encode(v, true)))
        .collect();
    q.sort();
    let canonical_query = q
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let canonical_request = format!(
        "{method}\n{}\n{canonical_query}\n{canonical_headers}\n{signed_headers}\n{payload_sha256}",
        uri_encode(path, false)
    );
    let date = &amz_date[..8];
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    );
    let mut key = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, format!("AWS4{secret}").as_bytes()),
        date.as_bytes(),
    );
    for part in [region, service, "aws4_request"] {
        key = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, key.as_ref()),
            part.as_bytes(),
        );
    }
    let signature = hex::encode(
        hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, key.as_ref()),
            string_to_sign.as_bytes(),
        )
        .as_ref(),
    );
    format!("AWS4-HMAC-SHA256 Credential={key_id}/{scope}, SignedHeaders={signed_headers}, Signature={signature}")
}

fn uri_encode(s: &str, encode_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b'/' if !encode_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the AWS documentation ("GET Object" with a range header).
    #[test]
    fn sigv4_matches_the_documented_example() {
        let headers = [
            ("Host", "examplebucket.s3.amazonaws.com".to_string()),
            ("Range", "bytes=0-9".to_string()),
            (
                "x-amz-content-sha256",
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".to_string(),
            ),
            ("x-amz-date", "20130524T000000Z".to_string()),
        ];
        let auth = aws_sigv4(
            "s3",
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "us-east-1",
            "GET",
            "/test.txt",
            &[],
            &headers,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "20130524T000000Z",
        );
        assert!(
            auth.ends_with(
                "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
            ),
            "{auth}"
        );
        assert!(auth.contains("SignedHeaders=host;range;x-amz-content-sha256;x-amz-date"));
    }

    #[test]
    fn shared_key_signature_is_stable_and_key_dependent() {
        let headers = [
            ("x-ms-date", "Mon, 23 Nov 2026 10:00:00 GMT".to_string()),
            ("x-ms-version", "2021-08-06".to_string()),
        ];
        let query = [("restype", "container")];
        let a = azure_shared_key(
            "acct",
            "a2V5",
            "HEAD",
            "/customerinsights",
            &query,
            &headers,
        )
        .unwrap();
        let b = azure_shared_key(
            "acct",
            "a2V5",
            "HEAD",
            "/customerinsights",
            &query,
            &headers,
        )
        .unwrap();
        let c = azure_shared_key(
            "acct",
            "b3RoZXI=",
            "HEAD",
            "/customerinsights",
            &query,
            &headers,
        )
        .unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.starts_with("SharedKey acct:"));
        assert!(azure_shared_key("acct", "not base64!", "GET", "/", &[], &headers).is_none());
    }
}
