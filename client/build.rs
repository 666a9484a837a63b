//! Generates the RocketMQ 5 protocol types and the MessagingService server
//! from `proto/`, with the `protoc` shipped by `protoc-bin-vendored` (no
//! system protoc needed).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; prost-build reads PROTOC.
    unsafe { std::env::set_var("PROTOC", protoc) };
    let include = protoc_bin_vendored::include_path()?;
    let include = include.to_str().ok_or("protoc include path is not UTF-8")?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_protos(
            &[
                "proto/apache/rocketmq/v2/definition.proto",
                "proto/apache/rocketmq/v2/service.proto",
            ],
            &["proto", include],
        )?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
