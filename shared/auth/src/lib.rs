//! Callers and their grants (issue 17, first part): who is calling
//! ([`identity`]: a bearer JWT, or a trusted mesh's workload identity),
//! what each configured caller may do ([`grants`]: apps, template keys,
//! [`operation`]s), and the `auth:` section of every service's config
//! ([`settings`]). `wxpush-server` puts them in front of every gRPC server
//! (its `caller` module and gate layer).

pub mod grants;
pub mod identity;
mod keys;
pub mod operation;
pub mod privacy;
pub mod settings;

pub use grants::{CallerGrant, GrantError, Grants, Request};
pub use identity::{AuthError, Authenticator, Identity, JwtConfig, SetupError};
pub use operation::{Operation, UnknownOperation};
pub use settings::{AuthMode, AuthSettings, CallAs, SettingsError};
