//! Index caches of a test process go under `target/tmp/index-caches/pid-N`,
//! never into the user's `~/.cache/sendense/index`: `SENDENSE_CACHE_DIR` is
//! set when the process starts (before `main`, so before any thread; the
//! `sendense` children the tests start inherit it), unless it is set
//! already. The directories of test processes that have ended are removed
//! then. Included by `support` and `engine_support`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The variable the engine reads (`sendense::engine::index_cache::ENV_DIR`).
const ENV_DIR: &str = "SENDENSE_CACHE_DIR";

#[used]
#[link_section = ".init_array"]
static SET_TEST_CACHE: extern "C" fn() = set_test_cache;

extern "C" fn set_test_cache() {
    if std::env::var_os(ENV_DIR).is_some() {
        return;
    }
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("index-caches");
    if let Ok(entries) = std::fs::read_dir(&base) {
        for e in entries.flatten() {
            let name = e.file_name();
            let pid = name.to_str().and_then(|n| n.strip_prefix("pid-")).and_then(|p| p.parse::<u32>().ok());
            if pid.is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists()) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    std::env::set_var(ENV_DIR, base.join(format!("pid-{}", std::process::id())));
}

/// This process's cache root (what `SENDENSE_CACHE_DIR` says).
pub fn root() -> PathBuf {
    std::env::var_os(ENV_DIR).map(PathBuf::from).expect("SENDENSE_CACHE_DIR is set at start")
}
