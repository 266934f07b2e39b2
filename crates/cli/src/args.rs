//! Command-line arguments, parsed cheaply by clap and resolved later into validated
//! configuration.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// lakecdp: a customer data platform whose every table lives in your own data lake.
///
/// Exit codes: 0 success, 1 internal failure, 2 a mistake to fix (invalid project file,
/// unknown environment, failed prerequisite checks, refused confirmation).
#[derive(Debug, Parser)]
#[command(
    name = "lakecdp",
    version,
    propagate_version = true,
    max_term_width = 110
)]
pub struct Cli {
    /// The project folder (holds lakecdp.toml and the embedded catalog in .lakecdp/).
    #[arg(
        short = 'C',
        long = "project",
        global = true,
        default_value = ".",
        env = "LAKECDP_PROJECT"
    )]
    pub project: PathBuf,

    /// The catalog database file [default: <project>/.lakecdp/catalog.db].
    #[arg(long, global = true, env = "LAKECDP_CATALOG")]
    pub catalog: Option<PathBuf>,

    /// Act as this principal (a person or an application) [default: the environment's
    /// creator]. On one machine, whoever can read the catalog file can act as anyone.
    #[arg(
        long = "as",
        global = true,
        env = "LAKECDP_PRINCIPAL",
        value_name = "PRINCIPAL"
    )]
    pub acting_as: Option<String>,

    /// More log output (-v info, -vv debug); LAKECDP_LOG takes a tracing filter too.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a project folder with a commented lakecdp.toml.
    Init(InitArgs),
    /// Check, create, list, show, update and delete environments.
    #[command(subcommand)]
    Env(EnvCommand),
    /// Store the project file's environment in the catalog (create it, or update it) and
    /// the file as the environment's next applied revision.
    Apply(ApplyArgs),
    /// Show the project file against the applied revision.
    Diff,
    /// List the applied revisions of the project file.
    Revisions(RevisionsArgs),
    /// Write an applied revision back as a project file.
    ExportConfig(ExportConfigArgs),
    /// List the runs recorded for an environment.
    Runs(RunsArgs),
    /// Run the processes of the environment: loads every source into the lake.
    Refresh(RefreshArgs),
    /// Run in the foreground and start refreshes at the times of the environment's
    /// `refresh_schedule` (Ctrl-C stops it).
    Scheduler,
    /// List, show and inspect the data sources of the project file.
    #[command(subcommand)]
    Source(SourceCommand),
    /// Look into unification: explain a profile, preview the rules on a sample.
    #[command(subcommand)]
    Unify(UnifyCommand),
    /// Segments: their members and trend, and quick segments previewed without saving.
    #[command(subcommand)]
    Segment(SegmentCommand),
    /// Who may do what in an environment: Admin, Contributor or Viewer.
    #[command(subcommand)]
    Role(RoleCommand),
    /// Connections exports send through (PostgreSQL, ADLS, S3, a local folder).
    #[command(subcommand)]
    Connection(ConnectionCommand),
    /// Exports of output tables to an analytics database or another lake.
    #[command(subcommand)]
    Export(ExportCommand),
    /// The secret vault: rotate the master key that seals connection secrets.
    #[command(subcommand)]
    Vault(VaultCommand),
    /// Run the HTTP API server (every request authenticated; see the README).
    Serve(ServeArgs),
    /// Users who sign in to the server (catalog administrators).
    #[command(subcommand)]
    User(UserCommand),
    /// API tokens for applications and scripts, scoped to an environment and a role.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Security groups: roles granted to a group hold for its members.
    #[command(subcommand)]
    Group(GroupCommand),
    /// The audit log: who changed what, and every sign-in.
    Audit(AuditArgs),
    /// A Ballista cluster for environments whose `engine` names a scheduler: lakecdp's
    /// own scheduler and executor processes.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Share the environment's outputs with another organisation's applications: its
    /// Reader and Contributor groups, with access rules the storage enforces.
    #[command(subcommand)]
    Sharing(SharingCommand),
}

/// `cluster ...`.
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Run the scheduler in the foreground (Ctrl-C stops it). Environments point at it
    /// with `engine = { kind = "ballista", scheduler = "df://host:port" }`.
    Scheduler(ClusterSchedulerArgs),
    /// Run an executor in the foreground, joined to a scheduler (Ctrl-C stops it).
    Executor(ClusterExecutorArgs),
}

/// `cluster scheduler`.
#[derive(Debug, Args)]
pub struct ClusterSchedulerArgs {
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:50050")]
    pub bind: std::net::SocketAddr,
    /// Serve only these environments (by name; repeatable). Default: every environment
    /// of the catalog in which the acting principal may run refreshes.
    #[arg(long = "environment", value_name = "NAME")]
    pub environments: Vec<String>,
}

/// `cluster executor`.
#[derive(Debug, Args)]
pub struct ClusterExecutorArgs {
    /// The scheduler to join, `df://host:port`.
    #[arg(long)]
    pub scheduler: String,
    /// The address to listen on, which the scheduler and the other executors reach.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: std::net::IpAddr,
    /// The Arrow Flight port (shuffle data and results).
    #[arg(long, default_value_t = 50051)]
    pub port: u16,
    /// The gRPC port.
    #[arg(long, default_value_t = 50052)]
    pub grpc_port: u16,
    /// Tasks run at once (default: the machine's cores).
    #[arg(long)]
    pub slots: Option<usize>,
    /// Where shuffle files are kept, and the executor's other temporary files (in its
    /// `tmp/`: downloaded source files, spills of keyed loads). Default: the system's
    /// temporary folder.
    #[arg(long)]
    pub work_dir: Option<std::path::PathBuf>,
    /// Serve only these environments (by name; repeatable). Default: every environment
    /// of the catalog in which the acting principal may run refreshes.
    #[arg(long = "environment", value_name = "NAME")]
    pub environments: Vec<String>,
}

/// `sharing ...`.
#[derive(Debug, Subcommand)]
pub enum SharingCommand {
    /// Create (or reuse) the Reader and Contributor groups, apply the storage's access
    /// rules, read them back and print the permissions identifier.
    Enable(SharingEnableArgs),
    /// The groups, their members, the rules found on the storage and any drift.
    Status(TokenEnvArgs),
    /// Apply the storage's access rules again.
    Repair(TokenEnvArgs),
    /// Make a recipient of the sharing endpoint: an API token in the Reader group.
    Recipient(SharingRecipientArgs),
    /// On an S3 lake: write a group's access key to a new credentials file (0600) for
    /// the consuming side; it is never printed.
    Credentials(SharingCredentialsArgs),
    /// From the consuming side: attach an organisation to a shared storage account with
    /// the permissions identifier its sharing printed (one account per organisation).
    Attach(SharingAttachArgs),
    /// The attached organisations.
    Attachments,
    /// Detach an organisation: refused while exports, connections or recipient tokens
    /// read through it, unless --with-dependents.
    Detach(SharingDetachArgs),
}

/// `sharing attach`.
#[derive(Debug, Args)]
pub struct SharingAttachArgs {
    /// The permissions identifier, e.g.
    /// `https://<account>.dfs.core.windows.net/customerinsights?rg=<id>&cg=<id>`.
    pub identifier: String,
    /// The consuming organisation.
    #[arg(long)]
    pub organization: String,
    /// S3: the group key file `lakecdp sharing credentials` wrote.
    #[arg(long, value_name = "PATH")]
    pub credentials: Option<PathBuf>,
    /// The storage's endpoint: an S3-compatible server, or a Data Lake endpoint.
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// S3: the bucket's region.
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
    /// ADLS: the tenant of the Entra application (a member of the Reader group) that
    /// reads the ACLs.
    #[arg(long, requires_all = ["client_id", "client_secret_env"])]
    pub tenant_id: Option<String>,
    /// ADLS: the application (client) id.
    #[arg(long)]
    pub client_id: Option<String>,
    /// ADLS: the environment variable holding the application's secret.
    #[arg(long, value_name = "VAR")]
    pub client_secret_env: Option<String>,
}

/// `sharing detach`.
#[derive(Debug, Args)]
pub struct SharingDetachArgs {
    /// The organisation.
    pub organization: String,
    /// Delete the exports and connections and revoke the recipient tokens that read
    /// through the attachment, after confirming.
    #[arg(long)]
    pub with_dependents: bool,
    /// Confirm without asking.
    #[arg(long)]
    pub yes: bool,
}

/// `sharing credentials`.
#[derive(Debug, Args)]
pub struct SharingCredentialsArgs {
    /// The group: `reader` or `contributor`.
    pub group: String,
    /// The file to create, in the AWS shared credentials format.
    #[arg(long, value_name = "PATH")]
    pub output: PathBuf,
    /// The environment [default: the project file's].
    #[arg(long, short = 'e')]
    pub environment: Option<String>,
}

/// `sharing enable`.
#[derive(Debug, Args)]
pub struct SharingEnableArgs {
    /// The environment [default: the project file's].
    #[arg(long, short = 'e')]
    pub environment: Option<String>,
    /// The Reader group [default: `<environment>-readers`].
    #[arg(long, value_name = "GROUP")]
    pub reader_group: Option<String>,
    /// The Contributor group [default: `<environment>-contributors`].
    #[arg(long, value_name = "GROUP")]
    pub contributor_group: Option<String>,
    /// What the Reader group is on the storage: an existing Unix group (local lake), an
    /// identity name (S3) [default on S3: `lakecdp-<group>`].
    #[arg(long, value_name = "ID")]
    pub storage_reader: Option<String>,
    /// What the Contributor group is on the storage.
    #[arg(long, value_name = "ID")]
    pub storage_contributor: Option<String>,
}

/// `sharing recipient`.
#[derive(Debug, Args)]
pub struct SharingRecipientArgs {
    /// The recipient's name (its token's).
    pub name: String,
    /// The environment [default: the project file's].
    #[arg(long, short = 'e')]
    pub environment: Option<String>,
    /// Its lifetime, e.g. `90d` [default: never expires].
    #[arg(long)]
    pub expires: Option<String>,
    /// Write a Delta Sharing profile file (created 0600) for the recipient, naming the
    /// sharing endpoint at this URL (e.g. `https://cdp.example.com/delta-sharing`),
    /// instead of printing the token.
    #[arg(long, value_name = "PATH", requires = "endpoint")]
    pub profile: Option<PathBuf>,
    /// The sharing endpoint's URL, for --profile.
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
}

/// `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// On the first start (no administrator yet): the first administrator's name.
    #[arg(long, default_value = "admin")]
    pub admin_name: String,
    /// On the first start: a file holding the first administrator's password, or `-`
    /// for stdin (never on the command line).
    #[arg(long, value_name = "PATH")]
    pub admin_password_file: Option<PathBuf>,
    /// Serve plain HTTP on an address other than loopback (put TLS in front of it).
    #[arg(long)]
    pub insecure_http: bool,
    /// A PEM certificate chain to serve HTTPS with (with --tls-key).
    #[arg(long, value_name = "PATH", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "PATH", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// This instance's name among the servers sharing a PostgreSQL catalog
    /// [default: a new random one].
    #[arg(long)]
    pub instance: Option<String>,
    /// Do not take part in running the scheduler (one instance of those sharing the
    /// catalog runs it).
    #[arg(long)]
    pub no_scheduler: bool,
    /// The folder under which local source files, local lakes and local export folders
    /// may be; revisions applied over the API resolve relative paths in it. Without it
    /// the server refuses every local path.
    #[arg(long, value_name = "DIR")]
    pub data_root: Option<PathBuf>,
    /// The address clients reach this server at, when a proxy stands in front of it
    /// (`https://cdp.example.com`): the file URLs of the sharing endpoint start with it
    /// [default: the scheme and Host of each request].
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
}

/// `user ...`.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user who signs in with a password.
    Add(UserAddArgs),
    /// List users and applications.
    List,
    /// Disable a user: its sessions end and it cannot sign in.
    Disable(UserNameArgs),
    /// Enable a disabled user.
    Enable(UserNameArgs),
    /// Set a new password; the user's sessions end.
    ResetPassword(UserPasswordArgs),
}

/// `user add`.
#[derive(Debug, Args)]
pub struct UserAddArgs {
    /// The user's name.
    pub name: String,
    /// Where the password is read: `stdin`, `env:VAR` or `file:PATH`.
    #[arg(long, default_value = "stdin", value_name = "SOURCE")]
    pub password_from: String,
    /// Make the user a catalog administrator (users, groups, the whole audit log).
    #[arg(long)]
    pub administrator: bool,
}

/// A user's name.
#[derive(Debug, Args)]
pub struct UserNameArgs {
    /// The user's name.
    pub name: String,
}

/// `user reset-password`.
#[derive(Debug, Args)]
pub struct UserPasswordArgs {
    /// The user's name.
    pub name: String,
    /// Where the password is read: `stdin`, `env:VAR` or `file:PATH`.
    #[arg(long, default_value = "stdin", value_name = "SOURCE")]
    pub password_from: String,
}

/// `token ...`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; its value is printed once.
    Create(TokenCreateArgs),
    /// List an environment's tokens (never their values).
    List(TokenEnvArgs),
    /// Revoke a token: refused from the next request on.
    Revoke(TokenRevokeArgs),
}

/// `token create`.
#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    /// The token's name.
    pub name: String,
    /// The environment it acts in [default: the project file's].
    #[arg(long, short = 'e')]
    pub environment: Option<String>,
    /// The role it acts with: viewer, contributor or admin.
    #[arg(long)]
    pub role: String,
    /// Its lifetime, e.g. `90d`, `12h` [default: never expires].
    #[arg(long)]
    pub expires: Option<String>,
}

/// An environment.
#[derive(Debug, Args)]
pub struct TokenEnvArgs {
    /// The environment [default: the project file's].
    #[arg(long, short = 'e')]
    pub environment: Option<String>,
}

/// `token revoke`.
#[derive(Debug, Args)]
pub struct TokenRevokeArgs {
    /// The token's name.
    pub name: String,
    /// The environment [default: the project file's].
    #[arg(long, short = 'e')]
    pub environment: Option<String>,
}

/// `group ...`.
#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Create a group.
    Create(GroupArgs),
    /// Delete a group with its memberships and roles.
    Delete(GroupArgs),
    /// Add a user to a group.
    AddMember(GroupMemberArgs),
    /// Remove a user from a group.
    RemoveMember(GroupMemberArgs),
    /// List groups and their members.
    List,
}

/// A group.
#[derive(Debug, Args)]
pub struct GroupArgs {
    /// The group's name.
    pub name: String,
}

/// A group and a member.
#[derive(Debug, Args)]
pub struct GroupMemberArgs {
    /// The group.
    pub group: String,
    /// The user.
    pub member: String,
}

/// `audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only this environment's entries.
    #[arg(long, short = 'e')]
    pub environment: Option<String>,
    /// Only this actor's entries.
    #[arg(long)]
    pub actor: Option<String>,
    /// How many entries, newest first.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
}

/// `segment ...`.
#[derive(Debug, Subcommand)]
pub enum SegmentCommand {
    /// The declared segments and their members in the last published run.
    List,
    /// One segment: its rules, and its member count run after run.
    Show(SegmentShowArgs),
    /// Count and sample the customers a condition selects, without saving anything,
    /// e.g. `lakecdp segment preview "City = 'Seattle' and Orders.Amount > 100"`.
    Preview(SegmentPreviewArgs),
}

/// `segment show`.
#[derive(Debug, Args)]
pub struct SegmentShowArgs {
    /// The segment's name.
    pub name: String,
}

/// `segment preview`.
#[derive(Debug, Args)]
pub struct SegmentPreviewArgs {
    /// The condition: `Column op value` joined with and/or; `Table.Column` for a table
    /// other than Customer.
    pub condition: String,
    /// How many customers to show.
    #[arg(long, default_value_t = 10)]
    pub sample: usize,
}

/// `role ...`.
#[derive(Debug, Subcommand)]
pub enum RoleCommand {
    /// Give a principal a role (admin, contributor, viewer), or `none` to remove it.
    Set(RoleSetArgs),
    /// List the principals and their roles.
    List,
}

/// `role set`.
#[derive(Debug, Args)]
pub struct RoleSetArgs {
    /// The principal, e.g. alice@contoso.com.
    pub principal: String,
    /// admin, contributor, viewer or none.
    pub role: String,
}

/// `connection ...`.
#[derive(Debug, Subcommand)]
pub enum ConnectionCommand {
    /// Add a connection (Admins). Secrets are read from a variable, a file or stdin,
    /// never from the command line, and sealed in the catalog.
    Add(ConnectionAddArgs),
    /// List the connections you may use (name and type).
    List,
    /// Show a connection's settings (Admins); secrets are masked.
    Show(ConnectionNameArg),
    /// Change a connection's settings or who may use it (Admins).
    Edit(ConnectionEditArgs),
    /// Check that the connection reaches its server and has the permissions exports need.
    Test(ConnectionNameArg),
    /// Replace a connection's secret (Admins); nothing else changes.
    Rotate(ConnectionRotateArgs),
    /// Delete a connection (Admins); refused while exports use it.
    Delete(ConnectionNameArg),
}

/// A connection named on the command line.
#[derive(Debug, Args)]
pub struct ConnectionNameArg {
    /// The connection's name.
    pub name: String,
}

/// `connection add`.
#[derive(Debug, Args)]
pub struct ConnectionAddArgs {
    /// The connection's display name.
    pub name: String,
    /// postgresql, adls, s3 or local.
    #[arg(long = "type", value_name = "TYPE")]
    pub kind: String,
    /// A setting, KEY=VALUE (repeatable): postgresql host, port, user, sslmode,
    /// sslrootcert, schemas (the database.schema pairs exports may use); adls
    /// account, container, endpoint, emulator; s3 bucket, region, endpoint, prefix,
    /// access_key_id; local path.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub settings: Vec<String>,
    /// A secret, NAME=env:VAR, NAME=file:PATH or NAME=stdin (repeatable): postgresql
    /// password, adls account_key, s3 secret_access_key.
    #[arg(long = "secret", value_name = "NAME=SOURCE")]
    pub secrets: Vec<String>,
    /// Who may use it in exports: admins (default) or admins-and-contributors.
    #[arg(long, default_value = "admins")]
    pub usable_by: String,
}

/// `connection edit`.
#[derive(Debug, Args)]
pub struct ConnectionEditArgs {
    /// The connection's name.
    pub name: String,
    /// A setting to set, KEY=VALUE (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub settings: Vec<String>,
    /// A setting to remove (repeatable).
    #[arg(long = "unset", value_name = "KEY")]
    pub unset: Vec<String>,
    /// Who may use it: admins or admins-and-contributors.
    #[arg(long)]
    pub usable_by: Option<String>,
    /// A new display name.
    #[arg(long)]
    pub rename: Option<String>,
}

/// `connection rotate`.
#[derive(Debug, Args)]
pub struct ConnectionRotateArgs {
    /// The connection's name.
    pub name: String,
    /// The new secret, NAME=env:VAR, NAME=file:PATH or NAME=stdin; NAME may be left out
    /// when the connection has one secret.
    #[arg(long = "secret", value_name = "[NAME=]SOURCE")]
    pub secret: String,
}

/// `export ...`.
#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Add an export of selected tables through a connection you may use.
    Add(ExportAddArgs),
    /// Change an export's tables, connection, database, schema or schedule.
    Edit(ExportEditArgs),
    /// List the exports with their last runs.
    List,
    /// Show an export: its tables, target, schedule and last runs.
    Show(ExportNameArg),
    /// Run one export now, or with --all every export whose schedule is not off.
    Run(ExportRunArgs),
    /// Delete an export (what it wrote stays where it is).
    Delete(ExportNameArg),
}

/// An export named on the command line.
#[derive(Debug, Args)]
pub struct ExportNameArg {
    /// The export's name.
    pub name: String,
}

/// `export add`.
#[derive(Debug, Args)]
pub struct ExportAddArgs {
    /// The export's display name.
    pub name: String,
    /// The connection it sends through.
    #[arg(long)]
    pub connection: String,
    /// A table, <process folder>/<Entity> (repeatable), e.g. Unification/Customer or
    /// DataIngestion/Crm/Contacts.
    #[arg(long = "table", value_name = "TABLE", required = true)]
    pub tables: Vec<String>,
    /// PostgreSQL: the database (created if missing) [default: the environment's name].
    #[arg(long)]
    pub database: Option<String>,
    /// PostgreSQL: the schema [default: customerinsights].
    #[arg(long)]
    pub schema: Option<String>,
    /// on-refresh (default), off, "daily 02:00 Europe/Paris" or "weekly mon,thu 06:00 UTC".
    #[arg(long, default_value = "on-refresh")]
    pub schedule: String,
}

/// `export edit`.
#[derive(Debug, Args)]
pub struct ExportEditArgs {
    /// The export's name.
    pub name: String,
    /// Another connection.
    #[arg(long)]
    pub connection: Option<String>,
    /// A table to add (repeatable).
    #[arg(long = "add-table", value_name = "TABLE")]
    pub add_tables: Vec<String>,
    /// A table to stop exporting (repeatable); what was exported stays untouched.
    #[arg(long = "remove-table", value_name = "TABLE")]
    pub remove_tables: Vec<String>,
    /// PostgreSQL: a new database name (created on the next run; the old one is kept).
    #[arg(long)]
    pub database: Option<String>,
    /// PostgreSQL: a new schema.
    #[arg(long)]
    pub schema: Option<String>,
    /// A new schedule.
    #[arg(long)]
    pub schedule: Option<String>,
}

/// `export run`.
#[derive(Debug, Args)]
pub struct ExportRunArgs {
    /// The export to run.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub name: Option<String>,
    /// Run every export whose schedule is not off.
    #[arg(long)]
    pub all: bool,
}

/// `vault ...`.
#[derive(Debug, Subcommand)]
pub enum VaultCommand {
    /// Re-seal every secret under a new master key. The current key comes from
    /// LAKECDP_MASTER_KEY or LAKECDP_MASTER_KEY_FILE; afterwards use the new one.
    Rotate(VaultRotateArgs),
    /// Write a new random master key to a file only its owner may read.
    NewKey(VaultNewKeyArgs),
}

/// `vault new-key`.
#[derive(Debug, Args)]
pub struct VaultNewKeyArgs {
    /// The key file to create (never overwritten).
    #[arg(long)]
    pub out: PathBuf,
}

/// `vault rotate`.
#[derive(Debug, Args)]
pub struct VaultRotateArgs {
    /// Where the new key is: env:VAR or file:PATH.
    #[arg(long, value_name = "SOURCE")]
    pub new_key: String,
}

/// `refresh`.
#[derive(Debug, Default, Args)]
pub struct RefreshArgs {
    /// Run only this process and what depends on it: `ingest` (every source),
    /// `ingest:<Source>`, `unify`, `activities` or `export:<Name>`; what it depends on is
    /// taken as it last ran.
    #[arg(long, value_name = "PROCESS")]
    pub only: Option<String>,
    /// Only this source's ingestion and what depends on it (as `--only ingest:<Source>`).
    #[arg(long)]
    pub source: Option<String>,
    /// Apply the project file first: create the environment after its checks pass, or
    /// update it (as `lakecdp apply`).
    #[arg(long)]
    pub apply: bool,
    /// Load sources even if nothing changed since their last load.
    #[arg(long)]
    pub force: bool,
    /// One-time full refresh: tables in the incremental layout start again from
    /// FullData/ instead of their last output (implies --force).
    #[arg(long)]
    pub full: bool,
    /// With --full: process incremental hour folders from this UTC date or time on
    /// (2026-11-01 or 2026-11-01T06:00); earlier ones are skipped.
    #[arg(long, requires = "full", value_name = "DATE", value_parser = parse_from)]
    pub from: Option<chrono::DateTime<chrono::Utc>>,
    /// Match every record in unification, not only the records that changed since the
    /// last run and those they can reach.
    #[arg(long)]
    pub full_unify: bool,
    /// With --apply: create the container (or bucket) if it is missing.
    #[arg(long, requires = "apply")]
    pub create_container: bool,
    /// With --apply: re-attach a lake folder that already belongs to an environment.
    #[arg(long, requires = "apply")]
    pub adopt: bool,
}

/// A UTC date (midnight) or date and time.
fn parse_from(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    use chrono::{NaiveDate, NaiveDateTime, TimeZone, Utc};
    if let Ok(t) = text.parse::<chrono::DateTime<Utc>>() {
        return Ok(t);
    }
    for format in ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(Utc.from_utc_datetime(&t));
        }
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| Utc.from_utc_datetime(&t))
        .ok_or_else(|| {
            format!("`{text}` is not a date (2026-11-01) or UTC time (2026-11-01T06:00)")
        })
}

/// Processes of a refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProcessKind {
    /// Load the data sources into DataIngestion/.
    Ingest,
    /// Unify the declared tables into customer profiles in Unification/.
    Unify,
}

/// `unify ...`.
#[derive(Debug, Subcommand)]
pub enum UnifyCommand {
    /// The source records of a profile, the pairs and rules that joined them, its merged
    /// row and its id history.
    Explain(ExplainArgs),
    /// Run deduplication and matching on the first records of each table and print the
    /// matches per rule, without publishing anything.
    Preview(PreviewArgs),
    /// Train the applied revision's match models anew and store them in the lake, where
    /// later refreshes find them (they reuse a stored model until this is run or the
    /// model's declaration changes).
    Train(TrainArgs),
}

/// `unify train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Train on the first N records of each table only (default: all of them).
    #[arg(long, value_name = "N")]
    pub sample: Option<usize>,
}

/// `unify explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The CustomerId.
    pub customer_id: String,
}

/// `unify preview`.
#[derive(Debug, Args)]
pub struct PreviewArgs {
    /// Records of each table to use.
    #[arg(long, default_value_t = 10_000)]
    pub sample: usize,
}

/// `source ...`.
#[derive(Debug, Subcommand)]
pub enum SourceCommand {
    /// List the project file's sources and their tables.
    List,
    /// Show one source's tables with their settings.
    Show(SourceArg),
    /// Infer the schema of a source's tables from a sample and print it as a `schema`
    /// declaration to paste into the project file.
    Inspect(InspectArgs),
    /// Add a table to the project file: a new source, or a new table of an existing one.
    Add(AddArgs),
    /// Remove a source (or one of its tables) from the project file.
    Remove(RemoveArgs),
}

/// `source add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// Source name (created when the project file has no such source).
    pub name: String,
    /// Table name (default: the source name).
    #[arg(long)]
    pub table: Option<String>,
    /// A local path or glob (relative to the project folder), an s3://, abfss:// or
    /// az:// URL, a CDM folder's model.json or *.manifest.cdm.json, or a Delta table's
    /// folder.
    #[arg(long)]
    pub location: String,
    /// File format.
    #[arg(long, value_enum)]
    pub format: FormatArg,
    /// Primary key column (needed by unification and activities).
    #[arg(long)]
    pub primary_key: Option<String>,
    /// Column holding when a row last changed.
    #[arg(long)]
    pub last_updated: Option<String>,
    /// The location is a folder with FullData/ and IncrementalData/ (needs
    /// --primary-key and --last-updated).
    #[arg(long)]
    pub incremental: bool,
    /// Entity to read (CDM folders).
    #[arg(long)]
    pub entity: Option<String>,
    /// CSV field delimiter.
    #[arg(long)]
    pub delimiter: Option<String>,
    /// CSV files have no header line.
    #[arg(long)]
    pub no_header: bool,
    /// Description of a new source.
    #[arg(long)]
    pub description: Option<String>,
    /// Read a sample now and declare the inferred schema in the project file.
    #[arg(long)]
    pub infer_schema: bool,
}

/// Formats on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    Csv,
    Parquet,
    Jsonl,
    Cdm,
    Delta,
}

impl From<FormatArg> for lakecdp_core::SourceFormat {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Csv => Self::Csv,
            FormatArg::Parquet => Self::Parquet,
            FormatArg::Jsonl => Self::Jsonl,
            FormatArg::Cdm => Self::Cdm,
            FormatArg::Delta => Self::Delta,
        }
    }
}

/// `source remove`.
#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// Source name.
    pub name: String,
    /// Remove only this table.
    #[arg(long)]
    pub table: Option<String>,
}

/// A source named on the command line.
#[derive(Debug, Args)]
pub struct SourceArg {
    /// Source name.
    pub name: String,
}

/// `source inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Source name.
    pub name: String,
    /// Only this table.
    #[arg(long)]
    pub table: Option<String>,
}

/// `init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The folder to create (default: the project folder).
    pub dir: Option<PathBuf>,
    /// The environment name (default: the folder's name).
    #[arg(long)]
    pub name: Option<String>,
    /// The storage kind of the scaffolded configuration.
    #[arg(long, value_enum, default_value_t = StorageKind::Local)]
    pub storage: StorageKind,
    /// Overwrite an existing lakecdp.toml.
    #[arg(long)]
    pub force: bool,
}

/// Storage kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StorageKind {
    /// A local folder.
    Local,
    /// Azure Data Lake Storage Gen2.
    Adls,
    /// S3 or an S3-compatible store.
    S3,
}

/// `env ...`.
#[derive(Debug, Subcommand)]
pub enum EnvCommand {
    /// Run the prerequisite checks of an environment's storage and print them.
    Check(CheckArgs),
    /// Create the project file's environment after its checks pass.
    Create(CreateArgs),
    /// List environments.
    List,
    /// Show an environment (secrets are references and never printed).
    Show(NameArg),
    /// Change an environment's settings; the checks run before anything is saved.
    Update(UpdateArgs),
    /// Delete an environment from the catalog (its lake data stays unless --purge).
    Delete(DeleteArgs),
    /// Secrets of the environment's storage sealed in the catalog (refer to them as
    /// `vault:NAME`).
    #[command(subcommand)]
    Secret(EnvSecretCommand),
}

/// `env secret ...`.
#[derive(Debug, Subcommand)]
pub enum EnvSecretCommand {
    /// Seal a secret in the catalog under NAME (Admins).
    Set(EnvSecretSetArgs),
    /// List the sealed secrets (names only).
    List(NameArg),
    /// Remove a sealed secret the storage no longer uses.
    Remove(EnvSecretNameArgs),
}

/// `env secret set`.
#[derive(Debug, Args)]
pub struct EnvSecretSetArgs {
    /// The secret's name, e.g. account_key.
    pub name: String,
    /// Where to read it now: env:VAR, file:PATH or stdin.
    #[arg(long, value_name = "SOURCE")]
    pub from: String,
    /// The environment (default: the project file's).
    #[arg(long = "env")]
    pub env: Option<String>,
}

/// `env secret remove`.
#[derive(Debug, Args)]
pub struct EnvSecretNameArgs {
    /// The secret's name.
    pub name: String,
    /// The environment (default: the project file's).
    #[arg(long = "env")]
    pub env: Option<String>,
}

/// An environment named on the command line.
#[derive(Debug, Args)]
pub struct NameArg {
    /// Environment name or id (default: the project file's environment).
    pub name: Option<String>,
}

/// `env check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Environment name or id; without it, the project file's environment is checked.
    pub name: Option<String>,
    /// Create the container (or bucket) if it is missing.
    #[arg(long)]
    pub create_container: bool,
}

/// `env create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Create the container (or bucket) if it is missing.
    #[arg(long)]
    pub create_container: bool,
    /// Re-attach a lake folder that already belongs to an environment (of this catalog
    /// or another); without it such a folder is refused.
    #[arg(long)]
    pub adopt: bool,
}

/// `revisions`.
#[derive(Debug, Args)]
pub struct RevisionsArgs {
    /// The environment [default: the project file's].
    #[arg(long = "env")]
    pub environment: Option<String>,
}

/// `export-config`.
#[derive(Debug, Args)]
pub struct ExportConfigArgs {
    /// The revision [default: the applied one].
    #[arg(long)]
    pub revision: Option<u32>,
    /// Write it to this file (never overwritten) instead of standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Create the container (or bucket) if it is missing.
    #[arg(long)]
    pub create_container: bool,
    /// Re-attach a lake folder that already belongs to an environment (of this catalog
    /// or another); without it such a folder is refused.
    #[arg(long)]
    pub adopt: bool,
}

/// `env update`.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Environment name or id.
    pub name: String,
    /// New display name.
    #[arg(long)]
    pub rename: Option<String>,
    /// New region ("" clears it).
    #[arg(long)]
    pub region: Option<String>,
    /// Partition format of process outputs.
    #[arg(long, value_enum)]
    pub output_format: Option<OutputFormat>,
    /// How many runs of each process the lake keeps.
    #[arg(long)]
    pub retention_runs: Option<u32>,
    /// ADLS account key reference: env:VAR or file:PATH.
    #[arg(long, value_name = "REF")]
    pub account_key: Option<String>,
    /// ADLS SAS token reference: env:VAR or file:PATH.
    #[arg(long, value_name = "REF")]
    pub sas_token: Option<String>,
    /// ADLS service principal client secret reference: env:VAR or file:PATH.
    #[arg(long, value_name = "REF")]
    pub client_secret: Option<String>,
    /// S3 access key id reference: env:VAR or file:PATH.
    #[arg(long, value_name = "REF")]
    pub access_key_id: Option<String>,
    /// S3 secret access key reference: env:VAR or file:PATH.
    #[arg(long, value_name = "REF")]
    pub secret_access_key: Option<String>,
    /// Save even if the prerequisite checks fail.
    #[arg(long)]
    pub force: bool,
}

/// Partition formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// CSV partitions (every model.json reader understands them).
    Csv,
    /// Parquet partitions (faster; also declared in default.manifest.cdm.json).
    Parquet,
}

/// `env delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Environment name or id.
    pub name: String,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Also delete the environment's lake folder ci_<id>/ and everything in it.
    #[arg(long)]
    pub purge: bool,
}

/// `runs`.
#[derive(Debug, Args)]
pub struct RunsArgs {
    /// Environment name or id (default: the project file's environment).
    #[arg(long = "env")]
    pub environment: Option<String>,
    /// How many runs to show, newest first.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// `show ID`: one run, and for a refresh its processes as a tree.
    #[command(subcommand)]
    pub command: Option<RunsCommand>,
}

/// `runs ...`.
#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// One run; a refresh with each of its processes, their durations, rows and errors.
    Show(RunShowArgs),
}

/// `runs show`.
#[derive(Debug, Args)]
pub struct RunShowArgs {
    /// The run's id (as `lakecdp runs` lists it).
    pub id: String,
}
