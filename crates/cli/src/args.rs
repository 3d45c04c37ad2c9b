//! The command line. Names are part of the brief's interface contract.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "asana-docspace",
    // `0.1.0 (abc1234)`: the crate version and the git commit it was built from (build.rs).
    version = env!("ASANA_DOCSPACE_VERSION"),
    about = "Give the people assigned to Asana tasks access to ONLYOFFICE DocSpace: once, safely, fast.",
    after_long_help = "Exit codes: 0 done (including \"already there\"); 1 an API or network failure \
        remained after retries; 2 usage or configuration error; 3 nothing to do (no assignee, \
        or the email is not visible).\n\nCredentials come from the environment (ASANA_TOKEN, \
        DOCSPACE_URL, DOCSPACE_API_KEY) or the config file, never from flags."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Settings every command shares. Credentials are read from the environment or the
/// config file only: a token on the command line would show up in `ps` and shell history.
#[derive(Debug, Args)]
pub struct Global {
    /// TOML config file (rules and settings).
    #[arg(
        long,
        global = true,
        env = "ASANA_DOCSPACE_CONFIG",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,
    /// State database: a SQLite path, or postgres://user@host/db for several replicas.
    #[arg(
        long,
        global = true,
        env = "ASANA_DOCSPACE_STATE",
        value_name = "PATH|URL"
    )]
    pub state: Option<String>,
    /// Asana API base URL [default: https://app.asana.com/api/1.0].
    #[arg(long, global = true, env = "ASANA_BASE_URL", value_name = "URL")]
    pub asana_base_url: Option<String>,
    /// DocSpace portal, `https://host` (a bare host means https). Falls back to ONLYOFFICE_API_HOST.
    #[arg(long, global = true, env = "DOCSPACE_URL", value_name = "URL")]
    pub docspace_url: Option<String>,
    /// Asana requests per minute for this token (150 free, 1500 paid).
    #[arg(long, global = true, value_name = "N")]
    pub asana_rpm: Option<u32>,
    /// One JSON object per line on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// More logging on stderr (-v, -vv).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Log lines on stderr as text, or as one JSON object per line (for log shippers).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, value_name = "FORMAT")]
    pub log_format: LogFormat,
}

/// How log lines on stderr are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line: timestamp, level, target, fields.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Invite the assignee of one Asana task to DocSpace (and optionally share a room).
    Invite(InviteArgs),
    /// Add a person to an Asana workspace or organization (Asana's addUser).
    AddToWorkspace(AddToWorkspaceArgs),
    /// Reconcile whole Asana projects against DocSpace, following the config's rules.
    Sync(SyncArgs),
    /// Show the audit log: every decision and action, with its source task and outcome.
    History(HistoryArgs),
    /// Check both credentials, permissions and reachability, and say what to fix.
    Doctor,
    /// Run local simulators of both APIs with seeded demo data.
    Sim(SimArgs),
    /// Run the product end to end against the simulators: no accounts needed.
    Demo,
    /// Run the webhook service: Asana deliveries at POST /webhooks/asana/{id}, the queue's
    /// workers, GET /healthz and GET /metrics. Stops gracefully on SIGTERM or Ctrl-C.
    Serve(ServeArgs),
    /// Manage the Asana webhooks that deliver to `serve`.
    Webhooks(WebhooksArgs),
    /// Poll Asana's Events API instead of receiving webhooks (no public URL needed), and
    /// work the queue.
    Watch(WatchArgs),
    /// Put the queue's dead letters back in the queue (after fixing what killed them).
    Replay(ReplayArgs),
    /// Check the configuration file and show the effective configuration.
    Config(ConfigArgs),
    /// Manage the state database (move a SQLite state to PostgreSQL).
    State(StateArgs),
    /// Print a shell completion script to stdout.
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout, e.g. `asana-docspace man > asana-docspace.1`.
    Man,
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub command: ConfigCommand,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the config file ([[rules]], [sync], [serve], [admin]) and the connection
    /// settings, and print the effective configuration with secrets redacted. Exit 2 on a
    /// problem. Offline unless --online.
    Check {
        /// Also check that both credentials work and that each rule's room exists.
        #[arg(long)]
        online: bool,
    },
}

#[derive(Debug, Args)]
pub struct StateArgs {
    #[command(subcommand)]
    pub command: StateCommand,
}

#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Copy the current SQLite state (ledger, queue, webhook registrations and secrets,
    /// sync tokens and marks) into a PostgreSQL database, for running several replicas.
    /// Idempotent: a rerun copies nothing twice. Stop serve/watch on the SQLite state first.
    Migrate {
        /// The PostgreSQL database to copy into (postgres://user@host:5432/db; it must
        /// exist, its tables are created).
        #[arg(long, value_name = "URL")]
        to: String,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: [serve] listen, else 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
}

#[derive(Debug, Args)]
pub struct WebhooksArgs {
    #[command(subcommand)]
    pub command: WebhooksCommand,
}

#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// Register a webhook on a project (assignee changes, added tasks). `serve` must be
    /// running on the same state database and reachable at --target.
    Create {
        /// The Asana project to watch (it needs a [[rules]] entry).
        #[arg(long, value_name = "GID")]
        project: String,
        /// The service's public base URL, e.g. https://bridge.example.com; deliveries go
        /// to URL/webhooks/asana/{id}.
        #[arg(long, value_name = "URL")]
        target: String,
    },
    /// List the webhooks with Asana's own health fields (active, last success and failure).
    List {
        /// Only this project's webhooks (also tells which workspace to list).
        #[arg(long, value_name = "GID")]
        project: Option<String>,
        /// The workspace to list [default: from --project, else from the rules and
        /// registered webhooks].
        #[arg(long, value_name = "GID")]
        workspace: Option<String>,
    },
    /// Delete a webhook at Asana (by its gid) and forget its secret here.
    Delete {
        /// Asana's webhook gid, as shown by `webhooks list`.
        #[arg(value_name = "GID")]
        gid: String,
    },
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Only these projects (default: every project with a rule). Repeatable.
    #[arg(long = "project", value_name = "GID")]
    pub projects: Vec<String>,
    /// Seconds between polls of each project.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub interval: u64,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Only list the dead letters; change nothing.
    #[arg(long)]
    pub list: bool,
}

#[derive(Debug, Args)]
pub struct InviteArgs {
    /// The Asana task gid.
    #[arg(long, value_name = "GID")]
    pub task: String,
    /// DocSpace user type for a new person: user | room-admin | docspace-admin.
    #[arg(long = "type", value_name = "TYPE", default_value = "user")]
    pub user_type: String,
    /// Also share this DocSpace room (id) with the person.
    #[arg(long, value_name = "ID")]
    pub room: Option<String>,
    /// Room access level (with --room): read | review | comment | fill-forms | editing | content-creator | room-manager.
    #[arg(long, value_name = "LEVEL", requires = "room")]
    pub access: Option<String>,
    /// Show what would happen; send no write.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct AddToWorkspaceArgs {
    /// Asana workspace or organization gid.
    #[arg(long, value_name = "GID")]
    pub workspace: String,
    /// The person: an email, a user gid, or `me`.
    #[arg(long, value_name = "EMAIL|GID|me")]
    pub user: String,
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Only these projects (default: every project with a rule). Repeatable.
    #[arg(long = "project", value_name = "GID")]
    pub projects: Vec<String>,
    /// Print the plan; send no write.
    #[arg(long)]
    pub dry_run: bool,
    /// Read every task of every project, even when the last sync of a project was recent
    /// enough (`[sync] full_every`, default 24h) to read only what was modified since.
    #[arg(long)]
    pub full: bool,
    /// Go ahead with up to N removals of room access this run, whatever
    /// `[deprovision] max_revocations` says (after a run held back with exit 4).
    #[arg(long, value_name = "N")]
    pub allow_revocations: Option<usize>,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    #[arg(long, value_name = "EMAIL")]
    pub email: Option<String>,
    #[arg(long, value_name = "GID")]
    pub task: Option<String>,
    /// Show at most this many entries (newest).
    #[arg(long, default_value_t = 200)]
    pub limit: u32,
}

#[derive(Debug, Args)]
pub struct SimArgs {
    /// Port for the Asana simulator (0 = any free port).
    #[arg(long, default_value_t = 0)]
    pub asana_port: u16,
    /// Port for the DocSpace simulator (0 = any free port).
    #[arg(long, default_value_t = 0)]
    pub docspace_port: u16,
    /// Added latency per request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
}
