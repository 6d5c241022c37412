//! Callers and their grants (issue 17, first part): who is calling
//! ([`identity`]: a bearer JWT, or a trusted mesh's workload identity),
//! what each configured caller may do ([`grants`]: apps, template keys,
//! [`operation`]s). Not yet wired into the services: the tower layer on
//! every gRPC server, the caller on the record and the masking of personal
//! data come next (README, "Callers").

pub mod grants;
pub mod identity;
pub mod operation;

pub use grants::{CallerGrant, GrantError, Grants, Request};
pub use identity::{AuthError, Authenticator, Identity, JwtConfig, SetupError};
pub use operation::{Operation, UnknownOperation};
