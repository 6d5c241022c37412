//! Compiles `proto/wxpush/v1/*.proto` with protox (pure Rust, no protoc on the
//! machine) and writes the encoded descriptor set for server reflection.

use std::path::PathBuf;

const FILES: &[&str] = &[
    // Vendored googleapis: the field behaviour annotations, and the error
    // model (served by reflection so grpcurl can print ErrorInfo details).
    "google/api/field_behavior.proto",
    "google/rpc/status.proto",
    "google/rpc/error_details.proto",
    "wxpush/v1/common.proto",
    "wxpush/v1/token.proto",
    "wxpush/v1/template.proto",
    "wxpush/v1/delivery.proto",
    "wxpush/v1/logquery.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    println!("cargo:rerun-if-changed={}", root.display());

    let mut compiler = protox::Compiler::new([&root])?;
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files(FILES)?;
    let fds = compiler.file_descriptor_set();

    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("wxpush_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;

    tonic_prost_build::configure()
        // `google.rpc.Status` (a batch item's error) is tonic-types' type, so
        // `tonic_types::StatusExt` can build and read its details.
        .extern_path(".google.rpc", "::tonic_types::pb")
        .build_client(true)
        .build_server(true)
        // Every message knows its full name (`prost::Name`), so the CLI can
        // print any of them in the protobuf JSON mapping.
        .compile_fds_with_config(fds, {
            let mut config = prost_build::Config::new();
            config.enable_type_names();
            config
        })?;
    Ok(())
}
