//! What the tests share: a fresh store in its own temporary directory.

use std::sync::Arc;

use bridge_core::record::{self, Store};

/// A migrated SQLite store in a new temporary directory; keep the directory alive as long
/// as the store.
pub async fn store() -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let s = record::open(dir.path().join("state.db").to_str().unwrap())
        .await
        .unwrap();
    (dir, s)
}
