//! A small pool of PostgreSQL connections.
//!
//! At most [`MAX_CONNECTIONS`] connections are open at once; a caller waits for a free
//! one. A connection goes back to the pool when its [`Pooled`] guard is dropped, unless
//! the server closed it, and one found closed is replaced by a new one. Each
//! connection's I/O runs as a task on the tokio runtime of the caller that opened it.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Mutex;
use std::time::Duration;

use lakecdp_pgtls::PgTls;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_postgres::{Client, Config};

use super::codec::Redactor;
use crate::error::{Error, Result};

/// The most connections one catalog keeps open.
pub(crate) const MAX_CONNECTIONS: usize = 8;

/// How long opening a connection may take when the URL does not say
/// (`connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections to one database, opened on demand.
pub(crate) struct Pool {
    config: Config,
    tls: PgTls,
    redactor: Redactor,
    idle: Mutex<Vec<Client>>,
    permits: Semaphore,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `Config`'s own Debug redacts the password too; ours names what matters only.
        f.debug_struct("Pool")
            .field("target", &self.redactor.target())
            .field("sslmode", &self.tls.mode())
            .field("max_connections", &MAX_CONNECTIONS)
            .finish()
    }
}

impl Pool {
    /// A pool for `config`; opens nothing yet.
    pub(crate) fn new(mut config: Config, tls: PgTls, redactor: Redactor) -> Self {
        tls.apply(&mut config);
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("lakecdp");
        }
        Self {
            config,
            tls,
            redactor,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(MAX_CONNECTIONS),
        }
    }

    /// Turns a driver error into a catalog error without the password in it.
    pub(crate) fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// A connection of its own for the caller, until the guard is dropped.
    pub(crate) async fn get(&self) -> Result<Pooled<'_>> {
        let permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| Error::Storage("the catalog connection pool was closed".into()))?;
        let reused = {
            let mut idle = self.idle.lock().map_err(|_| poisoned())?;
            let mut found = None;
            while let Some(client) = idle.pop() {
                if !client.is_closed() {
                    found = Some(client);
                    break;
                }
            }
            found
        };
        let client = match reused {
            Some(client) => client,
            None => self.open().await?,
        };
        Ok(Pooled {
            client: Some(client),
            pool: self,
            _permit: permit,
        })
    }

    async fn open(&self) -> Result<Client> {
        let (client, connection) = self
            .config
            .connect(self.tls.connector())
            .await
            .map_err(|e| self.redactor.connect_error(&e))?;
        let target = self.redactor.target();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                // The driver's connection errors name no secret (see `Redactor`).
                tracing::warn!(%target, error = %e, "catalog database connection ended");
            }
        });
        Ok(client)
    }

    fn put_back(&self, client: Client) {
        if client.is_closed() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(client);
        }
    }
}

fn poisoned() -> Error {
    Error::Storage("the catalog connection pool was abandoned by a failed task".into())
}

/// A connection borrowed from a [`Pool`]; it goes back when dropped.
pub(crate) struct Pooled<'a> {
    client: Option<Client>,
    pool: &'a Pool,
    _permit: SemaphorePermit<'a>,
}

impl Deref for Pooled<'_> {
    type Target = Client;

    fn deref(&self) -> &Client {
        // Only `drop` takes the client out.
        self.client.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        self.client.as_mut().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            self.pool.put_back(client);
        }
    }
}
