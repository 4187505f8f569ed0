//! The compactor: merges replica blocks (vertical), adjacent ranges (horizontal),
//! downsamples and enforces retention. Not built yet: the write path comes first, and the
//! block format it fixes is what the compactor will read.
