//! Secrets never appear in output, logs or error messages: the binary is given sentinel
//! credentials and driven down every failure path we can produce (rejected credentials,
//! 5xx storms, dropped connections, unreachable hosts, unknown task, 403/402, malformed
//! credentials, invalid configuration), quietly, with `-vv` and with trace logging, and
//! neither sentinel may show up on stdout or stderr, nor in the state database.

use bridge_sim::{seed, AsanaSimOptions, DocSpaceSimOptions, Fault};

use crate::harness::{dead_url, Cmd, Output, Sims};

const ASANA_SENTINEL: &str = "sentinel-asana-7f3c9e";
const DOCSPACE_SENTINEL: &str = "sk-sentinel-docspace-41aa";

/// Simulators that accept the sentinels (so the sentinels are the credentials in use).
async fn accepting() -> Sims {
    Sims::demo_with(
        AsanaSimOptions {
            tokens: vec![ASANA_SENTINEL.to_string()],
            ..Default::default()
        },
        DocSpaceSimOptions {
            api_keys: vec![DOCSPACE_SENTINEL.to_string()],
            ..Default::default()
        },
    )
    .await
}

/// Simulators that reject the sentinels: they accept only the demo credentials, while the
/// binary is still given the sentinels.
async fn rejecting() -> Sims {
    let mut s = Sims::demo().await;
    s.asana_token = ASANA_SENTINEL.to_string();
    s.docspace_key = DOCSPACE_SENTINEL.to_string();
    s
}

/// What leaked in the output, if anything: one message per sentinel found.
fn leaks(label: &str, out: &Output) -> Vec<String> {
    let mut found = Vec::new();
    for (stream, text) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        let lower = text.to_ascii_lowercase();
        for needle in [ASANA_SENTINEL, DOCSPACE_SENTINEL, "sentinel", "7f3c9e"] {
            if lower.contains(needle) {
                found.push(format!(
                    "[{label}] secret {needle:?} leaked on {stream}\n{out}"
                ));
                break;
            }
        }
    }
    found
}

/// Runs the command three times at once, quiet, `-vv` and with
/// `ASANA_DOCSPACE_LOG=trace`, and returns every leak found; a failure path must really
/// fail (non-zero exit).
async fn run_all_verbosities(
    label: &str,
    expect_failure: bool,
    make: impl Fn() -> Cmd,
) -> Vec<String> {
    let verbosities = ["quiet", "-vv", "trace"];
    let runs = verbosities.map(|verbosity| {
        let cmd = make();
        let cmd = match verbosity {
            "-vv" => cmd.arg("-vv"),
            "trace" => cmd.env("ASANA_DOCSPACE_LOG", "trace"),
            _ => cmd,
        };
        cmd.run()
    });
    let outs = futures::future::join_all(runs).await;
    let mut found = Vec::new();
    for (verbosity, out) in verbosities.iter().zip(&outs) {
        let label = format!("{label}, {verbosity}");
        if expect_failure {
            assert_ne!(out.code, Some(0), "[{label}] expected a failure\n{out}");
        }
        if *verbosity != "quiet" {
            // Debug logging is really on: the secret had a chance to leak.
            assert!(!out.stderr.is_empty(), "[{label}] no logs on stderr\n{out}");
        }
        found.extend(leaks(&label, out));
    }
    found
}

/// [`run_all_verbosities`], panicking on the first leak.
async fn check(label: &str, expect_failure: bool, make: impl Fn() -> Cmd) {
    let found = run_all_verbosities(label, expect_failure, make).await;
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn success_paths_do_not_print_the_secrets() {
    let s = accepting().await;
    let task = s.ids.task_new_assignee.clone();
    check("invite", false, || {
        s.cmd()
            .args(["invite", "--json", "--task", &task, "--room", &s.ids.room])
    })
    .await;
    check("doctor", false, || s.cmd().arg("doctor")).await;
    let rules = s.write_file("rules.toml", &s.demo_rules());
    check("sync", false, || {
        s.cmd().arg("--config").arg(&rules).arg("sync")
    })
    .await;
    check("history", false, || s.cmd().arg("history")).await;
    // The ledger on disk is clean too.
    let db = std::fs::read(s.state_path()).unwrap_or_default();
    let db = String::from_utf8_lossy(&db);
    assert!(!db.contains(ASANA_SENTINEL) && !db.contains(DOCSPACE_SENTINEL));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_credentials_401_do_not_print_the_secrets() {
    let bad = rejecting().await;
    let good = accepting().await;
    let task = bad.ids.task_new_assignee.clone();
    // Asana rejects the token.
    check("asana 401 invite", true, || {
        bad.cmd().args(["invite", "--json", "--task", &task])
    })
    .await;
    check("asana 401 add-to-workspace", true, || {
        bad.cmd().args([
            "add-to-workspace",
            "--workspace",
            &bad.ids.workspace,
            "--user",
            "me",
        ])
    })
    .await;
    check("both 401 doctor", true, || {
        bad.cmd().args(["doctor", "--json"])
    })
    .await;
    let rules = bad.write_file("rules.toml", &bad.demo_rules());
    check("asana 401 sync", true, || {
        bad.cmd()
            .arg("--config")
            .arg(&rules)
            .args(["sync", "--dry-run"])
    })
    .await;
    // Only DocSpace rejects the key (Asana accepts its token).
    check("docspace 401 invite", true, || {
        good.cmd()
            .env("DOCSPACE_URL", &bad.docspace.base_url())
            .args(["invite", "--json", "--task", &task])
    })
    .await;
    check("docspace 401 invite --room", true, || {
        good.cmd()
            .env("DOCSPACE_URL", &bad.docspace.base_url())
            .args(["invite", "--task", &task, "--room", &good.ids.room])
    })
    .await;
    check("docspace 401 via ONLYOFFICE_API_KEY", true, || {
        good.cmd()
            .env_remove("DOCSPACE_API_KEY")
            .env("ONLYOFFICE_API_KEY", DOCSPACE_SENTINEL)
            .env("DOCSPACE_URL", &bad.docspace.base_url())
            .args(["invite", "--task", &task])
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_and_dropped_connections_do_not_print_the_secrets() {
    let s = accepting().await;
    let task = s.ids.task_new_assignee.clone();
    s.asana
        .set_faults(vec![Fault::status(500).on_path("/tasks/")]);
    check("asana 500 storm", true, || {
        s.cmd().args(["invite", "--json", "--task", &task])
    })
    .await;
    s.asana
        .set_faults(vec![Fault::drop_connection().on_path("/tasks/")]);
    check("asana dropped connections", true, || {
        s.cmd().args(["invite", "--task", &task])
    })
    .await;
    s.asana.set_faults(Vec::new());

    s.docspace
        .set_faults(vec![Fault::status(503).on_path("/people/email")]);
    check("docspace 503 storm", true, || {
        s.cmd().args(["invite", "--json", "--task", &task])
    })
    .await;
    s.docspace
        .set_faults(vec![Fault::status(500).on_path("/people/invite")]);
    check("docspace 500 on invite", true, || {
        s.cmd().args(["invite", "--task", &task])
    })
    .await;
    s.docspace
        .set_faults(vec![Fault::drop_connection().on_path("/api/2.0/")]);
    check("docspace dropped connections", true, || {
        s.cmd().args(["invite", "--json", "--task", &task])
    })
    .await;
    // Rate limits with Retry-After, logged at debug while waiting.
    s.docspace.set_faults(Vec::new());
    s.asana
        .set_faults(vec![Fault::rate_limited(None).on_path("/tasks/")]);
    check("asana 429 storm", true, || {
        s.cmd().args(["invite", "--task", &task])
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_hosts_do_not_print_the_secrets() {
    let s = accepting().await;
    let task = s.ids.task_new_assignee.clone();
    check("docspace unreachable", true, || {
        s.cmd()
            .env("DOCSPACE_URL", &dead_url())
            .args(["invite", "--json", "--task", &task])
    })
    .await;
    check("asana unreachable", true, || {
        s.cmd()
            .env("ASANA_BASE_URL", &format!("{}/api/1.0", dead_url()))
            .args(["invite", "--task", &task])
    })
    .await;
    check("doctor, both unreachable", true, || {
        s.cmd()
            .env("ASANA_BASE_URL", &format!("{}/api/1.0", dead_url()))
            .env("DOCSPACE_URL", &dead_url())
            .arg("doctor")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_and_bad_input_do_not_print_the_secrets() {
    let (a, d, ids) = seed::demo();
    let seats = d
        .people
        .iter()
        .filter(|p| p.state != bridge_sim::PersonState::Disabled)
        .count();
    let s = Sims::start(
        a,
        d,
        ids,
        AsanaSimOptions {
            tokens: Vec::new(),
            non_admin_tokens: vec![ASANA_SENTINEL.to_string()],
            ..Default::default()
        },
        DocSpaceSimOptions {
            api_keys: vec![DOCSPACE_SENTINEL.to_string()],
            max_users: Some(seats),
            ..Default::default()
        },
    )
    .await;
    check("unknown task", true, || {
        s.cmd().args(["invite", "--task", "1999999999999999"])
    })
    .await;
    check("non-numeric task", true, || {
        s.cmd().args(["invite", "--task", "abc"])
    })
    .await;
    check("add-to-workspace 403", true, || {
        s.cmd().args([
            "add-to-workspace",
            "--workspace",
            &s.ids.workspace,
            "--user",
            "x@y.example",
        ])
    })
    .await;
    check("add-to-workspace 404", true, || {
        s.cmd().args([
            "add-to-workspace",
            "--workspace",
            "1999999999999999",
            "--user",
            "me",
        ])
    })
    .await;
    check("docspace 402 quota", true, || {
        s.cmd()
            .args(["invite", "--json", "--task", &s.ids.task_new_assignee])
    })
    .await;
    s.docspace
        .set_faults(vec![Fault::status(403).on_method("PUT")]);
    check("docspace 403 share", true, || {
        s.cmd().args([
            "invite",
            "--task",
            &s.ids.task_pending,
            "--room",
            &s.ids.room,
        ])
    })
    .await;
    check("room type refuses the level", true, || {
        s.cmd().args([
            "invite",
            "--task",
            &s.ids.task_pending,
            "--room",
            &s.ids.room,
            "--access",
            "fill-forms",
        ])
    })
    .await;
    check("disabled account", true, || {
        s.cmd().args(["invite", "--task", &s.ids.task_disabled])
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_credentials_do_not_print_the_secrets() {
    let s = accepting().await;
    let task = s.ids.task_new_assignee.clone();
    for (label, var, value) in [
        (
            "token with a space",
            "ASANA_TOKEN",
            format!("{ASANA_SENTINEL} extra"),
        ),
        (
            "token with a newline",
            "ASANA_TOKEN",
            format!("{ASANA_SENTINEL}\n"),
        ),
        (
            "token with non-ASCII",
            "ASANA_TOKEN",
            format!("{ASANA_SENTINEL}é"),
        ),
        (
            "key with a newline",
            "DOCSPACE_API_KEY",
            format!("{DOCSPACE_SENTINEL}\nx"),
        ),
        (
            "key with a control char",
            "DOCSPACE_API_KEY",
            format!("{DOCSPACE_SENTINEL}\u{7}"),
        ),
    ] {
        check(label, true, || {
            s.cmd().env(var, &value).args(["invite", "--task", &task])
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_configuration_does_not_print_the_secrets() {
    let s = accepting().await;
    let task = s.ids.task_new_assignee.clone();
    let files = [
        (
            "unknown key beside the token",
            format!("[asana]\ntoken = \"{ASANA_SENTINEL}\"\ntokn = \"x\"\n"),
        ),
        (
            "unquoted token",
            format!("[asana]\ntoken = {ASANA_SENTINEL}\n"),
        ),
        (
            "unterminated key string",
            format!("[docspace]\napi_key = \"{DOCSPACE_SENTINEL}\n"),
        ),
        (
            "token of the wrong type",
            format!("[asana]\ntoken = [\"{ASANA_SENTINEL}\"]\n"),
        ),
        (
            "bad base_url beside the token",
            format!("[asana]\ntoken = \"{ASANA_SENTINEL}\"\nbase_url = \"not a url\"\n"),
        ),
        (
            "bad rule beside the key",
            format!(
                "[docspace]\napi_key = \"{DOCSPACE_SENTINEL}\"\n\n[[rules]]\nproject = \"x\"\n"
            ),
        ),
    ];
    // Every case runs; the leaks are listed together at the end.
    let mut found = Vec::new();
    for (i, (label, text)) in files.iter().enumerate() {
        let path = s.write_file(&format!("bad-{i}.toml"), text);
        found.extend(
            run_all_verbosities(label, true, || {
                s.cmd()
                    .env_remove("ASANA_TOKEN")
                    .env_remove("DOCSPACE_API_KEY")
                    .env_remove("ASANA_BASE_URL")
                    .arg("--config")
                    .arg(&path)
                    .args(["invite", "--task", &task])
            })
            .await,
        );
        found.extend(
            run_all_verbosities(label, true, || {
                s.cmd()
                    .env_remove("ASANA_TOKEN")
                    .env_remove("DOCSPACE_API_KEY")
                    .arg("--config")
                    .arg(&path)
                    .args(["sync", "--dry-run"])
            })
            .await,
        );
    }
    // A secret passed where a URL belongs is not echoed either.
    found.extend(
        run_all_verbosities("key given as the URL", true, || {
            s.cmd()
                .env(
                    "DOCSPACE_URL",
                    &format!("https://{DOCSPACE_SENTINEL}:{DOCSPACE_SENTINEL}@"),
                )
                .args(["invite", "--task", &task])
        })
        .await,
    );
    found.extend(
        run_all_verbosities(
            "key as the password in a reachable-looking URL",
            true,
            || {
                let dead = dead_url().replace("http://", "");
                s.cmd()
                    .env(
                        "DOCSPACE_URL",
                        &format!("http://user:{DOCSPACE_SENTINEL}@{dead}"),
                    )
                    .args(["invite", "--task", &task])
            },
        )
        .await,
    );
    found.extend(
        run_all_verbosities("missing credentials", true, || {
            s.cmd()
                .env_remove("ASANA_TOKEN")
                .env("DOCSPACE_API_KEY", DOCSPACE_SENTINEL)
                .args(["invite", "--task", &task])
        })
        .await,
    );
    assert!(
        found.is_empty(),
        "{} leak(s):\n{}",
        found.len(),
        found.join("\n")
    );
}
