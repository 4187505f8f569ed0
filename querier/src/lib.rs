//! The querier: PromQL and the Prometheus HTTP API over ingesters and store-gateways.
//! Not built yet (see the read-path issue).
