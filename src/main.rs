//! The `ssmgate` binary.

fn main() {}
