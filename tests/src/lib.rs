//! End-to-end tests of the `sightline` binary live in `tests/`; shared helpers in `tests/common/`.
