//! The process that holds a lock object or a lease: the host it runs on and its pid, as
//! recorded in the objects so that a refusal can name who holds them.

/// This machine's host name: `$HOSTNAME`, else `/etc/hostname`, else `unknown host`.
pub fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| UNKNOWN_HOST.into())
}

/// What [`host_name`] answers when the host has no name it can find.
pub const UNKNOWN_HOST: &str = "unknown host";
