//! What build a process is: the version and the commit, shown by
//! `--version` on every binary and exported as `wxpush_build_info`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The crate version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git commit the build was made from (`WXPUSH_GIT_COMMIT` at build
/// time), or `unknown`.
pub const COMMIT: &str = env!("WXPUSH_BUILD_COMMIT");

/// `--version`'s text: `0.1.0 (commit 1f6a82b)`.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("WXPUSH_BUILD_COMMIT"),
    ")"
);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Labels {
    version: &'static str,
    commit: &'static str,
}

/// Adds `wxpush_build_info{version, commit} 1` to a registry.
pub fn register(r: &mut Registry) {
    let info: Family<Labels, Gauge> = Family::default();
    info.get_or_create(&Labels {
        version: VERSION,
        commit: COMMIT,
    })
    .set(1);
    r.register(
        "wxpush_build_info",
        "The version and git commit of this process's build (always 1)",
        info,
    );
}
