# The strata image used by deploy/docker-compose.yaml.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --bin strata

FROM debian:bookworm-slim
COPY --from=build /src/target/release/strata /usr/local/bin/strata
ENTRYPOINT ["/usr/local/bin/strata"]
