//! Tests of the keyed seals.

use super::*;
