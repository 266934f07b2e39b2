//! An environment's store seen from its folder: [`Confined`] is object_store's
//! `PrefixStore` at the environment's root, with the metadata of every read given
//! relative to it too (object_store 0.13 returns the inner store's location from
//! `get_opts`, and so from `head`, which DataFusion's file listing compares with the
//! paths it asked for).

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};

/// `inner` seen from `root`: no path of a plan reaches outside it.
#[derive(Debug)]
pub struct Confined {
    inner: PrefixStore<Arc<dyn ObjectStore>>,
    root: Path,
}

impl Confined {
    /// `store` seen from `root`.
    pub fn new(store: Arc<dyn ObjectStore>, root: Path) -> Self {
        Self {
            inner: PrefixStore::new(store, root.clone()),
            root,
        }
    }

    fn relative(&self, location: Path) -> Path {
        let stripped: Option<Path> = location.prefix_match(&self.root).map(|p| p.collect());
        stripped.unwrap_or(location)
    }
}

impl std::fmt::Display for Confined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // the inner store's Display may name its account: the folder is enough
        write!(f, "Confined({})", self.root)
    }
}

#[async_trait::async_trait]
impl ObjectStore for Confined {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let mut result = self.inner.get_opts(location, options).await?;
        result.meta.location = self.relative(result.meta.location);
        Ok(result)
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;
    use object_store::ObjectStoreExt;

    #[tokio::test]
    async fn paths_are_relative_to_the_root_and_nothing_outside_is_reached() {
        let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        inner
            .put(&Path::from("c/ci_a/Unification/x.csv"), "mine".into())
            .await
            .unwrap();
        inner
            .put(&Path::from("c/ci_b/Unification/x.csv"), "theirs".into())
            .await
            .unwrap();
        let confined = Confined::new(inner, Path::from("c/ci_a"));
        let head = confined
            .head(&Path::from("Unification/x.csv"))
            .await
            .unwrap();
        assert_eq!(head.location, Path::from("Unification/x.csv"));
        let got = confined
            .get(&Path::from("Unification/x.csv"))
            .await
            .unwrap();
        assert_eq!(got.meta.location, Path::from("Unification/x.csv"));
        assert_eq!(got.bytes().await.unwrap(), Bytes::from("mine"));
        // `..` is a name, not a step: the other environment's file is not found
        let escape: Path = ["..", "ci_b", "Unification", "x.csv"].into_iter().collect();
        assert!(confined.get(&escape).await.is_err());
        let listed: Vec<ObjectMeta> = futures::TryStreamExt::try_collect(confined.list(None))
            .await
            .unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].location, Path::from("Unification/x.csv"));
    }
}
