//! The SSH front door: what a user types after `ssh` (`login`), whether
//! they may log in (`auth`: keys, user certificates, reason for access), and
//! the gateway's own host key (`hostkey`).

pub mod auth;
pub mod hostkey;
pub mod login;
