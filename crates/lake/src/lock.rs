//! Lock objects: mutual exclusion among lakecdp processes, kept in the lake itself.
//!
//! A [`LockObject`] guards short critical sections (milliseconds to seconds) that must
//! not overlap: the version check and replacement of a `model.json` on stores without
//! compare-and-swap ([`crate::publish`]), and every change of a lease after it was
//! created ([`crate::lease`]).
//!
//! # Contract
//!
//! - **Taking.** The lock is an object created with `PutMode::Create`, which every
//!   backend implements atomically: of two takers, one creates it and holds the lock.
//!   The object records who holds it ([`LockInfo`]: a description, a random token, the
//!   host, the pid and the holder's own clock time when it took the lock).
//! - **Releasing.** [`LockGuard::release`] deletes the object after checking that it is
//!   still this holder's (by token). There is no `Drop`: a guard dropped without release
//!   leaves the lock until it is stale.
//! - **Staleness.** A holder that died leaves its lock behind. The lock is *stale* once
//!   the time it records plus the lock's expiry plus [`CLOCK_SKEW_ALLOWANCE`] has passed
//!   on the clock of whoever looks. The allowance covers machines whose clocks disagree:
//!   a holder whose clock runs behind the breaker's by less than the allowance is never
//!   judged stale early. (A lock whose object cannot be read as a [`LockInfo`], e.g. one
//!   written by an older lakecdp, is judged from the store's modification time instead.)
//!   A lock whose holder ran on this host and whose process is gone (see
//!   [`crate::holder`]) is stale at once: a process killed while holding it does not
//!   hold others off until the expiry.
//! - **Breaking a stale lock never lets two breakers hold it.**
//!   - On stores with compare-and-swap (`Capabilities::conditional_update`) the breaker
//!     replaces the stale object with its own, conditional on the version it read
//!     (`PutMode::Update`): of two breakers, the second one's replace fails.
//!   - On stores without it (the local file system) a breaker first *claims* the stale
//!     generation: it creates `<lock>.broken-<stale token>-<n>` with `PutMode::Create`,
//!     so one breaker per stale lock proceeds; the others go back to waiting. The
//!     claimer reads the lock again (still the stale one? Nobody else may remove it, so
//!     it stays that way), renames it to a name of its own (rename is atomic: what
//!     moved is exactly what was there), checks that what it moved is the stale lock
//!     (and puts it back if not), deletes it, and then takes the lock with
//!     `PutMode::Create` like any taker. A claim whose breaker died in the middle is
//!     stale after [`BREAK_EXPIRY`] (plus the allowance) and is superseded by the next
//!     claim number `n + 1`, never deleted blindly.
//!   - A breaker never deletes or replaces a lock it did not judge stale, and it judges
//!     the object it read, not the name.
//! - **What is assumed.** Holders finish well within the expiry (critical sections are
//!   short; the expiries are minutes). A holder that stalls for longer than the expiry
//!   (a process suspended by a debugger, a VM paused) may find its lock broken; its
//!   release then notices the lock is no longer its own and leaves it alone.

use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::holder::{self, host_name};
use crate::layout::Lake;

/// How far apart the clocks of two machines that share a lake may be before a lock is
/// judged stale too early: staleness is judged only once a lock's recorded time plus its
/// expiry plus this allowance has passed. NTP keeps machines within milliseconds; the
/// allowance is for machines without it.
pub const CLOCK_SKEW_ALLOWANCE: Duration = Duration::from_secs(60);

/// How long a breaker may take to break a stale lock before its claim is superseded.
/// Breaking takes a handful of requests.
pub const BREAK_EXPIRY: Duration = Duration::from_secs(30);

/// How many times a claim on one stale lock is superseded before giving up.
const MAX_CLAIMS: u32 = 8;

/// Between two attempts of [`LockObject::acquire`].
const RETRY: Duration = Duration::from_millis(50);

/// Who holds a lock, as recorded in the lock object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockInfo {
    /// What holds it, e.g. `publish of Unification (run 20261201T...)`.
    pub owner: String,
    /// A random token that tells this holder from every other.
    pub token: String,
    /// The host it runs on.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// When it took the lock, on its own clock.
    pub acquired_at: DateTime<Utc>,
    /// When its process started (see [`crate::holder::start_time`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<u64>,
}

impl LockInfo {
    fn new(owner: &str) -> Self {
        Self {
            owner: owner.to_string(),
            token: uuid::Uuid::new_v4().simple().to_string(),
            host: host_name(),
            pid: std::process::id(),
            acquired_at: Utc::now(),
            started: holder::start_time(std::process::id()),
        }
    }

    fn to_bytes(&self, path: &Path) -> Result<Bytes> {
        serde_json::to_vec(self)
            .map(Bytes::from)
            .map_err(|e| Error::data(path, format!("a lock cannot be written: {e}")))
    }
}

impl std::fmt::Display for LockInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} on {} (pid {}) since {}",
            self.owner,
            self.host,
            self.pid,
            self.acquired_at.format("%Y-%m-%d %H:%M:%S UTC")
        )
    }
}

/// A lock object at a path of the lake (see the [module documentation](self)).
#[derive(Debug, Clone)]
pub struct LockObject {
    lake: Lake,
    relative: String,
    expiry: Duration,
}

/// A held lock; give it back with [`LockGuard::release`].
#[derive(Debug)]
#[must_use = "a lock is held until released"]
pub struct LockGuard {
    lake: Lake,
    relative: String,
    info: LockInfo,
}

/// A lock object as read.
#[derive(Debug)]
struct Seen {
    /// The token, or for an unreadable object a name made of its version.
    identity: String,
    /// Who holds it, for messages.
    holder: String,
    /// The version read, for a conditional replace.
    version: UpdateVersion,
    /// When it stops counting, on the reader's clock.
    stale_after: DateTime<Utc>,
    /// Its holder ran on this host and its process is gone.
    gone: bool,
}

impl Seen {
    fn is_stale(&self) -> bool {
        self.gone || Utc::now() > self.stale_after
    }
}

fn chrono_of(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// Only letters, digits and `-`: a token or version made safe for an object name.
fn name_safe(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

impl LockObject {
    /// The lock at `relative` (a path relative to the environment root); a holder that
    /// keeps it longer than `expiry` is presumed dead.
    pub fn new(lake: &Lake, relative: impl Into<String>, expiry: Duration) -> Self {
        Self {
            lake: lake.clone(),
            relative: relative.into(),
            expiry,
        }
    }

    /// The lock's path, relative to the environment root.
    pub fn relative(&self) -> &str {
        &self.relative
    }

    /// Take the lock for `owner`, trying again until `wait` has passed; `None` when
    /// another holder kept it all that time.
    pub async fn acquire(&self, owner: &str, wait: Duration) -> Result<Option<LockGuard>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(guard) = self.try_acquire(owner).await? {
                return Ok(Some(guard));
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(RETRY).await;
        }
    }

    /// Take the lock for `owner` if it is free or stale; `None` when another holder has
    /// it (or is breaking it right now).
    pub async fn try_acquire(&self, owner: &str) -> Result<Option<LockGuard>> {
        let path = self.lake.path(&self.relative);
        let info = LockInfo::new(owner);
        let bytes = info.to_bytes(&path)?;
        for _ in 0..3 {
            if self.create(&self.relative, bytes.clone()).await? {
                return Ok(Some(self.guard(info)));
            }
            let Some(seen) = self.read(&self.relative).await? else {
                continue; // released in the meantime
            };
            if !seen.is_stale() {
                return Ok(None);
            }
            tracing::warn!(lock = %self.relative, holder = %seen.holder, "breaking a stale lock");
            if self.lake.capabilities().conditional_update {
                let opts = PutOptions {
                    mode: PutMode::Update(seen.version.clone()),
                    ..Default::default()
                };
                match self
                    .lake
                    .store()
                    .put_opts(&path, PutPayload::from_bytes(bytes.clone()), opts)
                    .await
                {
                    Ok(_) => return Ok(Some(self.guard(info))),
                    // changed (or gone) since it was read: look again
                    Err(object_store::Error::Precondition { .. })
                    | Err(object_store::Error::AlreadyExists { .. })
                    | Err(object_store::Error::NotFound { .. }) => continue,
                    Err(e) => return Err(Error::store(&path, e)),
                }
            } else if !self.break_by_claim(&seen, &info, &bytes).await? {
                return Ok(None);
            }
        }
        Ok(None)
    }

    fn guard(&self, info: LockInfo) -> LockGuard {
        LockGuard {
            lake: self.lake.clone(),
            relative: self.relative.clone(),
            info,
        }
    }

    /// Break `stale` on a store without compare-and-swap; true when the caller should try
    /// to create the lock again, false when another breaker is at it.
    async fn break_by_claim(&self, stale: &Seen, me: &LockInfo, bytes: &Bytes) -> Result<bool> {
        let id = name_safe(&stale.identity);
        let claim = |n: u32| format!("{}.broken-{id}-{n}", self.relative);
        for n in 0..MAX_CLAIMS {
            if self.create(&claim(n), bytes.clone()).await? {
                let result = self.break_claimed(stale, me).await;
                for m in 0..=n {
                    self.lake.delete(&claim(m)).await?;
                }
                return result.map(|()| true);
            }
            match self.read(&claim(n)).await? {
                // that breaker died in the middle: supersede its claim
                Some(other) if other.is_stale() => continue,
                Some(_) => return Ok(false),
                // finished in the meantime
                None => return Ok(true),
            }
        }
        Ok(false)
    }

    /// Holding the claim on `stale`: move it aside and delete it.
    async fn break_claimed(&self, stale: &Seen, me: &LockInfo) -> Result<()> {
        match self.read(&self.relative).await? {
            Some(now) if now.identity == stale.identity => {}
            // released, or broken and taken before this claim: nothing to break
            _ => return Ok(()),
        }
        let store = self.lake.store();
        let lock = self.lake.path(&self.relative);
        let aside_rel = format!("{}.stale-{}", self.relative, me.token);
        let aside = self.lake.path(&aside_rel);
        match store.rename(&lock, &aside).await {
            Ok(()) => {}
            Err(object_store::Error::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(Error::store(&lock, e)),
        }
        let moved = self.read(&aside_rel).await?;
        if moved.as_ref().map(|m| &m.identity) != Some(&stale.identity) {
            // Only the overdue holder of the stale lock can have changed it since it
            // was read, and another taker created a lock since: give that one back.
            tracing::warn!(lock = %self.relative, "a lock changed while it was broken; restoring it");
            match store.copy_if_not_exists(&aside, &lock).await {
                Ok(()) | Err(object_store::Error::AlreadyExists { .. }) => {}
                Err(e) => return Err(Error::store(&lock, e)),
            }
        }
        self.lake.delete(&aside_rel).await
    }

    /// Create an object with `PutMode::Create`; false when it exists.
    async fn create(&self, relative: &str, bytes: Bytes) -> Result<bool> {
        let path = self.lake.path(relative);
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .lake
            .store()
            .put_opts(&path, PutPayload::from_bytes(bytes), opts)
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => Ok(false),
            Err(e) => Err(Error::store(&path, e)),
        }
    }

    /// Read a lock (or claim) object, if there is one.
    async fn read(&self, relative: &str) -> Result<Option<Seen>> {
        let path = self.lake.path(relative);
        let got = match self.lake.store().get(&path).await {
            Ok(g) => g,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(Error::store(&path, e)),
        };
        let meta = got.meta.clone();
        let bytes = match got.bytes().await {
            Ok(b) => b,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(Error::store(&path, e)),
        };
        let version = UpdateVersion {
            e_tag: meta.e_tag.clone(),
            version: meta.version.clone(),
        };
        let expiry = if relative == self.relative {
            self.expiry
        } else {
            BREAK_EXPIRY
        };
        let allowance = chrono_of(expiry) + chrono_of(CLOCK_SKEW_ALLOWANCE);
        Ok(Some(match serde_json::from_slice::<LockInfo>(&bytes) {
            Ok(info) => Seen {
                identity: info.token.clone(),
                holder: info.to_string(),
                version,
                stale_after: info.acquired_at + allowance,
                gone: holder::is_gone(&info.host, info.pid, info.started),
            },
            Err(_) => Seen {
                identity: format!(
                    "v{}",
                    meta.e_tag
                        .clone()
                        .or(meta.version.clone())
                        .unwrap_or_else(|| meta.last_modified.timestamp_micros().to_string())
                ),
                holder: format!(
                    "an unreadable lock written at {}",
                    meta.last_modified.format("%Y-%m-%d %H:%M:%S UTC")
                ),
                version,
                stale_after: meta.last_modified + allowance,
                gone: false,
            },
        }))
    }
}

impl LockGuard {
    /// Who holds it: this holder.
    pub fn info(&self) -> &LockInfo {
        &self.info
    }

    /// Give the lock back: delete it if it is still this holder's (a holder that kept it
    /// beyond its expiry may have lost it to a breaker, whose lock stays).
    pub async fn release(self) -> Result<()> {
        let path = self.lake.path(&self.relative);
        let got = match self.lake.store().get(&path).await {
            Ok(g) => g,
            Err(object_store::Error::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(Error::store(&path, e)),
        };
        let bytes = got.bytes().await.map_err(|e| Error::store(&path, e))?;
        match serde_json::from_slice::<LockInfo>(&bytes) {
            Ok(info) if info.token == self.info.token => self.lake.delete(&self.relative).await,
            _ => {
                tracing::warn!(lock = %self.relative, "the lock was broken while held; leaving the new holder's");
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lakecdp_core::{EnvironmentId, LocalConfig, StorageConfig};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    fn lake(dir: &std::path::Path) -> Lake {
        std::fs::create_dir_all(dir.join("customerinsights")).unwrap();
        let h = crate::backend::open(
            &StorageConfig::Local(LocalConfig { path: dir.into() }),
            None,
        )
        .unwrap();
        Lake::new(&h, EnvironmentId::new())
    }

    /// A lock left by a holder on another host that took it `ago`.
    async fn plant(lake: &Lake, relative: &str, ago: chrono::Duration) -> LockInfo {
        let mut info = LockInfo::new("a holder elsewhere");
        info.acquired_at = Utc::now() - ago;
        info.host = "another-host".into();
        lake.put(relative, serde_json::to_vec(&info).unwrap())
            .await
            .unwrap();
        info
    }

    #[tokio::test]
    async fn one_holder_at_a_time_and_release_frees_it() {
        let dir = tempfile::tempdir().unwrap();
        let lake = lake(dir.path());
        let lock = LockObject::new(&lake, "_lakecdp/locks/x.lock", Duration::from_secs(60));
        let a = lock.try_acquire("a").await.unwrap().expect("free");
        assert!(lock.try_acquire("b").await.unwrap().is_none());
        let waited = lock.acquire("b", Duration::from_millis(200)).await.unwrap();
        assert!(waited.is_none(), "still held after the wait");
        a.release().await.unwrap();
        let b = lock.try_acquire("b").await.unwrap().expect("released");
        assert_eq!(b.info().owner, "b");
        b.release().await.unwrap();
        assert!(!lake.exists("_lakecdp/locks/x.lock").await.unwrap());
    }

    #[tokio::test]
    async fn staleness_counts_from_the_recorded_time_plus_the_skew_allowance() {
        let dir = tempfile::tempdir().unwrap();
        let lake = lake(dir.path());
        let expiry = Duration::from_secs(60);
        let lock = LockObject::new(&lake, "_lakecdp/locks/x.lock", expiry);
        // expired by its own clock, but within the skew allowance: still held
        plant(
            &lake,
            lock.relative(),
            chrono_of(expiry) + chrono::Duration::seconds(30),
        )
        .await;
        assert!(lock.try_acquire("b").await.unwrap().is_none());
        // a holder whose clock runs ahead of ours is not stale either
        plant(&lake, lock.relative(), chrono::Duration::seconds(-600)).await;
        assert!(lock.try_acquire("b").await.unwrap().is_none());
        // beyond expiry and allowance: broken and taken
        let dead = plant(
            &lake,
            lock.relative(),
            chrono_of(expiry + CLOCK_SKEW_ALLOWANCE) + chrono::Duration::seconds(1),
        )
        .await;
        let b = lock.try_acquire("b").await.unwrap().expect("stale");
        assert_ne!(b.info().token, dead.token);
        b.release().await.unwrap();
        // nothing of the break is left behind
        assert!(lake.list("_lakecdp/locks").await.unwrap().is_empty());
    }

    /// Many takers race to break one stale lock, round after round: never two inside.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn breakers_of_a_stale_lock_never_hold_it_together() {
        let dir = tempfile::tempdir().unwrap();
        let lake = lake(dir.path());
        for round in 0..10 {
            let relative = format!("_lakecdp/locks/r{round}.lock");
            plant(&lake, &relative, chrono::Duration::hours(2)).await;
            let inside = Arc::new(AtomicUsize::new(0));
            let most = Arc::new(AtomicUsize::new(0));
            let start = Arc::new(tokio::sync::Barrier::new(8));
            let mut tasks = Vec::new();
            for i in 0..8 {
                let lock = LockObject::new(&lake, relative.clone(), Duration::from_secs(60));
                let (inside, most, start) = (inside.clone(), most.clone(), start.clone());
                tasks.push(tokio::spawn(async move {
                    start.wait().await;
                    let guard = lock
                        .acquire(&format!("taker {i}"), Duration::from_secs(30))
                        .await
                        .unwrap()
                        .expect("taken within the wait");
                    let n = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(n, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    inside.fetch_sub(1, Ordering::SeqCst);
                    guard.release().await.unwrap();
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            assert_eq!(most.load(Ordering::SeqCst), 1, "round {round}");
        }
        assert!(lake.list("_lakecdp/locks").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_claim_left_by_a_breaker_that_died_is_superseded() {
        let dir = tempfile::tempdir().unwrap();
        let lake = lake(dir.path());
        let lock = LockObject::new(&lake, "_lakecdp/locks/x.lock", Duration::from_secs(60));
        let dead = plant(&lake, lock.relative(), chrono::Duration::hours(2)).await;
        // a breaker claimed it and died before finishing
        let claim = format!("{}.broken-{}-0", lock.relative(), dead.token);
        plant(&lake, &claim, chrono::Duration::hours(1)).await;
        let b = lock.try_acquire("b").await.unwrap().expect("taken");
        b.release().await.unwrap();
        assert!(lake.list("_lakecdp/locks").await.unwrap().is_empty());
        // a fresh claim means a breaker is at work: wait for it
        let dead = plant(&lake, lock.relative(), chrono::Duration::hours(2)).await;
        let claim = format!("{}.broken-{}-0", lock.relative(), dead.token);
        plant(&lake, &claim, chrono::Duration::zero()).await;
        assert!(lock.try_acquire("c").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_release_after_the_lock_was_broken_leaves_the_new_holders_lock() {
        let dir = tempfile::tempdir().unwrap();
        let lake = lake(dir.path());
        let lock = LockObject::new(&lake, "_lakecdp/locks/x.lock", Duration::ZERO);
        let slow = lock.try_acquire("slow").await.unwrap().expect("free");
        // pretend the slow holder's time is long gone
        let mut info = slow.info().clone();
        info.acquired_at = Utc::now() - chrono::Duration::hours(1);
        lake.put(lock.relative(), serde_json::to_vec(&info).unwrap())
            .await
            .unwrap();
        let fresh = lock.try_acquire("fresh").await.unwrap().expect("stale");
        slow.release().await.unwrap();
        assert!(lake.exists(lock.relative()).await.unwrap());
        assert!(lock.try_acquire("third").await.unwrap().is_none());
        fresh.release().await.unwrap();
    }

    #[tokio::test]
    async fn a_lock_whose_process_on_this_host_is_gone_is_taken_at_once() {
        if !std::path::Path::new("/proc/self/stat").exists() {
            return; // not Linux: only the expiry counts
        }
        let dir = tempfile::tempdir().unwrap();
        let lake = lake(dir.path());
        let lock = LockObject::new(&lake, "_lakecdp/locks/x.lock", Duration::from_secs(300));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let mut dead = LockInfo::new("a publisher that was killed");
        dead.pid = child.id();
        dead.started = None;
        child.wait().unwrap();
        lake.put(lock.relative(), serde_json::to_vec(&dead).unwrap())
            .await
            .unwrap();
        let taken = lock
            .try_acquire("b")
            .await
            .unwrap()
            .expect("its holder is gone");
        taken.release().await.unwrap();
        // alive on this host (this process): held until the expiry
        let alive = lock.try_acquire("c").await.unwrap().expect("free");
        assert!(lock.try_acquire("d").await.unwrap().is_none());
        alive.release().await.unwrap();
    }
}
