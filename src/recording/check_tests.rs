//! Tests of keyed verification.

use super::*;
