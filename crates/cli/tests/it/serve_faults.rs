//! The real binary under faults: SIGTERM while a client holds a partial request, and a
//! config path that names something endless.

use std::time::{Duration, Instant};

use bridge_sim::{AsanaSimOptions, AsanaWorld, DocSpaceSimOptions};
use tokio::io::AsyncWriteExt;

use crate::harness::{free_port, Sims};

#[tokio::test]
async fn a_config_path_to_an_endless_file_fails_fast_with_exit_2() {
    let sims = Sims::demo().await;
    let out = sims
        .cmd()
        .args(["--config", "/dev/zero", "serve"])
        .run()
        .await;
    out.expect_code(2).stderr_has(&["/dev/zero", "larger than"]);
    assert!(
        out.elapsed < Duration::from_secs(10),
        "took {:?}",
        out.elapsed
    );
    let out = sims
        .cmd()
        .args(["--config", "/dev/zero", "config", "check"])
        .run()
        .await;
    out.expect_code(2).stderr_has(&["larger than"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_serve_within_the_grace_period_while_a_client_holds_a_partial_request() {
    let mut w = AsanaWorld::new();
    let ws = w.add_workspace("Acme");
    let project = w.add_project(&ws, "Launch");
    let sims = Sims::start(
        w,
        Default::default(),
        (),
        AsanaSimOptions::default(),
        DocSpaceSimOptions::default(),
    )
    .await;
    const GRACE: u64 = 2;
    sims.write_config(&format!(
        "[serve]\nshutdown_grace_secs = {GRACE}\nheader_read_timeout_secs = 600\n\n\
         [[rules]]\nproject = \"{project}\"\n"
    ));
    let port = free_port();
    let mut server = sims
        .configured(&["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("ASANA_DOCSPACE_LOG", "warn")
        .spawn_healthy(port, Duration::from_secs(20))
        .await;
    // A client that started a request and stopped half-way through its header.
    let mut stuck = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stuck
        .write_all(b"POST /webhooks/asana/abc HTTP/1.1\r\nHost: bridge\r\nContent-Le")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let pid = server.id().unwrap().to_string();
    let started = Instant::now();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = tokio::time::timeout(Duration::from_secs(GRACE + 8), server.wait())
        .await
        .expect("serve kept running after SIGTERM")
        .unwrap();
    let took = started.elapsed();
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(
        took < Duration::from_secs(GRACE + 5),
        "took {took:?} with a {GRACE} s grace"
    );
    drop(stuck);
}
