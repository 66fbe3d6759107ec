//! `Fetch<T>`: a `LocalResource` whose machinery is compiled once. Leptos's
//! `LocalResource<T>` is generic over its value and its fetcher, so each of
//! the cockpit's ~60 resources instantiated its own copy of the async
//! derived signal (~6 KiB of wasm each, docs/design/wasm-size.md). Here every
//! resource is one `LocalResource<Erased>` built by one non-generic
//! function; what stays per call site is the boxing of its future and the
//! downcast and clone of its value on read. Measured on the erased build:
//! 3,219,415 -> 2,964,902 bytes raw, 814,254 -> 778,459 brotli.

use std::any::Any;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::rc::Rc;

use leptos::prelude::*;

/// A fetched value of any type.
#[derive(Clone)]
pub struct Erased(Rc<dyn Any>);

type Fetcher = Box<dyn Fn() -> Pin<Box<dyn Future<Output = Erased>>>>;

/// The one instantiation of `LocalResource` for all the cockpit's fetches.
fn erased(fetcher: Fetcher) -> LocalResource<Erased> {
    LocalResource::new(fetcher)
}

pub struct Fetch<T> {
    resource: LocalResource<Erased>,
    value: PhantomData<fn() -> T>,
}

impl<T> Clone for Fetch<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Fetch<T> {}

impl<T: Clone + 'static> Fetch<T> {
    /// Runs `fetcher` now and again whenever a signal it read changes, as
    /// `LocalResource::new`.
    pub fn new<Fut>(fetcher: impl Fn() -> Fut + 'static) -> Self
    where
        Fut: Future<Output = T> + 'static,
    {
        let boxed: Fetcher = Box::new(move || {
            let fut = fetcher();
            Box::pin(async move { Erased(Rc::new(fut.await)) })
        });
        Fetch { resource: erased(boxed), value: PhantomData }
    }

    /// The newest value, `None` while the first read loads (tracked).
    pub fn get(&self) -> Option<T> {
        self.resource.get().and_then(|v| v.0.downcast_ref::<T>().cloned())
    }

    /// Like `get`, without subscribing the caller.
    pub fn get_untracked(&self) -> Option<T> {
        self.resource.get_untracked().and_then(|v| v.0.downcast_ref::<T>().cloned())
    }
}
