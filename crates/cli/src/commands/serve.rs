//! `serve`: the HTTP API server.

use std::io::Read;

use lakecdp_app::App;

use crate::args::ServeArgs;
use crate::UserError;

/// Read the first administrator's password from a file or stdin (`-`).
fn read_admin_password(path: &std::path::Path) -> anyhow::Result<String> {
    let mut text = String::new();
    if path.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text).map_err(|e| {
            anyhow::anyhow!("cannot read the administrator's password from stdin: {e}")
        })?;
    } else {
        text = std::fs::read_to_string(path).map_err(|e| {
            UserError(format!(
                "cannot read the administrator's password from {}: {e}",
                path.display()
            ))
        })?;
    }
    Ok(text.trim_end_matches(['\n', '\r']).to_string())
}

/// `serve`.
pub async fn run(app: &App, a: ServeArgs) -> anyhow::Result<()> {
    let tls = match (&a.tls_cert, &a.tls_key) {
        (Some(cert), Some(key)) => Some(
            lakecdp_server::tls::server_config(cert, key).map_err(|e| UserError(e.to_string()))?,
        ),
        _ => None,
    };
    if tls.is_none() && !a.listen.ip().is_loopback() && !a.insecure_http {
        return Err(UserError(format!(
            "{} is not a loopback address: plain HTTP there would send passwords and \
             tokens in the clear; give --tls-cert and --tls-key, or listen on 127.0.0.1 \
             behind a TLS proxy, or pass --insecure-http if the network is trusted",
            a.listen
        ))
        .into());
    }
    if !app.has_administrator().await? {
        let Some(path) = &a.admin_password_file else {
            return Err(UserError(
                "the catalog has no administrator yet: start the server once with \
                 --admin-password-file PATH (or `-` for stdin) to create one"
                    .into(),
            )
            .into());
        };
        let password = read_admin_password(path)?;
        let admin = app
            .bootstrap_administrator(&a.admin_name, &password)
            .await?;
        eprintln!("created the first administrator `{}`", admin.name);
    }
    let listener = tokio::net::TcpListener::bind(a.listen)
        .await
        .map_err(|e| UserError(format!("cannot listen on {}: {e}", a.listen)))?;
    let shutdown = lakecdp_app::CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        stop.cancel();
    });
    #[cfg(unix)]
    {
        let stop = shutdown.clone();
        tokio::spawn(async move {
            if let Ok(mut term) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            {
                term.recv().await;
                stop.cancel();
            }
        });
    }
    eprintln!(
        "lakecdp serves {}://{} (API at /api, description at /api/openapi.json); Ctrl-C stops it",
        if tls.is_some() { "https" } else { "http" },
        listener.local_addr().unwrap_or(a.listen)
    );
    match &a.data_root {
        Some(d) => eprintln!("local paths are allowed under {}", d.display()),
        None => eprintln!("local paths are refused (no --data-root)"),
    }
    lakecdp_server::serve(
        app.clone(),
        lakecdp_server::ServerConfig {
            instance: a.instance,
            no_scheduler: a.no_scheduler,
            data_root: a.data_root,
            tls,
            public_url: public_url(a.public_url.as_deref())?,
            ..lakecdp_server::ServerConfig::default()
        },
        listener,
        shutdown,
    )
    .await
    .map_err(|e| match e {
        lakecdp_server::ServeError::App(e) => anyhow::Error::from(e),
        other => anyhow::anyhow!(other),
    })?;
    eprintln!("stopped; running jobs were canceled");
    Ok(())
}

/// `--public-url`, checked: `http://` or `https://`, a host, perhaps a path, and nothing
/// else (no query, fragment, credentials or spaces); without its trailing `/`.
fn public_url(url: Option<&str>) -> anyhow::Result<Option<String>> {
    let Some(url) = url else {
        return Ok(None);
    };
    let bad = |why: &str| {
        UserError(format!(
            "--public-url `{url}` {why}: give the address clients reach the server at, such as https://cdp.example.com"
        ))
    };
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| bad("is not an http:// or https:// URL"))?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() {
        return Err(bad("has no host").into());
    }
    if url.contains(['?', '#', '@', ' ']) {
        return Err(bad("has a query, a fragment, credentials or a space").into());
    }
    Ok(Some(url.trim_end_matches('/').to_string()))
}

#[cfg(test)]
mod tests {
    use super::public_url;

    #[test]
    fn a_public_url_is_an_address_and_nothing_more() {
        assert_eq!(public_url(None).unwrap(), None);
        assert_eq!(
            public_url(Some("https://cdp.example.com/"))
                .unwrap()
                .as_deref(),
            Some("https://cdp.example.com")
        );
        assert_eq!(
            public_url(Some("http://10.0.0.5:8080/lakecdp"))
                .unwrap()
                .as_deref(),
            Some("http://10.0.0.5:8080/lakecdp")
        );
        for bad in [
            "cdp.example.com",
            "ftp://cdp.example.com",
            "https://",
            "https://cdp.example.com/?a=1",
            "https://user:pw@cdp.example.com",
            "https://cdp.example.com/#x",
        ] {
            let err = public_url(Some(bad)).unwrap_err().to_string();
            assert!(err.contains("--public-url") && err.contains(bad), "{err}");
        }
    }
}
