//! Domain types of lakecdp: identifiers, environments and their storage configuration,
//! runs, incremental-load watermarks, secrets references, segment definitions, and the
//! project file (`lakecdp.toml`) with its validation.
//!
//! This crate does no I/O. Resolving a secret reference, building an object store or
//! touching the catalog happens in the crates above it.
#![warn(missing_docs)]

pub mod access;
pub mod activity;
pub mod connection;
pub mod environment;
pub mod error;
pub mod export;
pub mod ids;
pub mod measure;
pub mod names;
pub mod period;
pub mod pgssl;
pub mod process;
pub mod project;
pub mod reporting;
pub mod revision;
pub mod run;
pub mod secret;
pub mod security;
pub mod segment;
pub mod sharing;
pub mod source;
pub mod storage;
pub mod unify;
pub mod watermark;

pub use access::{AccessDenied, Operation, Principal, PrincipalKind, Role, RoleAssignment};
pub use activity::{ActivitySpec, CustomerLink};
pub use connection::{
    Connection, ConnectionId, ConnectionKind, ConnectionSharing, ConnectionSummary,
};
pub use environment::{Environment, PartitionFormat};
pub use error::{ConfigError, ConfigErrors};
pub use export::{Export, ExportId, ExportSchedule, SchedulerClock, Tick};
pub use ids::{EnvironmentId, RunId};
pub use measure::{
    validate_measures, FilterOp, FilterSpec, MeasureFunction, MeasureKind, MeasureSpec, Period,
    PeriodUnit, WindowBounds, WindowSpec,
};
pub use pgssl::SslMode;
pub use process::Process;
pub use project::{EngineChoice, ProjectFile};
pub use reporting::{ReportingConnection, ReportingStatus};
pub use revision::Revision;
pub use run::{RunRecord, RunStatus};
pub use secret::{Secret, SecretOwner, SecretRef};
pub use security::{
    ApiToken, AuditEntry, AuditOutcome, AuditQuery, Leadership, PasswordCredential, RunEvent,
    Session, Throttle,
};
pub use segment::{
    parse_condition, validate_segments, Condition, ConditionNode, ConditionOp, ConditionValue,
    SegmentKind, SegmentRule, SegmentSpec, SetOperator,
};
pub use sharing::{Attachment, Sharing};
pub use source::{
    ColumnSpec, ColumnType, CsvOptions, Encoding, SourceAccess, SourceFormat, SourceSpec, TableSpec,
};
pub use storage::{
    s3_credential_errors, AdlsAuth, AdlsConfig, Credentials, LocalConfig, S3Config, StorageConfig,
    CONTAINER,
};
pub use unify::{
    CompareSpec, ConditionSpec, DedupeColumnSpec, MatchRuleSpec, MergeColumnSpec, MergePolicy,
    ModelSpec, Normalization, OverridesSpec, Precision, RuleSpec, SemanticColumn, SemanticType,
    UnificationSpec, UnifyTableSpec, WinnerPolicy,
};
pub use watermark::Watermark;
