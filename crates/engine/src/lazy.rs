//! The store of a lake a cluster process does not serve yet: [`LazyLake`] opens it on
//! its first use, asynchronously (a plan's store lookup is synchronous and must not
//! wait), through the application's [`Resolver`]; every task of the process that meets
//! the environment shares the one opening.

use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use lakecdp_core::EnvironmentId;
use lakecdp_lake::Lake;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};

/// Opens the lake of an environment a plan names, when this process may serve it:
/// `Ok(None)` when it may not (or the catalog does not hold it), `Err` when opening
/// failed. Messages name no credential.
pub type Resolver = Arc<
    dyn Fn(EnvironmentId) -> BoxFuture<'static, std::result::Result<Option<Lake>, String>>
        + Send
        + Sync,
>;

/// Called with the lake once it is open, to serve it directly from then on.
pub(crate) type Opened = Arc<dyn Fn(&Lake) + Send + Sync>;

/// The store of environment `env`, opened on first use.
pub struct LazyLake {
    inner: Arc<Inner>,
}

struct Inner {
    env: EnvironmentId,
    resolve: Resolver,
    opened: Opened,
    cell: tokio::sync::OnceCell<std::result::Result<Arc<dyn ObjectStore>, String>>,
    created: Instant,
}

impl LazyLake {
    pub(crate) fn new(env: EnvironmentId, resolve: Resolver, opened: Opened) -> Self {
        Self {
            inner: Arc::new(Inner {
                env,
                resolve,
                opened,
                cell: tokio::sync::OnceCell::new(),
                created: Instant::now(),
            }),
        }
    }

    /// When it was made (a refusal is kept for a while, then asked again).
    pub(crate) fn created(&self) -> Instant {
        self.inner.created
    }

    /// The same store, shared.
    pub(crate) fn share(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl Inner {
    async fn store(&self) -> Result<Arc<dyn ObjectStore>> {
        let opened = self
            .cell
            .get_or_init(|| async {
                match (self.resolve)(self.env).await {
                    Ok(Some(lake)) => {
                        (self.opened)(&lake);
                        tracing::info!(environment = %self.env, "lake served");
                        Ok(crate::cluster::confined(&lake))
                    }
                    Ok(None) => Err(format!(
                        "environment {} is not served by this process: its catalog does not hold it, its principal may not run its refreshes, or `--environment` leaves it out",
                        self.env
                    )),
                    Err(e) => Err(format!(
                        "the lake of environment {} cannot be opened here: {e}",
                        self.env
                    )),
                }
            })
            .await;
        opened
            .clone()
            .map_err(|message| object_store::Error::Generic {
                store: "lakecdp",
                source: message.into(),
            })
    }
}

impl std::fmt::Debug for LazyLake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LazyLake({})", self.inner.env)
    }
}

impl std::fmt::Display for LazyLake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LazyLake({})", self.inner.env)
    }
}

#[async_trait::async_trait]
impl ObjectStore for LazyLake {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.inner
            .store()
            .await?
            .put_opts(location, payload, opts)
            .await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner
            .store()
            .await?
            .put_multipart_opts(location, opts)
            .await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.store().await?.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.inner.store().await?.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let inner = Arc::clone(&self.inner);
        futures::stream::once(async move {
            inner
                .store()
                .await
                .map(|store| store.delete_stream(locations))
        })
        .try_flatten()
        .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let inner = Arc::clone(&self.inner);
        let prefix = prefix.cloned();
        futures::stream::once(async move { inner.store().await })
            .map_ok(move |store| store.list(prefix.as_ref()))
            .try_flatten()
            .boxed()
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        let inner = Arc::clone(&self.inner);
        let (prefix, offset) = (prefix.cloned(), offset.clone());
        futures::stream::once(async move { inner.store().await })
            .map_ok(move |store| store.list_with_offset(prefix.as_ref(), &offset))
            .try_flatten()
            .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.store().await?.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.store().await?.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.inner
            .store()
            .await?
            .rename_opts(from, to, options)
            .await
    }
}
