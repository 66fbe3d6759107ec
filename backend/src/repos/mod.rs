//! Repository backends: where the engine's objects live. The engine only
//! knows the synchronous [`Repository`] trait (`engine::repository`); this
//! module turns a [`RepoSpec`] into one: a local directory, or an object store
//! (S3-compatible, Azure Blob, [`object`] over [`http`]).

pub mod http;
pub mod object;
pub mod s3_lock;
pub mod s3_raw;
pub mod spec;

use std::sync::Arc;

use crate::engine::local_repository::LocalRepository;
use crate::engine::repository::Repository;

pub use spec::RepoSpec;

/// The storage backend of `spec`. Opening does no I/O: a wrong credential or
/// a missing bucket shows on the first request, with the repository named.
pub fn open_backend(spec: &RepoSpec) -> anyhow::Result<Arc<dyn Repository>> {
    match spec {
        RepoSpec::Local { path } => Ok(Arc::new(LocalRepository::new(path))),
        RepoSpec::S3 { .. } | RepoSpec::Azure { .. } => Ok(Arc::new(object::ObjectRepository::open(spec)?)),
    }
}
