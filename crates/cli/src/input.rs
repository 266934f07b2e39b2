//! Values the command line reads: secrets (from `env:VAR`, `file:PATH` or stdin, never
//! from an argument) and `KEY=VALUE` pairs.

use lakecdp_app::App;
use lakecdp_core::Secret;

use crate::UserError;

/// Read a secret from `env:VAR`, `file:PATH` or `stdin` (one line).
pub fn read_secret(app: &App, source: &str) -> anyhow::Result<Secret> {
    let source = source.trim();
    if source == "stdin" || source == "-" {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| anyhow::anyhow!("cannot read the secret from stdin: {e}"))?;
        let v = line.trim();
        if v.is_empty() {
            return Err(UserError("the secret read from stdin is empty".into()).into());
        }
        return Ok(Secret::new(v));
    }
    Ok(app.resolve_secret(source)?)
}

/// Split `KEY=VALUE`.
pub fn key_value(text: &str, what: &str) -> anyhow::Result<(String, String)> {
    match text.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => Err(UserError(format!("{what} `{text}` must be written KEY=VALUE")).into()),
    }
}
