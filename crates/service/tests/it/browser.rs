//! The status page in a real headless Chromium (Debian's `chromium` and
//! `chromium-driver`), driven over WebDriver: sign in, see the store's job counts, open a
//! person page, press Replay on a dead letter and see the job queued, see a write without
//! the CSRF token refused, and read the page at phone width. Screenshots go to
//! `<target>/admin-screenshots/`.
//!
//! This test never skips: without chromium it fails and says what to install (CI's
//! `.ci/run` installs both packages). `ASANA_DOCSPACE_CHROMIUM` and
//! `ASANA_DOCSPACE_CHROMEDRIVER` override where they are looked for.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use futures::FutureExt;
use serde_json::json;

use crate::support::{eventually, TestApp, ADMIN_PASSWORD};

const INSTALL: &str = "the status page's browser tests need Debian's chromium and chromium-driver: \
     run `apt-get update && apt-get install -y chromium chromium-driver` (CI's .ci/run installs them)";

/// `name` from `$override_var`, else the first of `candidates` on PATH or as an absolute path.
fn find_program(override_var: &str, candidates: &[&str]) -> PathBuf {
    if let Some(p) = std::env::var_os(override_var).filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for c in candidates {
        if Path::new(c).is_absolute() && Path::new(c).is_file() {
            return PathBuf::from(c);
        }
        for dir in std::env::split_paths(&path) {
            let p = dir.join(c);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!("{} not found: {INSTALL}", candidates[0]);
}

/// Where screenshots go: `target/admin-screenshots` (or under `CARGO_TARGET_DIR`).
fn screenshot_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = tmp.parent().unwrap_or(tmp).join("admin-screenshots");
    std::fs::create_dir_all(&dir).expect("create the screenshot folder");
    dir
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("take a screenshot");
    std::fs::write(screenshot_dir().join(format!("{name}.png")), png).expect("save a screenshot");
}

/// chromedriver on a free loopback port, ended when dropped.
struct Driver {
    _child: tokio::process::Child,
    url: String,
}

async fn start_driver() -> Driver {
    let program = find_program(
        "ASANA_DOCSPACE_CHROMEDRIVER",
        &["chromedriver", "/usr/lib/chromium/chromedriver"],
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = tokio::process::Command::new(&program)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}: {INSTALL}", program.display()));
    eventually(
        "chromedriver to listen",
        Duration::from_secs(30),
        || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        },
    )
    .await;
    Driver {
        _child: child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

async fn start_browser(driver: &Driver, profile: &Path) -> Client {
    let chromium = find_program(
        "ASANA_DOCSPACE_CHROMIUM",
        &["chromium", "chromium-browser", "/usr/lib/chromium/chromium"],
    );
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-dev-shm-usage", "--window-size=1280,900",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .unwrap_or_else(|e| panic!("chromedriver could not start chromium: {e}: {INSTALL}"))
}

async fn text_of(c: &Client, css: &str) -> String {
    // A click that submits a form navigates; chromedriver may answer a lookup made meanwhile
    // with "aborted by navigation" (or a stale element), which says nothing about the
    // element: ask again until the deadline, as for an element not there yet.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let error = match c.find(Locator::Css(css)).await {
            Ok(e) => match e.text().await {
                Ok(text) => return text,
                Err(e) => e,
            },
            Err(e) => e,
        };
        if std::time::Instant::now() >= deadline {
            panic!(
                "no {css} on {:?}: {error}\n{}",
                c.current_url().await,
                c.source().await.unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn click(c: &Client, what: Locator<'_>) {
    match c.find(what).await {
        Ok(e) => e.click().await.unwrap(),
        Err(e) => panic!("nothing to click on {:?}: {e}", c.current_url().await),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_see_the_counts_open_a_person_and_replay_a_dead_letter_in_chromium() {
    let app = TestApp::start_admin().await;
    app.create_webhook().await;
    let (task, _, email) = app.assign(0).await;
    let dead = app.dead_letters(2).await;

    let driver = start_driver().await;
    let profile = tempfile::tempdir().unwrap();
    let browser = start_browser(&driver, profile.path()).await;
    // Whatever happens in the steps, close the session so chromium exits.
    let steps = AssertUnwindSafe(steps(&app, &browser, &task, &email, &dead))
        .catch_unwind()
        .await;
    let _ = browser.close().await;
    if let Err(panic) = steps {
        std::panic::resume_unwind(panic);
    }
}

async fn steps(app: &TestApp, c: &Client, task: &str, email: &str, dead: &[i64]) {
    let host = app.base.trim_start_matches("http://").to_string();

    // No credential: the page is refused with 401 and a Basic challenge (asked from a
    // page of the same origin; a navigation would stop at chromium's sign-in prompt).
    c.goto(&app.url("/healthz")).await.unwrap();
    let refused = c
        .execute_async(
            "const done = arguments[arguments.length - 1];
             fetch('/admin', {credentials: 'omit'})
               .then(async r => done([r.status, r.headers.get('www-authenticate'), await r.text()]))
               .catch(e => done(['error', String(e)]));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(refused[0], json!(401), "{refused}");
    assert!(
        refused[1]
            .as_str()
            .unwrap_or_default()
            .starts_with("Basic realm="),
        "{refused}"
    );
    assert!(!refused[2]
        .as_str()
        .unwrap_or_default()
        .contains("dead letters"));
    shot(c, "01-no-credential-401").await;

    // Sign in as admin: the counts are the store's.
    c.goto(&format!("http://admin:{ADMIN_PASSWORD}@{host}/admin"))
        .await
        .unwrap();
    let depth = app.depth().await;
    assert_eq!(text_of(c, "#signed-in-as").await, "signed in as admin");
    assert_eq!(text_of(c, "#jobs-queued").await, depth.queued.to_string());
    assert_eq!(text_of(c, "#jobs-running").await, depth.running.to_string());
    assert_eq!(text_of(c, "#jobs-dead").await, depth.dead.to_string());
    assert_eq!(depth.dead, 2);
    // The stylesheet loaded (an unstyled page would be the CSP or auth failing on assets).
    let styled = c
        .execute(
            "return getComputedStyle(document.querySelector('.cards')).display;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(styled, json!("grid"), "admin.css did not apply");
    shot(c, "02-overview").await;

    // A person page, through the search box in the header.
    let q = c.find(Locator::Css("header input[name=q]")).await.unwrap();
    q.send_keys(email).await.unwrap();
    click(c, Locator::Css("header form.search button")).await;
    let summary = text_of(c, "#person-summary").await;
    assert!(summary.contains(email), "{summary}");
    let ledger = text_of(c, "#ledger").await;
    assert!(ledger.contains("invited"), "{ledger}");
    assert!(ledger.contains(task), "{ledger}");
    shot(c, "03-person").await;
    // Its task link leads to the same rows by task.
    click(
        c,
        Locator::Css(&format!("#ledger a[href='/admin/person?q={task}']")),
    )
    .await;
    assert!(text_of(c, "#person-summary").await.contains("for task"));

    // Dead letters: press Replay on the first; the job is queued again.
    click(c, Locator::Css("nav a[href='/admin/dead']")).await;
    assert_eq!(text_of(c, "#dead-total").await, "2");
    click(c, Locator::Id(&format!("replay-{}", dead[0]))).await;
    let notice = text_of(c, "#notice").await;
    assert_eq!(notice, format!("Job {} is queued again.", dead[0]));
    let d = app.depth().await;
    assert_eq!((d.queued, d.dead), (1, 1), "the store has the job queued");
    assert_eq!(text_of(c, "#dead-total").await, "1");
    shot(c, "04-replayed").await;
    click(c, Locator::Css("nav a[href='/admin']")).await;
    assert_eq!(text_of(c, "#jobs-queued").await, "1");
    assert_eq!(text_of(c, "#jobs-dead").await, "1");

    // A write without the CSRF token (the hidden field removed) is refused.
    c.goto(&app.url("/admin/dead")).await.unwrap();
    c.execute(
        "document.querySelectorAll('input[name=csrf]').forEach(function (e) { e.remove(); });",
        vec![],
    )
    .await
    .unwrap();
    click(c, Locator::Id(&format!("replay-{}", dead[1]))).await;
    let problem = text_of(c, "#problem").await;
    assert!(problem.contains("CSRF token"), "{problem}");
    assert_eq!(app.depth().await.dead, 1, "refused, so still dead");
    shot(c, "05-csrf-refused").await;

    // Phone width: nothing wider than the screen.
    c.set_window_size(390, 844).await.unwrap();
    for (path, name) in [
        ("/admin", "06-phone-overview"),
        ("/admin/dead", "07-phone-dead"),
    ] {
        c.goto(&app.url(path)).await.unwrap();
        text_of(c, "h1").await;
        let fits = c
            .execute(
                "return document.documentElement.scrollWidth <= document.documentElement.clientWidth;",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(fits, json!(true), "{path} scrolls sideways at 390 px");
        shot(c, name).await;
    }
}
