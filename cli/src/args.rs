//! The options of the commands that run the engine (`sync`, `plan`, `check`, `restore`,
//! `runs`), as clap parses them: the source, the sinks (LDAP and Graph), the run's own
//! options. Nothing here opens anything: `open` turns these into sources and sinks.

use std::path::PathBuf;

use clap::{ArgMatches, Args, Command, FromArgMatches, ValueEnum};
use userphoto::normalize::{CropMode, Profile};

/// The crop strategies (`--crop`).
#[derive(Copy, Clone, Debug, Default, ValueEnum)]
pub(crate) enum CropName {
    /// A head-and-shoulders square around the main face; attention when there is none.
    #[default]
    Face,
    /// The largest square, on what stands out (edges, skin tones, saturation).
    Attention,
    /// The largest centred square.
    Centre,
}

impl CropName {
    /// The name as `--crop` takes it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Face => "face",
            Self::Attention => "attention",
            Self::Centre => "centre",
        }
    }

    pub(crate) fn mode(self) -> CropMode {
        match self {
            Self::Face => CropMode::Face,
            Self::Attention => CropMode::Attention,
            Self::Centre => CropMode::Centre,
        }
    }
}

#[derive(Copy, Clone, Debug, ValueEnum)]
pub(crate) enum ProfileName {
    AdThumbnail,
    AdLarge,
    Graph,
}

impl ProfileName {
    pub(crate) fn profile(self) -> Profile {
        match self {
            Self::AdThumbnail => Profile::ad_thumbnail(),
            Self::AdLarge => Profile::ad_large(),
            Self::Graph => Profile::graph(),
        }
    }
}

/// Where photos come from and how keys are read.
#[derive(Args, Debug)]
#[command(next_help_heading = "Source")]
pub struct SourceArgs {
    /// The photos: `folder:DIR` (files named by user key), `csv:FILE` (a `key,path[,withheld]`
    /// manifest), `ldap[:ATTRIBUTE]` (a directory's `thumbnailPhoto` or another attribute,
    /// through the `--ldap-url` options; keys from `--match`) or `graph` (Microsoft 365's
    /// profile photos, through the `--tenant`/`--client-id`/credential options of
    /// `--sink graph`; keys from `--match`: upn, mail, id or employeeId).
    #[arg(long, required = true)]
    pub(crate) source: Option<String>,
    /// Folder source: look in subfolders too.
    #[arg(long)]
    pub(crate) recursive: bool,
    /// Folder source: a regex whose first capture group (or `key` group) is the key, matched
    /// against the file name.
    #[arg(long)]
    pub(crate) key_regex: Option<String>,
    /// CSV source: the field separator, `,`, `;`, `tab` or one character (default: found
    /// from the header line, which must name a `key` and a `path` column).
    #[arg(long)]
    pub(crate) csv_delimiter: Option<String>,
}

/// How to reach a directory over LDAP (`--sink ad`, `--source ldap`). The password is read
/// from an environment variable or a file, never from the command line.
#[derive(Args, Debug)]
#[command(next_help_heading = "Active Directory and LDAP (--sink ad, --source ldap)")]
pub struct LdapArgs {
    /// The directory: `ldaps://host[:636]`, or `ldap://host[:389]` with `--starttls`.
    #[arg(long)]
    pub(crate) ldap_url: Option<String>,
    /// Upgrade an `ldap://` connection with StartTLS before binding.
    #[arg(long)]
    pub(crate) starttls: bool,
    /// Trust only the CA certificates in this PEM file (default: the system's roots).
    #[arg(long)]
    pub(crate) ca_cert: Option<PathBuf>,
    /// Accept any server certificate. Insecure: anyone on the path can read the password.
    #[arg(long)]
    pub(crate) insecure_skip_tls_verify: bool,
    /// Allow `ldap://` without StartTLS (AD refuses a simple bind over it anyway).
    #[arg(long)]
    pub(crate) allow_plain_ldap: bool,
    /// Bind as this DN, UPN (`svc@example.com`) or down-level name (`EXAMPLE\svc`).
    #[arg(long)]
    pub(crate) bind_dn: Option<String>,
    /// The environment variable that holds the bind password.
    #[arg(long, conflicts_with = "bind_password_file")]
    pub(crate) bind_password_env: Option<String>,
    /// The file that holds the bind password (one trailing line break is ignored).
    #[arg(long)]
    pub(crate) bind_password_file: Option<PathBuf>,
    /// Bind with Kerberos (GSSAPI) from the credentials cache (`kinit`) instead.
    #[cfg(feature = "gssapi")]
    #[arg(long, conflicts_with = "bind_dn")]
    pub(crate) gssapi: bool,
    /// The host in the Kerberos service principal `ldap/HOST` (default: the URL's host).
    #[cfg(feature = "gssapi")]
    #[arg(long)]
    pub(crate) gssapi_host: Option<String>,
    /// Where users are searched (subtree).
    #[arg(long)]
    pub(crate) base_dn: Option<String>,
    /// The filter that selects users (default `(&(objectCategory=person)(objectClass=user))`).
    #[arg(long)]
    pub(crate) ldap_filter: Option<String>,
    /// Seconds each LDAP operation may take.
    #[arg(long, default_value_t = 30)]
    pub(crate) ldap_timeout: u64,
    /// Connections to the directory (each carries many operations at once).
    #[arg(long, default_value_t = 1)]
    pub(crate) ldap_connections: usize,
}

/// Where photos go: the sinks, how keys match, and how to reach AD and Graph. `--help` lists
/// the AD and Graph options last, after the run's own: they are declared by [`Connections`]
/// (flattened at the end of each command's options) and read into `ldap` and `graph` here.
#[derive(Debug)]
pub struct SinkArgs {
    pub(crate) sinks: Vec<String>,
    pub(crate) match_attr: Option<String>,
    pub(crate) attribute: String,
    pub(crate) ldap: LdapArgs,
    pub(crate) graph: GraphArgs,
}

/// The options of [`SinkArgs`] shown under "Directories".
#[derive(Args, Debug)]
#[command(next_help_heading = "Directories")]
struct SinkCore {
    /// The directory: `ldif:EXPORT.ldif` (an LDIF export of the users, from `ldapsearch` or
    /// `ldifde`; changes go to `--out`) or `ad` (Active Directory over LDAP: see
    /// `--ldap-url`; the default profile is `ad-thumbnail`, `--profile ad-large` writes 648 px)
    /// or `graph` (Microsoft 365 through Microsoft Graph: see `--tenant`; the default profile
    /// is `graph`) or `folder:DIR` (a photo export: `DIR/<key>.jpg` per user and
    /// `DIR/manifest.csv`; the default profile is `graph`; a key that is not a safe file name
    /// fails that user). Repeat it to write several directories from one decode.
    #[arg(long = "sink", required = true)]
    pub(crate) sinks: Vec<String>,
    /// The directory attribute that keys are matched against (sAMAccountName,
    /// userPrincipalName (upn), mail, employeeID, employeeNumber, objectGUID, or any
    /// attribute; for Graph also `id`). Default: sAMAccountName, or upn when the only sink is
    /// `graph`.
    #[arg(long = "match")]
    pub(crate) match_attr: Option<String>,
    /// The photo attribute.
    #[arg(long, default_value = "thumbnailPhoto")]
    pub(crate) attribute: String,
}

impl FromArgMatches for SinkArgs {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        Self::from_arg_matches_mut(&mut m.clone())
    }

    fn from_arg_matches_mut(m: &mut ArgMatches) -> Result<Self, clap::Error> {
        let core = SinkCore::from_arg_matches_mut(m)?;
        Ok(Self {
            sinks: core.sinks,
            match_attr: core.match_attr,
            attribute: core.attribute,
            ldap: LdapArgs::from_arg_matches_mut(m)?,
            graph: GraphArgs::from_arg_matches_mut(m)?,
        })
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        self.update_from_arg_matches_mut(&mut m.clone())
    }

    fn update_from_arg_matches_mut(&mut self, m: &mut ArgMatches) -> Result<(), clap::Error> {
        let mut core = SinkCore {
            sinks: std::mem::take(&mut self.sinks),
            match_attr: self.match_attr.take(),
            attribute: std::mem::take(&mut self.attribute),
        };
        core.update_from_arg_matches_mut(m)?;
        (self.sinks, self.match_attr, self.attribute) =
            (core.sinks, core.match_attr, core.attribute);
        self.ldap.update_from_arg_matches_mut(m)?;
        self.graph.update_from_arg_matches_mut(m)
    }
}

impl Args for SinkArgs {
    fn augment_args(cmd: Command) -> Command {
        SinkCore::augment_args(cmd)
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        SinkCore::augment_args_for_update(cmd)
    }
}

/// The AD and Graph options of [`SinkArgs`], declared where this is flattened (after a
/// command's own options, so that `--help` shows them last under their own headings); their
/// values are read by [`SinkArgs`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Connections;

impl FromArgMatches for Connections {
    fn from_arg_matches(_: &ArgMatches) -> Result<Self, clap::Error> {
        Ok(Self)
    }

    fn update_from_arg_matches(&mut self, _: &ArgMatches) -> Result<(), clap::Error> {
        Ok(())
    }
}

impl Args for Connections {
    fn augment_args(cmd: Command) -> Command {
        GraphArgs::augment_args(LdapArgs::augment_args(cmd))
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        GraphArgs::augment_args_for_update(LdapArgs::augment_args_for_update(cmd))
    }
}

impl SinkArgs {
    /// `--match`, or the default for the sinks given.
    pub(crate) fn match_name(&self) -> &str {
        match &self.match_attr {
            Some(m) => m,
            None if self
                .sinks
                .iter()
                .all(|s| s == "graph" || s.starts_with("graph:")) =>
            {
                "upn"
            }
            None => "sAMAccountName",
        }
    }
}

/// `sync` and `plan` options.
#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub(crate) source: SourceArgs,
    #[command(flatten)]
    pub(crate) sink: SinkArgs,
    /// The rendition profile (default: the sink's, `ad-thumbnail` for AD and LDIF, `graph`
    /// for Graph and folders).
    #[arg(long, value_enum, help_heading = "Run")]
    pub(crate) profile: Option<ProfileName>,
    /// Where the square goes: `face` (a head-and-shoulders square around the main face,
    /// attention when there is none), `attention` or `centre`. Changing it makes every
    /// rendition again (the state file records the crop).
    #[arg(long, value_enum, default_value_t = CropName::Face, help_heading = "Run")]
    pub(crate) crop: CropName,
    /// Plan and report, change nothing.
    #[arg(long, help_heading = "Run")]
    pub(crate) dry_run: bool,
    /// The LDIF change file to write (`ldif:` sinks).
    #[arg(long, help_heading = "Output")]
    pub(crate) out: Option<PathBuf>,
    /// Write the JSON report here.
    #[arg(long, help_heading = "Output")]
    pub(crate) report: Option<PathBuf>,
    /// The state store (one file, created if missing): unchanged users are not decoded
    /// again, and an interrupted run resumes.
    #[arg(long, help_heading = "Run")]
    pub(crate) state: Option<PathBuf>,
    /// Keep every photo that is replaced or removed here (default: `userphoto-backup`).
    #[arg(long, default_value = "userphoto-backup", help_heading = "Run")]
    pub(crate) backup_dir: PathBuf,
    /// Do not keep backups.
    #[arg(long, conflicts_with = "backup_dir", help_heading = "Run")]
    pub(crate) no_backup: bool,
    /// Remove the photos of users the source no longer lists.
    #[arg(long, help_heading = "Run")]
    pub(crate) remove_leavers: bool,
    /// Keep the photos of people who withdrew consent (they are removed by default).
    #[arg(long, help_heading = "Run")]
    pub(crate) keep_withheld: bool,
    /// Calls in flight per sink (at least 1).
    #[arg(long, default_value_t = 4, value_parser = at_least_one, help_heading = "Run")]
    pub(crate) concurrency: usize,
    /// Photos normalized at once (default: one per core).
    #[arg(long, default_value_t = 0, help_heading = "Run")]
    pub(crate) threads: usize,
    /// Stop the run after this many writes in a row to one sink failed for reasons that are
    /// not the users' own (an account with no write rights, a directory gone); one user's
    /// refusal never stops a run. 0: never stop.
    #[arg(long, default_value_t = userphoto::sync::DEFAULT_MAX_CONSECUTIVE_FAILURES, help_heading = "Run")]
    pub(crate) max_consecutive_failures: usize,
    /// Print the report as one JSON object on stdout instead of the human summary.
    #[arg(long, help_heading = "Output")]
    pub(crate) json: bool,
    /// Write a review page into this folder (`DIR/index.html`, images in `DIR/img`): per
    /// change the photo the directory holds today beside the new one, the source photo with
    /// its crop square, warnings and failures. Open it from disk in any browser; nothing is
    /// fetched from the network. With `sync`, the page shows what the run did; with
    /// `audit`, each user's audit state beside the photos.
    #[arg(long, value_name = "DIR", help_heading = "Output")]
    pub(crate) review: Option<PathBuf>,
    /// Show unchanged users on the review page too (with `audit`: the users in sync).
    #[arg(long, help_heading = "Output")]
    pub(crate) review_all: bool,
    /// Write the plan and what it was based on (per user the source photo's fingerprint,
    /// the rendition's hash and the directory photo's version; the sinks, profiles and crop)
    /// to this JSON file, to approve and then apply with `sync --plan`.
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    pub(crate) save_plan: Option<PathBuf>,
    /// Apply exactly this approved plan (a `--save-plan` file): a change whose source or
    /// directory photo moved since is skipped as `changed-since-plan`, a user not in the plan
    /// is not written (`not-in-plan`), and a run with another profile, crop or sink stops
    /// with exit code 2.
    #[arg(long, value_name = "FILE", help_heading = "Run")]
    pub(crate) plan: Option<PathBuf>,
    /// Read options from this TOML file: each key is an option's long name without the
    /// dashes (`userphoto config init` prints an example); the command line wins.
    #[arg(long, value_name = "FILE", help_heading = "Run")]
    pub(crate) config: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) connections: Connections,
}

/// A count that must be at least 1 (`--concurrency`): the same rule for every sink.
fn at_least_one(v: &str) -> Result<usize, String> {
    match v.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// `restore` options.
#[derive(Args, Debug)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub(crate) sink: SinkArgs,
    /// The backup folder a sync wrote.
    #[arg(long, default_value = "userphoto-backup", help_heading = "Run")]
    pub(crate) backup_dir: PathBuf,
    /// The LDIF change file to write (`ldif:` sinks).
    #[arg(long, help_heading = "Output")]
    pub(crate) out: Option<PathBuf>,
    /// Restore only these users (repeatable; default: everyone the run changed).
    #[arg(long = "user", help_heading = "Run")]
    pub(crate) users: Vec<String>,
    /// The run to undo, as `userphoto runs` lists them (default: the last sync run that
    /// changed the sink; a restore's own run can be named to undo the restore).
    #[arg(long = "run", help_heading = "Run")]
    pub(crate) run: Option<String>,
    /// Restore users whose photo changed since the run too (what is overwritten is still
    /// backed up).
    #[arg(long, help_heading = "Run")]
    pub(crate) force: bool,
    /// Read options from this TOML file: each key is an option's long name without the
    /// dashes; the command line wins.
    #[arg(long, value_name = "FILE", help_heading = "Run")]
    pub(crate) config: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) connections: Connections,
}

/// `runs` options.
#[derive(Args, Debug)]
pub struct RunsArgs {
    /// The backup folder a sync wrote.
    #[arg(long, default_value = "userphoto-backup")]
    pub(crate) backup_dir: PathBuf,
}

/// How the CLI signs in to Graph (`--graph-auth`).
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphAuth {
    /// The app's client secret, from the variable --client-secret-env names.
    Secret,
    /// The app's certificate and key (--client-cert, --client-key).
    Certificate,
    /// The Azure resource's managed identity (App Service, Functions, Automation, Azure Arc,
    /// a VM's instance metadata service); --managed-identity-client-id for a user-assigned one.
    ManagedIdentity,
    /// Workload identity federation: a token file (--federated-token-file or
    /// AZURE_FEDERATED_TOKEN_FILE) sent as the client assertion (Kubernetes, GitHub Actions).
    WorkloadIdentity,
}

/// `--graph-users`: which users the Graph sink writes.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GraphUsersArg {
    /// Every user.
    #[default]
    All,
    /// Users Entra Connect does not sync (onPremisesSyncEnabled null or false).
    CloudOnly,
    /// Users synced from on-premises AD (onPremisesSyncEnabled true).
    Synced,
}

impl From<GraphUsersArg> for userphoto::sink::GraphUsers {
    fn from(a: GraphUsersArg) -> Self {
        match a {
            GraphUsersArg::All => Self::All,
            GraphUsersArg::CloudOnly => Self::CloudOnly,
            GraphUsersArg::Synced => Self::Synced,
        }
    }
}

/// How to reach Microsoft Graph (`--sink graph`): the tenant, the app and its credential (a
/// client secret from an environment variable, a certificate and its key, a managed
/// identity, or a federated token file).
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Microsoft Graph (--sink graph, --source graph)")]
pub struct GraphArgs {
    /// How to sign in: secret, certificate, managed-identity or workload-identity. Without
    /// it: secret with --client-secret-env, certificate with --client-cert, workload-identity
    /// with --federated-token-file or AZURE_FEDERATED_TOKEN_FILE, managed-identity with
    /// --managed-identity-client-id, --imds-url or IDENTITY_ENDPOINT (App Service, Arc).
    #[arg(long = "graph-auth", value_name = "MODE", value_enum)]
    pub graph_auth: Option<GraphAuth>,
    /// A user-assigned managed identity, by its client id (without it: the system-assigned
    /// identity).
    #[arg(long = "managed-identity-client-id", value_name = "ID")]
    pub managed_identity_client_id: Option<String>,
    /// Workload identity: the file that holds the federated token (re-read on every token
    /// request; default AZURE_FEDERATED_TOKEN_FILE). --tenant and --client-id default to
    /// AZURE_TENANT_ID and AZURE_CLIENT_ID, the login URL to AZURE_AUTHORITY_HOST.
    #[arg(long = "federated-token-file", value_name = "FILE")]
    pub federated_token_file: Option<PathBuf>,
    /// Managed identity: the instance metadata service's host root instead of
    /// http://169.254.169.254 (a test server, a pod identity proxy; also
    /// AZURE_POD_IDENTITY_AUTHORITY_HOST).
    #[arg(long = "imds-url", value_name = "URL")]
    pub imds_url: Option<String>,
    /// Managed identity on an Azure Arc server: the folder the agent writes its challenge key
    /// files to, instead of its documented one (/var/opt/azcmagent/tokens, or
    /// %ProgramData%\AzureConnectedMachineAgent\Tokens); a key file the challenge names
    /// anywhere else is refused.
    #[arg(long = "arc-key-dir", value_name = "DIR")]
    pub arc_key_dir: Option<PathBuf>,
    /// The Entra tenant: its id (GUID) or a domain such as contoso.onmicrosoft.com.
    #[arg(long)]
    pub tenant: Option<String>,
    /// The app registration's application (client) id.
    #[arg(long = "client-id")]
    pub client_id: Option<String>,
    /// The environment variable that holds the app's client secret (never the secret itself:
    /// a command line is visible to every user of the machine).
    #[arg(long = "client-secret-env", value_name = "VAR", conflicts_with_all = ["client_cert", "client_key"])]
    pub client_secret_env: Option<String>,
    /// The app's certificate (PEM), for a signed client assertion; needs --client-key.
    #[arg(long = "client-cert", value_name = "FILE")]
    pub client_cert: Option<PathBuf>,
    /// The certificate's RSA private key (PEM, PKCS#8 or PKCS#1).
    #[arg(long = "client-key", value_name = "FILE")]
    pub client_key: Option<PathBuf>,
    /// The Microsoft cloud: global, usgov (GCC High), usgov-dod (DoD) or china.
    #[arg(long, value_name = "CLOUD")]
    pub cloud: Option<String>,
    /// Graph's service root instead of the cloud's, as in https://graph.microsoft.com (the
    /// client adds /v1.0/...).
    #[arg(long = "graph-url", value_name = "URL")]
    pub graph_url: Option<String>,
    /// The login authority root instead of the cloud's, as in
    /// https://login.microsoftonline.com (the client adds /{tenant}/oauth2/v2.0/token).
    #[arg(long = "login-url", value_name = "URL")]
    pub login_url: Option<String>,
    /// Read each photo's new etag right after uploading it (one more request per upload), so
    /// that a change someone else makes before the next run is detected. Without it the
    /// next run takes the etag it finds as that of our upload.
    #[arg(long = "graph-confirm-uploads")]
    pub confirm_uploads: bool,
    /// Which users Graph writes, by whether Entra Connect syncs them from AD (read once per
    /// run from onPremisesSyncEnabled; needs User.Read.All): all, cloud-only (synced users
    /// get AD's photo through Entra Connect, which overwrites Graph's within a sync cycle)
    /// or synced. Users left out are skipped as synced-user or cloud-only-user.
    #[arg(long = "graph-users", value_name = "WHICH", value_enum, default_value_t = GraphUsersArg::All)]
    pub graph_users: GraphUsersArg,
    /// Trust only the CA certificates in this PEM file for Graph and the login endpoint
    /// (a TLS-inspecting proxy's CA, a private CA), instead of the system's trust store
    /// (which SSL_CERT_FILE can also point at a file).
    #[arg(long = "graph-ca-cert", id = "graph_ca_cert", value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// Allow http:// Graph and login URLs to hosts that are not loopback. Insecure: the
    /// client secret and every token then cross the network in clear.
    #[arg(long = "graph-insecure-http", id = "graph_insecure_http")]
    pub insecure_http: bool,
    /// Seconds to connect to Graph or the login endpoint (default 10).
    #[arg(
        long = "graph-connect-timeout",
        id = "graph_connect_timeout",
        value_name = "SECS"
    )]
    pub connect_timeout: Option<f64>,
    /// Seconds for one whole Graph request and its answer (default 100).
    #[arg(
        long = "graph-request-timeout",
        id = "graph_request_timeout",
        value_name = "SECS"
    )]
    pub request_timeout: Option<f64>,
}

/// `check` options: those of `sync` (`--source` is optional here), and the sample size.
#[derive(Args, Debug)]
pub struct CheckArgs {
    #[command(flatten)]
    pub(crate) run: RunArgs,
    /// AD sinks: how many users below the base DN to ask the DC about.
    #[arg(long, default_value_t = 50, value_name = "N", help_heading = "Run")]
    pub(crate) check_sample: usize,
}

/// `audit` options: those of `sync` (the run's source, sinks, state file, profile, match
/// and concurrency); nothing is written.
#[derive(Args, Debug)]
pub struct AuditArgs {
    #[command(flatten)]
    pub(crate) run: RunArgs,
}

/// `normalize` options.
#[derive(Args, Debug)]
pub struct NormalizeArgs {
    /// The target profile.
    #[arg(long, value_enum)]
    pub(crate) profile: ProfileName,
    /// Square output size in pixels, instead of the profile's.
    #[arg(long)]
    pub(crate) size: Option<u32>,
    /// Byte budget, instead of the profile's.
    #[arg(long)]
    pub(crate) max_bytes: Option<usize>,
    /// Worker threads (default: one per core).
    #[arg(long, default_value_t = 0)]
    pub(crate) threads: usize,
    /// Where the square goes: `face` (a head-and-shoulders square around the main face,
    /// attention when there is none), `attention` or `centre`.
    #[arg(long, value_enum, default_value_t = CropName::Face)]
    pub(crate) crop: CropName,
    /// Output folder (created if missing).
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// Input images.
    #[arg(required = true)]
    pub(crate) files: Vec<PathBuf>,
}
