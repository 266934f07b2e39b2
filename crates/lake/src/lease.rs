//! Leases: one holder at a time for work on an environment (a system refresh), kept in
//! the lake itself under `_lakecdp/leases/<name>.json`, so every machine and process
//! that writes the lake sees them.
//!
//! - [`Lease::acquire`] creates the lease object with `PutMode::Create`: of two
//!   acquirers, one wins. A lease that exists and has not expired refuses with
//!   [`LeaseError::Held`], naming its holder, host, process and since when.
//! - A lease expires at `expires_at`; the holder [`renews`](Lease::renew) it while it
//!   works. A holder that died stops renewing, and its lease can be taken over once
//!   expired, or at once when the holder ran on this host and its process is gone (the
//!   lease records host, pid and process start time; see [`crate::holder`]), so a
//!   refresh killed on this machine does not hold the next one off for a time to live.
//!   The new lease records whom it took over from ([`LeaseInfo::took_over`]). A lease
//!   held by a process on another host is only ever taken over once expired. A
//!   take-over runs under the lease's lock object `<name>.lock` ([`crate::lock`]: one
//!   taker at a time): the taker reads the lease again and replaces it only if it is
//!   still the one it judged expired or gone.
//! - [`Lease::release`] deletes it; renewing or releasing a lease that another holder has
//!   taken over in the meantime fails with [`LeaseError::Lost`].
//! - Every change of an existing lease (renewal, release, take-over) runs under the
//!   lease's lock object: it reads the lease again, checks whose it is, writes or deletes
//!   it and gives the lock back. So a holder that lost its lease can never overwrite or
//!   delete the new holder's, also on stores without compare-and-swap (where the write
//!   is a plain overwrite) and for a release (a delete, which no store makes
//!   conditional). Where the store has compare-and-swap, renewals and take-overs are
//!   conditional on the version read as well.
//! - [`Lease::keep_alive`] hands the lease to a task that renews it every third of its
//!   time to live until [`KeepAlive::release`]; [`KeepAlive::lost`] resolves when it was
//!   taken over, so the work it guards can stop. A renewal that fails for another reason
//!   (the store briefly unreachable) is retried at the next tick: the lease only lapses
//!   when a whole time to live passes without one success.

use std::time::Duration;

use chrono::{DateTime, Utc};
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::holder::{self, host_name};
use crate::layout::Lake;
use crate::lock::{LockGuard, LockObject};

/// How long a change of a lease may keep the lease's lock object before it is presumed
/// dead (a change takes a few requests).
const LOCK_EXPIRY: Duration = Duration::from_secs(60);

/// How long a change of a lease waits for the lease's lock object.
const LOCK_WAIT: Duration = Duration::from_secs(2);

/// Who holds a lease, and until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseInfo {
    /// The holder, e.g. `refresh by ann (run 20261201T...)`.
    pub holder: String,
    /// The host it runs on.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// A random token that tells this holder from another with the same name.
    pub token: String,
    /// When it was acquired.
    pub acquired_at: DateTime<Utc>,
    /// When it expires unless renewed.
    pub expires_at: DateTime<Utc>,
    /// When its process started, in clock ticks since boot (Linux), so that a later
    /// process that reuses the pid is not taken for the holder. Leases written by older
    /// versions have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<u64>,
    /// The previous holder this lease was taken over from and why, e.g. `refresh by ann
    /// (run ...) on build-7 (pid 4242), whose process is gone`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub took_over: Option<String>,
}

impl LeaseInfo {
    /// Whether its holder's process is certainly gone: it ran on this host and no longer
    /// exists (see [`crate::holder`]).
    pub fn holder_is_gone(&self) -> bool {
        holder::is_gone(&self.host, self.pid, self.started)
    }
}

/// Why a lease could not be taken or kept.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Someone else holds it.
    #[error(
        "{what} is held by {} on {} (pid {}) since {}; it expires at {} unless renewed. \
         Wait for it to finish, or, if that process died on another machine, wait until then",
        .info.holder, .info.host, .info.pid,
        .info.acquired_at.format("%Y-%m-%d %H:%M:%S UTC"),
        .info.expires_at.format("%H:%M:%S UTC")
    )]
    Held {
        /// What the lease guards, e.g. `the refresh of environment retail`.
        what: String,
        /// The current holder.
        info: LeaseInfo,
    },
    /// It was taken over after it expired.
    #[error("{what}: the lease expired and was taken over by {}", .info.holder)]
    Lost {
        /// What the lease guards.
        what: String,
        /// The new holder.
        info: LeaseInfo,
    },
    /// The lake failed.
    #[error(transparent)]
    Lake(#[from] Error),
}

/// A fencing token: the lease a writer holds, named by its token. A [`Lake`] made
/// [`fenced`](Lake::fenced) with it publishes only while the stored lease still carries
/// this token, so a holder that lost its lease (paused, partitioned, too slow to renew)
/// cannot publish over the output of the holder that took it over.
///
/// The check runs just before a process folder's `model.json` is replaced: under the
/// folder's publish lock on stores without compare-and-swap, so of two holders the one
/// that took the lease over last is the only one that still publishes after it took it;
/// on stores with compare-and-swap, a publish that passed the check just before a
/// take-over lands before anything the new holder commits, whose commit then conflicts
/// and is run again on top of it rather than being overwritten.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    relative: String,
    token: String,
    what: String,
}

impl Fence {
    /// Check that the lease still carries this fence's token.
    pub async fn check(&self, lake: &Lake) -> Result<(), Error> {
        let path = lake.path(&self.relative);
        let got = match lake.store().get(&path).await {
            Ok(g) => g,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(Error::Fenced {
                    what: self.what.clone(),
                    holder: "nobody (the lease was released or broken)".into(),
                })
            }
            Err(e) => return Err(Error::store(&path, e)),
        };
        let bytes = got.bytes().await.map_err(|e| Error::store(&path, e))?;
        let info = serde_json::from_slice::<LeaseInfo>(&bytes).map_err(|e| Error::InvalidCdm {
            path: path.to_string(),
            message: format!("not a lease: {e}"),
        })?;
        if info.token == self.token {
            Ok(())
        } else {
            Err(Error::Fenced {
                what: self.what.clone(),
                holder: format!("{} on {} (pid {})", info.holder, info.host, info.pid),
            })
        }
    }
}

/// A held lease.
#[derive(Debug)]
pub struct Lease {
    lake: Lake,
    relative: String,
    what: String,
    info: LeaseInfo,
    ttl: Duration,
}

fn ttl_of(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl Lease {
    /// Take the lease `name` for `holder`, valid for `ttl` unless renewed.
    ///
    /// A lease held by someone else is taken over when it has expired, or at once when
    /// its holder ran on this host and its process is gone (killed, crashed); the new
    /// lease then names the previous holder in [`LeaseInfo::took_over`], for the caller
    /// to report.
    pub async fn acquire(
        lake: &Lake,
        name: &str,
        what: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Lease, LeaseError> {
        let relative = lake.internal(&format!("leases/{name}.json"));
        let now = Utc::now();
        let info = LeaseInfo {
            holder: holder.to_string(),
            host: host_name(),
            pid: std::process::id(),
            token: uuid::Uuid::new_v4().simple().to_string(),
            acquired_at: now,
            expires_at: now + ttl_of(ttl),
            started: holder::start_time(std::process::id()),
            took_over: None,
        };
        let mut lease = Lease {
            lake: lake.clone(),
            relative,
            what: what.to_string(),
            info,
            ttl,
        };
        if lease.put(PutMode::Create).await? {
            return Ok(lease);
        }
        // someone holds it, or held it and died
        let Some((current, _)) = lease.read().await? else {
            // released in the meantime: one more try
            return match lease.put(PutMode::Create).await? {
                true => Ok(lease),
                false => Err(lease.held().await),
            };
        };
        let why = if current.expires_at <= Utc::now() {
            "whose lease expired"
        } else if current.holder_is_gone() {
            "whose process is gone"
        } else {
            return Err(LeaseError::Held {
                what: lease.what.clone(),
                info: current,
            });
        };
        let previous = format!(
            "{} on {} (pid {}), {why}",
            current.holder, current.host, current.pid
        );
        tracing::warn!(previous = %previous, "taking over a lease");
        lease.info.took_over = Some(previous);
        if lease.take_over(&current).await? {
            Ok(lease)
        } else {
            Err(lease.held().await)
        }
    }

    /// Take over an expired lease, or one whose holder is gone: under the lease's lock
    /// object, read the lease again and replace it only if it is still that one.
    async fn take_over(&self, expired: &LeaseInfo) -> Result<bool, LeaseError> {
        let guard = match self.lock_for("take-over").await {
            Ok(guard) => guard,
            // another taker is at it
            Err(LeaseError::Lake(Error::Locked { .. })) => return Ok(false),
            Err(e) => return Err(e),
        };
        let taken = async {
            match self.read().await? {
                // still the expired lease we saw: ours now
                Some((info, version)) if info.token == expired.token => {
                    self.put(self.replace_mode(version)).await
                }
                Some(_) => Ok(false),
                None => self.put(PutMode::Create).await,
            }
        }
        .await;
        self.unlock(guard).await;
        taken
    }

    /// How to replace the lease read at `version`, holding its lock: conditionally where
    /// the store can, else by overwriting (nobody else changes it while the lock is held).
    fn replace_mode(&self, version: UpdateVersion) -> PutMode {
        if self.lake.capabilities().conditional_update {
            PutMode::Update(version)
        } else {
            PutMode::Overwrite
        }
    }

    /// The lock object that serialises changes of this lease.
    fn lock(&self) -> LockObject {
        let base = self
            .relative
            .strip_suffix(".json")
            .unwrap_or(&self.relative);
        LockObject::new(&self.lake, format!("{base}.lock"), LOCK_EXPIRY)
    }

    async fn unlock(&self, guard: LockGuard) {
        if let Err(e) = guard.release().await {
            // it is stale after its expiry and then broken by the next taker
            tracing::warn!(lease = %self.relative, error = %e, "the lease's lock could not be released");
        }
    }

    /// What the lease says now.
    pub fn info(&self) -> &LeaseInfo {
        &self.info
    }

    /// This lease's fencing token, for [`Lake::fenced`].
    pub fn fence(&self) -> Fence {
        Fence {
            relative: self.relative.clone(),
            token: self.info.token.clone(),
            what: self.what.clone(),
        }
    }

    async fn held(&self) -> LeaseError {
        match self.read().await {
            Ok(Some((info, _))) => LeaseError::Held {
                what: self.what.clone(),
                info,
            },
            Ok(None) => LeaseError::Lake(Error::Conflict {
                path: self.relative.clone(),
            }),
            Err(e) => e,
        }
    }

    /// Write this lease; false when the mode's condition failed.
    async fn put(&self, mode: PutMode) -> Result<bool, LeaseError> {
        let bytes = serde_json::to_vec_pretty(&self.info)
            .map_err(|e| Error::Unsupported(format!("a lease cannot be written: {e}")))?;
        let path = self.lake.path(&self.relative);
        let opts = PutOptions {
            mode,
            ..Default::default()
        };
        match self
            .lake
            .store()
            .put_opts(&path, PutPayload::from(bytes), opts)
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => Ok(false),
            Err(e) => Err(Error::store(&path, e).into()),
        }
    }

    /// The stored lease and its version, if there is one.
    async fn read(&self) -> Result<Option<(LeaseInfo, UpdateVersion)>, LeaseError> {
        let path = self.lake.path(&self.relative);
        let got = match self.lake.store().get(&path).await {
            Ok(g) => g,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(Error::store(&path, e).into()),
        };
        let version = UpdateVersion {
            e_tag: got.meta.e_tag.clone(),
            version: got.meta.version.clone(),
        };
        let bytes = got.bytes().await.map_err(|e| Error::store(&path, e))?;
        let info = serde_json::from_slice::<LeaseInfo>(&bytes).map_err(|e| Error::InvalidCdm {
            path: path.to_string(),
            message: format!("not a lease: {e}"),
        })?;
        Ok(Some((info, version)))
    }

    /// The stored lease is still ours: its version, for a conditional replace.
    async fn check_ours(&self) -> Result<UpdateVersion, LeaseError> {
        match self.read().await? {
            Some((info, version)) if info.token == self.info.token => Ok(version),
            Some((info, _)) => Err(LeaseError::Lost {
                what: self.what.clone(),
                info,
            }),
            None => Err(LeaseError::Lost {
                what: self.what.clone(),
                info: LeaseInfo {
                    holder: "nobody (it was deleted)".into(),
                    ..self.info.clone()
                },
            }),
        }
    }

    /// Extend the lease by its time to live from now.
    pub async fn renew(&mut self) -> Result<(), LeaseError> {
        let guard = self.lock_for("renewal").await?;
        let renewed = async {
            let version = self.check_ours().await?;
            self.info.expires_at = Utc::now() + ttl_of(self.ttl);
            if self.put(self.replace_mode(version)).await? {
                Ok(())
            } else {
                Err(self.held().await)
            }
        }
        .await;
        self.unlock(guard).await;
        renewed
    }

    /// Give the lease up.
    pub async fn release(self) -> Result<(), LeaseError> {
        let guard = self.lock_for("release").await?;
        let released = async {
            self.check_ours().await?;
            self.lake.delete(&self.relative).await?;
            Ok(())
        }
        .await;
        self.unlock(guard).await;
        released
    }

    /// Take the lease's lock object, waiting a little; [`Error::Locked`] when another
    /// change of the lease kept it all that time.
    async fn lock_for(&self, change: &str) -> Result<LockGuard, LeaseError> {
        let lock = self.lock();
        let owner = format!("{change} by {}", self.info.holder);
        match lock.acquire(&owner, LOCK_WAIT).await? {
            Some(guard) => Ok(guard),
            None => Err(Error::Locked {
                path: lock.relative().to_string(),
            }
            .into()),
        }
    }

    /// Renew the lease in the background every third of its time to live, until
    /// [`KeepAlive::release`]. Needs a Tokio runtime.
    pub fn keep_alive(self) -> KeepAlive {
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (lost_tx, lost_rx) = tokio::sync::watch::channel::<Option<String>>(None);
        let every = self.ttl / 3;
        let relative = self.relative.clone();
        let fence = self.fence();
        let mut lease = self;
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut stop_rx => break,
                    _ = tokio::time::sleep(every) => match lease.renew().await {
                        Ok(()) => {}
                        Err(e @ LeaseError::Lost { .. }) | Err(e @ LeaseError::Held { .. }) => {
                            // someone else holds it now: the guarded work must stop
                            let _ = lost_tx.send(Some(e.to_string()));
                        }
                        Err(e) => tracing::warn!(lease = %lease.relative, error = %e, "the lease could not be renewed; retrying"),
                    },
                }
            }
            lease
        });
        KeepAlive {
            relative,
            fence,
            stop: Some(stop_tx),
            task,
            lost: lost_rx,
        }
    }
}

/// A lease renewed in the background ([`Lease::keep_alive`]).
#[derive(Debug)]
pub struct KeepAlive {
    relative: String,
    fence: Fence,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Lease>,
    lost: tokio::sync::watch::Receiver<Option<String>>,
}

impl KeepAlive {
    /// The lease's fencing token, for [`Lake::fenced`].
    pub fn fence(&self) -> Fence {
        self.fence.clone()
    }

    /// Resolves, with the reason, once the lease was taken over by another holder; never
    /// while it is held.
    pub async fn lost(&self) -> String {
        let mut rx = self.lost.clone();
        loop {
            if let Some(why) = rx.borrow_and_update().clone() {
                return why;
            }
            if rx.changed().await.is_err() {
                // the renewing task ended without losing it: it is released
                std::future::pending::<()>().await;
            }
        }
    }

    /// Stop renewing and give the lease up.
    pub async fn release(mut self) -> Result<(), LeaseError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match (&mut self.task).await {
            Ok(lease) => lease.release().await,
            Err(e) => Err(LeaseError::Lake(Error::Data {
                path: self.relative.clone(),
                message: format!("the lease renewal task failed: {e}"),
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lakecdp_core::{EnvironmentId, LocalConfig, StorageConfig};

    fn lake(dir: &std::path::Path) -> Lake {
        std::fs::create_dir_all(dir.join("customerinsights")).unwrap();
        let h = crate::backend::open(
            &StorageConfig::Local(LocalConfig { path: dir.into() }),
            None,
        )
        .unwrap();
        Lake::new(&h, EnvironmentId::new())
    }

    #[tokio::test]
    async fn a_second_holder_is_refused_with_the_first_named() {
        let dir = tempfile::tempdir().unwrap();
        let lake = lake(dir.path());
        let ttl = Duration::from_secs(600);
        let first = Lease::acquire(&lake, "refresh", "the refresh", "refresh by ann", ttl)
            .await
            .unwrap();
        let err = Lease::acquire(&lake, "refresh", "the refresh", "refresh by bob", ttl)
            .await
            .unwrap_err();
        let m = err.to_string();
        assert!(
            m.starts_with("the refresh is held by refresh by ann on "),
            "{m}"
        );
        assert!(m.contains(&format!("(pid {})", std::process::id())), "{m}");
        first.release().await.unwrap();
        Lease::acquire(&lake, "refresh", "the refresh", "refresh by bob", ttl)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn an_expired_lease_is_taken_over_and_its_holder_learns_it() {
        let dir = tempfile::tempdir().unwrap();
        let lake = lake(dir.path());
        let mut dead = Lease::acquire(&lake, "refresh", "the refresh", "a", Duration::ZERO)
            .await
            .unwrap();
        let mut alive = Lease::acquire(
            &lake,
            "refresh",
            "the refresh",
            "b",
            Duration::from_secs(600),
        )
        .await
        .unwrap();
        assert_eq!(alive.info().holder, "b");
        let lost = dead.renew().await.unwrap_err();
        assert!(
            matches!(&lost, LeaseError::Lost { info, .. } if info.holder == "b"),
            "{lost}"
        );
        alive.renew().await.unwrap();
        assert!(dead.release().await.is_err());
        alive.release().await.unwrap();
        assert!(!lake
            .exists(&lake.internal("leases/refresh.json"))
            .await
            .unwrap());
    }

    #[tokio::test]
    async fn a_kept_alive_lease_outlives_its_ttl_and_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let lake = lake(dir.path());
        let ttl = Duration::from_millis(300);
        let kept = Lease::acquire(&lake, "refresh", "the refresh", "a", ttl)
            .await
            .unwrap()
            .keep_alive();
        tokio::time::sleep(ttl * 3).await;
        // renewed meanwhile: still held
        let err = Lease::acquire(&lake, "refresh", "the refresh", "b", ttl)
            .await
            .unwrap_err();
        assert!(matches!(err, LeaseError::Held { .. }), "{err}");
        let never = tokio::time::timeout(Duration::from_millis(50), kept.lost()).await;
        assert!(never.is_err(), "a held lease is not lost");
        kept.release().await.unwrap();
        assert!(!lake
            .exists(&lake.internal("leases/refresh.json"))
            .await
            .unwrap());
    }

    #[tokio::test]
    async fn a_kept_alive_lease_taken_over_reports_it_lost() {
        let dir = tempfile::tempdir().unwrap();
        let lake = lake(dir.path());
        let ttl = Duration::from_millis(300);
        let lease = Lease::acquire(&lake, "refresh", "the refresh", "a", ttl)
            .await
            .unwrap();
        // another holder takes the lease over behind its back
        let path = lake.internal("leases/refresh.json");
        let mut info = lease.info().clone();
        info.holder = "b".into();
        info.token = "another holder".into();
        info.expires_at = Utc::now() + chrono::Duration::minutes(10);
        lake.put(&path, serde_json::to_vec(&info).unwrap())
            .await
            .unwrap();
        let kept = lease.keep_alive();
        let why = tokio::time::timeout(Duration::from_secs(5), kept.lost())
            .await
            .expect("the loss is reported");
        assert!(why.contains("taken over by b"), "{why}");
        assert!(kept.release().await.is_err());
    }

    /// Run `op` on the lease of holder `a` while another process, `b`, takes the lease
    /// over: `b` holds the lease's lock before `op` starts, and 300 ms later writes its
    /// own lease and gives the lock back. What `op` returned, and `b`'s lease.
    async fn during_take_over<F>(
        lake: &Lake,
        op: impl FnOnce(Lease) -> F,
    ) -> (Result<(), LeaseError>, LeaseInfo)
    where
        F: std::future::Future<Output = Result<(), LeaseError>> + Send + 'static,
    {
        let ttl = Duration::from_secs(600);
        let old = Lease::acquire(lake, "refresh", "the refresh", "a", ttl)
            .await
            .unwrap();
        let mut theirs = old.info().clone();
        let lock = crate::lock::LockObject::new(
            lake,
            lake.internal("leases/refresh.lock"),
            Duration::from_secs(60),
        );
        let taker = lock
            .try_acquire("take-over by b")
            .await
            .unwrap()
            .expect("the lease's lock is free before the take-over");
        let running = tokio::spawn(op(old));
        tokio::time::sleep(Duration::from_millis(300)).await;
        theirs.holder = "b".into();
        theirs.token = "b's token".into();
        theirs.expires_at = Utc::now() + chrono::Duration::minutes(10);
        lake.put(
            &lake.internal("leases/refresh.json"),
            serde_json::to_vec(&theirs).unwrap(),
        )
        .await
        .unwrap();
        taker.release().await.unwrap();
        (running.await.unwrap(), theirs)
    }

    async fn stored(lake: &Lake) -> LeaseInfo {
        serde_json::from_slice(
            &lake
                .get(&lake.internal("leases/refresh.json"))
                .await
                .unwrap(),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn a_renewal_during_a_take_over_never_overwrites_the_new_holders_lease() {
        let dir = tempfile::tempdir().unwrap();
        let lake = lake(dir.path());
        let (renewed, theirs) =
            during_take_over(&lake, |mut old| async move { old.renew().await }).await;
        assert!(
            matches!(&renewed, Err(LeaseError::Lost { info, .. }) if info.holder == "b"),
            "{renewed:?}"
        );
        assert_eq!(stored(&lake).await, theirs);
    }

    #[tokio::test]
    async fn a_release_during_a_take_over_never_deletes_the_new_holders_lease() {
        let dir = tempfile::tempdir().unwrap();
        let lake = lake(dir.path());
        let (released, theirs) = during_take_over(&lake, |old| old.release()).await;
        assert!(
            matches!(&released, Err(LeaseError::Lost { info, .. }) if info.holder == "b"),
            "{released:?}"
        );
        assert_eq!(stored(&lake).await, theirs);
    }

    /// A lease written by an older lakecdp (no `started`) on `host` by `pid`, expiring in
    /// an hour.
    async fn plant(lake: &Lake, host: &str, pid: u32, started: Option<u64>) {
        let mut lease = serde_json::json!({
            "holder": "refresh by ann (run X)", "host": host, "pid": pid, "token": "t",
            "acquiredAt": Utc::now().to_rfc3339(),
            "expiresAt": (Utc::now() + chrono::Duration::hours(1)).to_rfc3339(),
        });
        if let Some(started) = started {
            lease["started"] = started.into();
        }
        lake.put(
            &lake.internal("leases/refresh.json"),
            serde_json::to_vec(&lease).unwrap(),
        )
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn a_lease_whose_process_on_this_host_is_gone_is_taken_over_at_once() {
        if !std::path::Path::new("/proc/self/stat").exists() {
            return; // not Linux: only the expiry counts
        }
        let dir = tempfile::tempdir().unwrap();
        let lake = lake(dir.path());
        let ttl = Duration::from_secs(600);
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        plant(&lake, &host_name(), dead, None).await;
        let lease = Lease::acquire(&lake, "refresh", "the refresh", "bob", ttl)
            .await
            .unwrap();
        let previous = lease
            .info()
            .took_over
            .clone()
            .expect("the take-over is recorded");
        assert_eq!(
            previous,
            format!(
                "refresh by ann (run X) on {} (pid {dead}), whose process is gone",
                host_name()
            )
        );
        assert_eq!(stored(&lake).await.took_over, Some(previous));
        assert_eq!(lease.info().started, holder::start_time(std::process::id()));
        lease.release().await.unwrap();

        // the pid lives on in a later process (this one): a reused pid, taken over
        let me = std::process::id();
        let started = holder::start_time(me).unwrap();
        plant(&lake, &host_name(), me, Some(started + 1)).await;
        let lease = Lease::acquire(&lake, "refresh", "the refresh", "bob", ttl)
            .await
            .unwrap();
        assert!(lease.info().took_over.is_some());
        lease.release().await.unwrap();

        // the holder is alive: held
        plant(&lake, &host_name(), me, Some(started)).await;
        let err = Lease::acquire(&lake, "refresh", "the refresh", "bob", ttl)
            .await
            .unwrap_err();
        assert!(matches!(err, LeaseError::Held { .. }), "{err}");

        // on another host nothing is known of its processes: held until it expires
        plant(&lake, "build-7", dead, None).await;
        let err = Lease::acquire(&lake, "refresh", "the refresh", "bob", ttl)
            .await
            .unwrap_err();
        assert!(matches!(err, LeaseError::Held { .. }), "{err}");
    }
}
