//! How a PostgreSQL connection is secured: the `sslmode` setting and the rule that a
//! password never crosses a network in clear.
//!
//! Both PostgreSQL clients of lakecdp (the catalog and the export target) parse the same
//! setting into [`SslMode`] and apply [`check_plain_password`] before connecting, so a
//! man in the middle cannot ask for the password of a connection nobody declared plain.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// The `sslmode` of a PostgreSQL connection (libpq's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SslMode {
    /// Plain TCP, never TLS.
    Disable,
    /// TLS when the server offers it, plain TCP otherwise; the certificate is not
    /// checked. A man in the middle can downgrade it, so it does not count as TLS.
    Prefer,
    /// TLS always; the certificate is not checked (protects against listeners, not
    /// against a man in the middle).
    Require,
    /// TLS always; the certificate must chain to the CA file (`sslrootcert`) and name
    /// the host.
    VerifyFull,
}

impl SslMode {
    /// The accepted spellings, for messages.
    pub const ACCEPTED: &'static str = "`disable`, `prefer`, `require` or `verify-full`";

    /// The mode as libpq spells it.
    pub fn as_str(&self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// True when every byte, the password included, goes over TLS.
    pub fn is_encrypted(&self) -> bool {
        matches!(self, SslMode::Require | SslMode::VerifyFull)
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SslMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "disable" => Ok(SslMode::Disable),
            "prefer" => Ok(SslMode::Prefer),
            "require" => Ok(SslMode::Require),
            "verify-full" => Ok(SslMode::VerifyFull),
            "allow" | "verify-ca" => Err(format!(
                "`{s}` is not supported; use {} (`verify-full` checks the CA and the host name)",
                SslMode::ACCEPTED
            )),
            _ => Err(format!("unknown sslmode `{s}`; use {}", SslMode::ACCEPTED)),
        }
    }
}

/// True for a host whose traffic never leaves the machine: `localhost`, a loopback
/// address (127.0.0.0/8, ::1) or a Unix socket folder (a path).
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim();
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if bare.starts_with('/') || bare.eq_ignore_ascii_case("localhost") {
        return true;
    }
    bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Refuse a password that would go over plain TCP to another machine: allowed only when
/// the mode encrypts, the host is the machine itself, or the mode was set to `disable`
/// explicitly (`declared` is the mode as written, `None` when not set).
///
/// The error names the `sslmode` setting and the fix; `what` names the connection.
pub fn check_plain_password(
    what: &str,
    host: &str,
    declared: Option<SslMode>,
    has_password: bool,
) -> Result<(), String> {
    let mode = declared.unwrap_or(SslMode::Disable);
    if !has_password
        || mode.is_encrypted()
        || declared == Some(SslMode::Disable)
        || is_loopback_host(host)
    {
        return Ok(());
    }
    let given = match declared {
        Some(m) => format!("`sslmode` is `{m}`, which may fall back to plain TCP"),
        None => "`sslmode` is not set".to_string(),
    };
    Err(format!(
        "{what} would send its password to `{host}` over plain TCP ({given}): set `sslmode` \
         to `verify-full` with `sslrootcert` (the CA file), or to `require`; on a network you \
         trust, set `sslmode` to `disable` explicitly"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse() {
        for m in [
            SslMode::Disable,
            SslMode::Prefer,
            SslMode::Require,
            SslMode::VerifyFull,
        ] {
            assert_eq!(m.as_str().parse::<SslMode>().unwrap(), m);
        }
        assert_eq!("Verify-Full".parse::<SslMode>(), Ok(SslMode::VerifyFull));
        assert!("verify-ca"
            .parse::<SslMode>()
            .unwrap_err()
            .contains("verify-full"));
        assert!("tls"
            .parse::<SslMode>()
            .unwrap_err()
            .contains("unknown sslmode"));
    }

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost",
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "[::1]",
            "/run/postgresql",
        ] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in ["db.example", "10.0.0.5", "::2", "localhost.example"] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }

    #[test]
    fn a_password_goes_over_plain_tcp_only_when_declared() {
        let check = |host, mode, pw| check_plain_password("connection `crm`", host, mode, pw);
        let err = check("db.example", None, true).unwrap_err();
        assert!(
            err.contains("`sslmode`") && err.contains("verify-full"),
            "{err}"
        );
        assert!(
            err.contains("connection `crm`") && err.contains("db.example"),
            "{err}"
        );
        assert!(check("db.example", Some(SslMode::Prefer), true).is_err());
        assert!(check("db.example", Some(SslMode::Disable), true).is_ok());
        assert!(check("db.example", Some(SslMode::Require), true).is_ok());
        assert!(check("db.example", Some(SslMode::VerifyFull), true).is_ok());
        assert!(check("db.example", None, false).is_ok());
        assert!(check("127.0.0.1", None, true).is_ok());
    }
}
