//! The store-gateway: answers series requests for blocks in object storage through
//! DataFusion. Not built yet (see the read-path issue); the block format it will scan is
//! `strata_shared::block`.
