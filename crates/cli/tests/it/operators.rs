//! Operator conventions of the binary (issue 12): `--version` names the commit,
//! `completions` and `man` come from the parser itself, `config check [--online]`
//! validates offline and online and never prints a secret, and `--log-format json`
//! writes one JSON object per log line.

use crate::harness::{Cmd, Sims};

const ADMIN_PASSWORD: &str = "admin-password-for-tests";
const VIEWER_PASSWORD: &str = "viewer-password-for-tests";

/// Everything secret a run of these tests knows; none may appear in any output.
fn secrets(s: &Sims) -> Vec<String> {
    vec![
        s.asana_token.clone(),
        s.docspace_key.clone(),
        ADMIN_PASSWORD.into(),
        VIEWER_PASSWORD.into(),
    ]
}

#[track_caller]
fn assert_no_secret(out: &crate::harness::Output, secrets: &[String]) {
    for secret in secrets {
        assert!(
            !out.stdout.contains(secret.as_str()) && !out.stderr.contains(secret.as_str()),
            "a secret was printed\n{out}"
        );
    }
}

#[tokio::test]
async fn version_names_the_crate_version_and_the_git_commit() {
    let dir = tempfile::tempdir().unwrap();
    let out = Cmd::isolated(dir.path()).arg("--version").run().await;
    out.expect_code(0);
    let line = out.stdout.trim();
    let rest = line
        .strip_prefix(&format!("asana-docspace {} (", env!("CARGO_PKG_VERSION")))
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("unexpected --version: {line:?}"));
    assert!(
        rest == "unknown" || (rest.len() >= 7 && rest.bytes().all(|b| b.is_ascii_hexdigit())),
        "not a commit: {rest:?}"
    );
}

#[tokio::test]
async fn completions_for_every_shell_and_a_man_page_come_from_the_parser() {
    let dir = tempfile::tempdir().unwrap();
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef asana-docspace"),
        ("fish", "complete -c asana-docspace"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let out = Cmd::isolated(dir.path())
            .args(["completions", shell])
            .run()
            .await;
        out.expect_code(0)
            .stdout_has(&[marker, "replay", "webhooks"]);
        assert!(
            out.stdout.contains("config"),
            "{shell}: no config subcommand"
        );
    }
    Cmd::isolated(dir.path())
        .args(["completions", "tcsh"])
        .run()
        .await
        .expect_code(2);

    let man = Cmd::isolated(dir.path()).arg("man").run().await;
    man.expect_code(0).stdout_has(&[
        ".TH asana-docspace 1",
        "invite",
        "completions",
        "\\-\\-log\\-format",
        "Exit codes",
    ]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_check_prints_the_effective_configuration_with_secrets_redacted() {
    let s = Sims::demo().await;
    s.write_config(&format!(
        "{}\n[serve]\nworkers = 3\n\n[admin]\nviewer_password = \"{VIEWER_PASSWORD}\"\n",
        s.demo_rules()
    ));
    let out = s
        .configured(&["config", "check"])
        .env("ASANA_DOCSPACE_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .run()
        .await;
    out.expect_code(0).stderr_has(&["is valid"]);
    assert_no_secret(&out, &secrets(&s));
    let effective: toml::Value = toml::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("the human output is not TOML ({e})\n{out}"));
    assert_eq!(effective["serve"]["workers"].as_integer(), Some(3));
    assert_eq!(
        effective["asana"]["token"].as_str(),
        Some("[redacted] (from ASANA_TOKEN)")
    );
    assert_eq!(
        effective["admin"]["admin_password"].as_str(),
        Some("[redacted] (from ASANA_DOCSPACE_ADMIN_PASSWORD)")
    );
    assert_eq!(
        effective["admin"]["viewer_password"].as_str(),
        Some("[redacted] (from [admin] viewer_password in the file)")
    );
    assert_eq!(effective["rules"].as_array().map(Vec::len), Some(3));
    assert_eq!(
        effective["state"].as_str(),
        Some(&*s.state_path().to_string_lossy())
    );
    // Offline means offline: not one request to either API.
    assert_eq!(s.request_count(), 0);

    let json = s.configured(&["config", "check", "--json"]).run().await;
    json.expect_code(0);
    let v = json.one();
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["effective"]["rules"][0]["access"], "editing");
    assert_no_secret(&json, &secrets(&s));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_check_exits_2_listing_every_problem_without_echoing_secrets() {
    let s = Sims::demo().await;
    // A bad rule, a bad [serve] value and a short admin password at once.
    s.write_config(
        "[[rules]]\nproject = \"not-a-gid\"\n\n[serve]\nworkers = 0\n\n[admin]\nadmin_password = \"short-pw\"\n",
    );
    let out = s.run(&["config", "check"]).await;
    out.expect_code(2)
        .stderr_has(&["not-a-gid", "workers must be at least 1"]);
    assert!(!out.stderr.contains("short-pw") && !out.stdout.contains("short-pw"));

    s.write_config(&format!(
        "{}\n[admin]\nadmin_password = \"short-pw\"\n",
        s.demo_rules()
    ));
    s.run(&["config", "check"])
        .await
        .expect_code(2)
        .stderr_has(&["at least 12 characters"]);

    // An unknown key, a missing file, no file at all, a missing credential.
    s.write_config("[serve]\nlisen = \"0.0.0.0:1\"\n");
    s.run(&["config", "check"]).await.expect_code(2);
    s.cmd()
        .arg("--config")
        .arg(s.dir.path().join("absent.toml"))
        .args(["config", "check"])
        .run()
        .await
        .expect_code(2)
        .stderr_has(&["cannot read config file"]);
    s.cmd()
        .args(["config", "check"])
        .run()
        .await
        .expect_code(2)
        .stderr_has(&["ASANA_DOCSPACE_CONFIG"]);
    s.write_config(&s.demo_rules());
    s.configured(&["config", "check"])
        .env_remove("DOCSPACE_API_KEY")
        .run()
        .await
        .expect_code(2)
        .stderr_has(&["DOCSPACE_API_KEY is not set"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_check_online_asks_both_apis_and_every_rule_room() {
    let s = Sims::demo().await;
    s.write_config(&s.demo_rules());
    let out = s.run(&["config", "check", "--online"]).await;
    out.expect_code(0)
        .stdout_has(&["[ ok ] asana credentials", "[ ok ] docspace credentials"])
        .stdout_has(&[&format!("[ ok ] room {}", s.ids.room)]);
    assert_no_secret(&out, &secrets(&s));
    let room_reads = s
        .docspace_requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.ends_with(&format!("/rooms/{}", s.ids.room)))
        .count();
    assert_eq!(room_reads, 1, "each distinct room is read once");
    assert!(s.docspace_writes().is_empty(), "a check writes nothing");

    // A room that does not exist is the configuration's fault: exit 2, naming it.
    s.write_config("[[rules]]\nproject = \"1201\"\nroom = \"987654\"\n");
    s.run(&["config", "check", "--online"])
        .await
        .expect_code(2)
        .stderr_has(&["room 987654 does not exist"]);

    // A refused credential likewise.
    s.write_config(&s.demo_rules());
    let out = s
        .configured(&["config", "check", "--online"])
        .env("ASANA_TOKEN", "wrong-token-value")
        .run()
        .await;
    out.expect_code(2).stderr_has(&["Asana"]);
    assert!(!out.stderr.contains("wrong-token-value"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_format_json_writes_one_json_object_per_log_line() {
    let s = Sims::demo().await;
    s.write_config(&s.demo_rules());
    let out = s
        .run(&["--log-format", "json", "-vv", "config", "check", "--online"])
        .await;
    out.expect_code(0);
    let logs: Vec<serde_json::Value> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}\n{out}")))
        .collect();
    assert!(!logs.is_empty(), "no JSON log lines\n{out}");
    assert!(logs
        .iter()
        .all(|l| l["level"].is_string() && l["timestamp"].is_string()));
    assert_no_secret(&out, &secrets(&s));

    // Text is the default: no JSON lines then.
    let text = s.run(&["-vv", "config", "check", "--online"]).await;
    text.expect_code(0);
    assert!(!text.stderr.lines().any(|l| l.starts_with('{')), "{text}");
    s.run(&["--log-format", "xml", "config", "check"])
        .await
        .expect_code(2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_turns_the_status_page_on_from_the_environment_and_the_file() {
    let s = Sims::demo().await;
    s.write_config(&format!(
        "{}\n[admin]\nviewer_password = \"{VIEWER_PASSWORD}\"\n",
        s.demo_rules()
    ));
    let port = crate::harness::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = s
        .configured(&["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("ASANA_DOCSPACE_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("ASANA_DOCSPACE_LOG", "warn")
        .spawn_server();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(std::time::Instant::now() < deadline, "serve did not start");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let status = |user: Option<(&'static str, &'static str)>| {
        let mut req = http.get(format!("{base}/admin"));
        if let Some((u, p)) = user {
            req = req.basic_auth(u, Some(p));
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status(None).await, 401);
    assert_eq!(status(Some(("admin", ADMIN_PASSWORD))).await, 200);
    assert_eq!(status(Some(("viewer", VIEWER_PASSWORD))).await, 200);
    assert_eq!(status(Some(("admin", VIEWER_PASSWORD))).await, 401);
    server.start_kill().unwrap();
    let _ = server.wait().await;
}
