//! Generates the remote-write, ingester and query gRPC types, and the etcd v3 client the HA
//! tracker uses, from our own `.proto` files.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    std::env::set_var("PROTOC", protoc);
    println!("cargo:rerun-if-changed=proto");
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .bytes(".prometheus.LabelBytes")
        .compile_protos(
            &[
                "proto/remote_write.proto",
                "proto/ingester.proto",
                "proto/query.proto",
                "proto/etcd.proto",
            ],
            &["proto"],
        )?;
    Ok(())
}
