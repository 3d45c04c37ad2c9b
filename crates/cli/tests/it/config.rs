//! Configuration: flags over environment over the TOML file, the seed's ONLYOFFICE_*
//! fallbacks, missing or wrong credentials (exit 2, naming the variable), bad files and
//! bad flags, and `doctor`.

use std::path::Path;

use crate::harness::{dead_url, Cmd, Sims};

/// A `[asana]`/`[docspace]`/`state` config file body.
fn connection_toml(
    asana_url: &str,
    token: &str,
    docspace_url: &str,
    key: &str,
    state: &Path,
) -> String {
    format!(
        "state = {state:?}\n\n[asana]\nbase_url = {asana_url:?}\ntoken = {token:?}\n\n\
         [docspace]\nurl = {docspace_url:?}\napi_key = {key:?}\n",
        state = state.to_string_lossy(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_credential_exits_2_and_names_the_variable() {
    let s = Sims::demo().await;
    let task = s.ids.task_new_assignee.clone();
    for (var, also_names) in [
        ("ASANA_TOKEN", "personal access token"),
        ("DOCSPACE_URL", "ONLYOFFICE_API_HOST"),
        ("DOCSPACE_API_KEY", "ONLYOFFICE_API_KEY"),
    ] {
        let out = s
            .cmd()
            .env_remove(var)
            .args(["invite", "--json", "--task", &task])
            .run()
            .await;
        out.expect_code(2)
            .stderr_has(&[&format!("{var} is not set"), also_names]);
        assert!(out.stdout.is_empty(), "{out}");

        // Set but empty counts as missing.
        let out = s
            .cmd()
            .env(var, "")
            .args(["invite", "--task", &task])
            .run()
            .await;
        out.expect_code(2)
            .stderr_has(&[&format!("{var} is not set")]);
    }
    // `sync` and `doctor` say the same; sync checks credentials before any request.
    let rules = s.write_file("rules.toml", &s.demo_rules());
    let out = s
        .cmd()
        .env_remove("ASANA_TOKEN")
        .arg("--config")
        .arg(&rules)
        .args(["sync", "--dry-run"])
        .run()
        .await;
    out.expect_code(2).stderr_has(&["ASANA_TOKEN is not set"]);
    assert_eq!(
        s.request_count(),
        0,
        "a run without credentials reached an API"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeds_onlyoffice_variables_are_accepted_as_fallbacks() {
    let s = Sims::demo().await;
    let out = s
        .cmd()
        .env_remove("DOCSPACE_URL")
        .env_remove("DOCSPACE_API_KEY")
        .env("ONLYOFFICE_API_HOST", &s.docspace.base_url())
        .env("ONLYOFFICE_API_KEY", &s.docspace_key)
        .args(["invite", "--json", "--task", &s.ids.task_new_assignee])
        .run()
        .await;
    out.expect_code(0);
    assert_eq!(out.one()["outcome"], "invited");
    assert_eq!(s.invitations_sent(), vec![s.ids.email_new.clone()]);
}

/// The seed writes `ONLYOFFICE_API_HOST = "your-docspace.onlyoffice.com"`: a bare host,
/// which means https. Against the plain-HTTP simulator that must fail the TLS handshake
/// (nothing reaches the simulator's API), not silently downgrade to http.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bare_host_means_https() {
    let s = Sims::demo().await;
    let bare = s.docspace.addr().to_string();
    let out = s
        .cmd()
        .env_remove("DOCSPACE_URL")
        .env("ONLYOFFICE_API_HOST", &bare)
        .args(["invite", "--json", "--task", &s.ids.task_new_assignee])
        .run()
        .await;
    out.expect_code(1);
    let line = out.one();
    assert_eq!(line["outcome"], "failed");
    assert!(
        line["error"]
            .as_str()
            .unwrap_or_default()
            .contains("could not reach DocSpace"),
        "{out}"
    );
    assert!(
        s.docspace_requests().is_empty(),
        "{:#?}",
        s.docspace_requests()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docspace_variables_win_over_the_onlyoffice_fallbacks() {
    let s = Sims::demo().await;
    let out = s
        .cmd()
        .env("ONLYOFFICE_API_HOST", &dead_url())
        .env("ONLYOFFICE_API_KEY", "sk-wrong-fallback-key")
        .args(["invite", "--json", "--task", &s.ids.task_active_member])
        .run()
        .await;
    out.expect_code(0);
    assert_eq!(out.one()["outcome"], "already_member");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_config_file_alone_is_enough() {
    let s = Sims::demo().await;
    let state = s.dir.path().join("from-file.db");
    let file = s.write_file(
        "conn.toml",
        &connection_toml(
            &s.asana.base_url(),
            &s.asana_token,
            &s.docspace.base_url(),
            &s.docspace_key,
            &state,
        ),
    );
    let out = Cmd::isolated(s.dir.path())
        .env("ASANA_DOCSPACE_CONFIG", &file.to_string_lossy())
        .args(["invite", "--json", "--task", &s.ids.task_new_assignee])
        .run()
        .await;
    out.expect_code(0);
    assert_eq!(out.one()["outcome"], "invited");
    assert!(state.exists(), "the file's state path was not used");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_overrides_the_config_file() {
    let s = Sims::demo().await;
    let file_state = s.dir.path().join("file.db");
    let env_state = s.dir.path().join("env.db");
    // Everything in the file is wrong: dead URLs, rejected credentials.
    let file = s.write_file(
        "wrong.toml",
        &connection_toml(
            &format!("{}/api/1.0", dead_url()),
            "2/0000/0000:wrong-file-token",
            &dead_url(),
            "sk-wrong-file-key",
            &file_state,
        ),
    );
    let out = s
        .cmd()
        .env("ASANA_DOCSPACE_CONFIG", &file.to_string_lossy())
        .env("ASANA_DOCSPACE_STATE", &env_state.to_string_lossy())
        .args(["invite", "--json", "--task", &s.ids.task_new_assignee])
        .run()
        .await;
    out.expect_code(0);
    assert_eq!(out.one()["outcome"], "invited");
    assert!(env_state.exists());
    assert!(
        !file_state.exists(),
        "the file's state path won over the environment"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_override_the_environment() {
    let s = Sims::demo().await;
    let env_state = s.dir.path().join("env.db");
    let flag_state = s.dir.path().join("flag.db");
    let out = s
        .cmd()
        .env("ASANA_BASE_URL", &format!("{}/api/1.0", dead_url()))
        .env("DOCSPACE_URL", &dead_url())
        .env("ASANA_DOCSPACE_STATE", &env_state.to_string_lossy())
        .args(["--asana-base-url", &s.asana.base_url()])
        .args(["--docspace-url", &s.docspace.base_url()])
        .arg("--state")
        .arg(&flag_state)
        .args(["invite", "--json", "--task", &s.ids.task_new_assignee])
        .run()
        .await;
    out.expect_code(0);
    assert_eq!(out.one()["outcome"], "invited");
    assert!(flag_state.exists());
    assert!(
        !env_state.exists(),
        "the environment's state path won over --state"
    );

    // Global flags work after the subcommand too.
    let out = s
        .cmd()
        .env("DOCSPACE_URL", &dead_url())
        .args(["invite", "--task", &s.ids.task_new_assignee, "--json"])
        .args(["--docspace-url", &s.docspace.base_url()])
        .run()
        .await;
    out.expect_code(0);
    assert_eq!(out.one()["outcome"], "already_invited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_flag_overrides_the_config_variable() {
    let s = Sims::demo().await;
    let bad = s.write_file("bad.toml", "[asana]\nbase_url = \"not a url\"\n");
    let good = s.write_file("good.toml", "[sync]\ninvite_batch = 10\n");
    let out = s
        .cmd()
        .env("ASANA_DOCSPACE_CONFIG", &bad.to_string_lossy())
        .arg("--config")
        .arg(&good)
        .args(["invite", "--json", "--task", &s.ids.task_active_member])
        .run()
        .await;
    out.expect_code(0);
    // And the variable alone is read (the bad file is refused).
    let out = s
        .cmd()
        .env("ASANA_DOCSPACE_CONFIG", &bad.to_string_lossy())
        .env_remove("ASANA_BASE_URL")
        .args(["invite", "--task", &s.ids.task_active_member])
        .run()
        .await;
    out.expect_code(2).stderr_has(&["ASANA_BASE_URL"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_config_files_exit_2_with_the_file_and_the_problem() {
    let s = Sims::demo().await;
    let task = s.ids.task_active_member.clone();
    let typo = s.write_file(
        "typo.toml",
        "[[rules]]\nproject = \"1201\"\nacess = \"read\"\n",
    );
    let out = s
        .cmd()
        .arg("--config")
        .arg(&typo)
        .args(["invite", "--task", &task])
        .run()
        .await;
    out.expect_code(2).stderr_has(&["typo.toml", "acess"]);

    let syntax = s.write_file("syntax.toml", "[asana\nbase_url = 1\n");
    let out = s
        .cmd()
        .arg("--config")
        .arg(&syntax)
        .args(["invite", "--task", &task])
        .run()
        .await;
    out.expect_code(2).stderr_has(&["syntax.toml"]);

    let missing = s.dir.path().join("nope.toml");
    let out = s
        .cmd()
        .arg("--config")
        .arg(&missing)
        .args(["invite", "--task", &task])
        .run()
        .await;
    out.expect_code(2)
        .stderr_has(&["cannot read config file", "nope.toml"]);

    // A rule with an unknown access name: every problem listed, nothing sent.
    let rules = s.write_file(
        "rules.toml",
        "[[rules]]\nproject = \"1201\"\nroom = \"5\"\naccess = \"editor\"\n\n\
         [[rules]]\nproject = \"abc\"\n",
    );
    let out = s
        .cmd()
        .arg("--config")
        .arg(&rules)
        .args(["sync", "--dry-run"])
        .run()
        .await;
    out.expect_code(2)
        .stderr_has(&["rules[0]", "editor", "rules[1]", "abc"]);
    assert_eq!(s.request_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_flags_and_bad_settings_exit_2() {
    let s = Sims::demo().await;
    let task = s.ids.task_active_member.clone();
    for args in [
        vec!["invite"],
        vec!["invite", "--task", &task, "--bogus"],
        vec!["frobnicate"],
        vec!["--asana-rpm", "many", "invite", "--task", &task],
        vec!["--asana-rpm", "0", "invite", "--task", &task],
        vec!["sync"],
    ] {
        let out = s.cmd().args(args).run().await;
        out.expect_code(2);
        assert!(!out.stderr.is_empty(), "{out}");
    }
    let out = s
        .cmd()
        .env("DOCSPACE_URL", "ftp://docs.example.com")
        .args(["invite", "--task", &task])
        .run()
        .await;
    out.expect_code(2).stderr_has(&["DOCSPACE_URL"]);
    let out = s
        .cmd()
        .env("ASANA_DOCSPACE_STATE", "postgres://db.example/bridge")
        .args(["invite", "--task", &task])
        .run()
        .await;
    out.expect_code(2).stderr_has(&["state database"]);
    assert_eq!(s.request_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_credential_is_a_configuration_error() {
    let s = Sims::demo().await;
    let out = s
        .cmd()
        .env("ASANA_TOKEN", "2/0000/0000:revoked")
        .args(["invite", "--json", "--task", &s.ids.task_new_assignee])
        .run()
        .await;
    out.expect_code(2).stderr_has(&["401"]);
    assert!(s.docspace_requests().is_empty());

    // With a room, DocSpace's 401 comes from the room check: exit 2 as well.
    let out = s
        .cmd()
        .env("DOCSPACE_API_KEY", "sk-revoked")
        .args([
            "invite",
            "--task",
            &s.ids.task_new_assignee,
            "--room",
            &s.ids.room,
        ])
        .run()
        .await;
    out.expect_code(2).stderr_has(&["401"]);
    assert!(s.invitations_sent().is_empty());
}

/// The same wrong DocSpace key must give the same exit code whether or not `--room` is
/// passed (see `a_rejected_credential_is_a_configuration_error`, and `CoreError::exit_code`:
/// "401 means the credential is wrong: a configuration problem").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_docspace_key_exits_2_like_a_rejected_asana_token() {
    let s = Sims::demo().await;
    let out = s
        .cmd()
        .env("DOCSPACE_API_KEY", "sk-revoked")
        .args(["invite", "--json", "--task", &s.ids.task_new_assignee])
        .run()
        .await;
    // Same rule for DocSpace: a wrong key is the user's to fix, like a missing one.
    out.expect_code(2);
    assert!(
        format!("{}{}", out.stdout, out.stderr).contains("401"),
        "{out}"
    );
    assert!(s.invitations_sent().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_checks_both_credentials_and_the_state() {
    let s = Sims::demo().await;
    let out = s.cmd().args(["doctor", "--json"]).run().await;
    out.expect_code(0);
    let checks = out.json();
    assert!(checks.len() >= 3, "{out}");
    assert!(checks.iter().all(|c| c["ok"] == true), "{out}");

    let out = s
        .cmd()
        .env("ASANA_TOKEN", "2/0000/0000:revoked")
        .env("DOCSPACE_API_KEY", "sk-revoked")
        .arg("doctor")
        .run()
        .await;
    out.expect_code(1).stdout_has(&[
        "[FAIL] asana credentials",
        "rejected the token (401)",
        "[FAIL] docspace credentials",
        "rejected the API key (401)",
        "[ ok ] state database",
    ]);
    let out = s
        .cmd()
        .env_remove("DOCSPACE_API_KEY")
        .arg("doctor")
        .run()
        .await;
    out.expect_code(1)
        .stdout_has(&["DOCSPACE_API_KEY is not set"]);
}
