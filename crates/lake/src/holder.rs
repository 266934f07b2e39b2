//! The process that holds a lock object or a lease: the host it runs on, its pid and
//! its start time, as recorded in the objects, and whether that process is gone.
//!
//! A holder on this host whose process no longer exists cannot be working any more, so
//! what it holds can be taken at once instead of after its expiry. This is decided only
//! when the answer is certain:
//!
//! - the recorded host is this host's name (and a name was found at all), and
//! - this system has `/proc` (Linux), and either `/proc/<pid>` does not exist, the
//!   process is a zombie (killed, not yet reaped by its parent), or it started at
//!   another time than recorded (the pid was reused by a later process).
//!
//! Anything else (another host, no `/proc`, an unreadable entry) counts as alive: the
//! holder's expiry decides. Machines that share a lake must have distinct host names
//! (containers sharing one name and one lake folder from different pid namespaces would
//! see each other's processes as gone).

use std::path::Path;

/// What [`host_name`] answers when the host has no name it can find.
pub const UNKNOWN_HOST: &str = "unknown host";

/// This machine's host name: `$HOSTNAME`, else `/etc/hostname`, else `unknown host`.
pub fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| UNKNOWN_HOST.into())
}

/// What `/proc/<pid>/stat` says about a process.
struct Stat {
    /// One letter: `R`, `S`, `Z` (zombie), `X` (dead), ...
    state: char,
    /// Start time in clock ticks since boot (field 22).
    started: u64,
}

fn stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // the command name (field 2) is in parentheses and may hold spaces or parentheses
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(Stat {
        state: fields.first()?.chars().next()?,
        started: fields.get(19)?.parse().ok()?,
    })
}

/// The start time of process `pid` in clock ticks since boot, where the system tells it
/// (Linux); recorded beside the pid so that a reused pid is not taken for the holder.
pub fn start_time(pid: u32) -> Option<u64> {
    stat(pid).map(|s| s.started)
}

/// Whether the holder recorded as `pid` on `host`, started at `started` (when recorded),
/// is certainly gone (see the [module documentation](self)).
pub fn is_gone(host: &str, pid: u32, started: Option<u64>) -> bool {
    if host == UNKNOWN_HOST || host != host_name() || !Path::new("/proc/self/stat").exists() {
        return false;
    }
    match stat(pid) {
        Some(s) => {
            matches!(s.state, 'Z' | 'X') || started.is_some_and(|recorded| recorded != s.started)
        }
        None => !Path::new(&format!("/proc/{pid}")).exists(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_an_exited_one_is_gone() {
        if !Path::new("/proc/self/stat").exists() {
            return; // not Linux: nothing is ever judged gone
        }
        let me = std::process::id();
        let started = start_time(me).expect("this process's start time");
        assert!(!is_gone(&host_name(), me, Some(started)));
        assert!(!is_gone(&host_name(), me, None));
        // the same pid with another start time is a reused pid
        assert!(is_gone(&host_name(), me, Some(started + 1)));
        // on another host nothing is known
        assert!(!is_gone("another-host", me, Some(started + 1)));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(is_gone(&host_name(), pid, None));
        assert!(!is_gone("another-host", pid, None));
    }
}
