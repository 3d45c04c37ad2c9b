//! What the tests share: a fresh store in its own temporary directory.

use std::sync::Arc;

use bridge_core::record::{self, Store};
use bridge_core::Services;
use bridge_sim::seed::{DEMO_ASANA_TOKEN, DEMO_DOCSPACE_KEY};
use bridge_sim::{
    AsanaSim, AsanaSimOptions, AsanaWorld, DocSpaceSim, DocSpaceSimOptions, DocSpaceWorld,
};

/// A migrated SQLite store in a new temporary directory; keep the directory alive as long
/// as the store.
pub async fn store() -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let s = record::open(dir.path().join("state.db").to_str().unwrap())
        .await
        .unwrap();
    (dir, s)
}

/// Both simulators over these worlds, and services over them (an unthrottled Asana budget)
/// with a migrated store in a new temporary directory.
pub async fn sims(
    asana: AsanaWorld,
    docspace: DocSpaceWorld,
) -> (AsanaSim, DocSpaceSim, Services, tempfile::TempDir) {
    let asana = AsanaSim::start(asana, AsanaSimOptions::default())
        .await
        .unwrap();
    let docspace = DocSpaceSim::start(docspace, DocSpaceSimOptions::default())
        .await
        .unwrap();
    let (dir, store) = store().await;
    let mut ac =
        asana_api::Config::new(&asana.base_url(), DEMO_ASANA_TOKEN.to_string().into()).unwrap();
    ac.requests_per_minute = 100_000;
    let dc = docspace_api::Config::new(&docspace.base_url(), DEMO_DOCSPACE_KEY.to_string().into())
        .unwrap();
    let svc = Services::new(
        asana_api::Client::new(ac).unwrap(),
        docspace_api::Client::new(dc).unwrap(),
        store,
    );
    (asana, docspace, svc, dir)
}
