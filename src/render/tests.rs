//! Tests of the contract builders, one file per builder under `tests/`.

mod lists;
