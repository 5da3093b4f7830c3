//! SSH signal names (RFC 4254 §6.10, without `SIG`) ⇄ russh's [`Sig`], in
//! one place for both SSH legs: the SSH server layer turns the client's
//! signals into names for the gateway, the sshd backend turns names back
//! into signal requests.

use russh::Sig;

/// The name of `sig`.
pub fn name(sig: &Sig) -> String {
    let n = match sig {
        Sig::ABRT => "ABRT",
        Sig::ALRM => "ALRM",
        Sig::FPE => "FPE",
        Sig::HUP => "HUP",
        Sig::ILL => "ILL",
        Sig::INT => "INT",
        Sig::KILL => "KILL",
        Sig::PIPE => "PIPE",
        Sig::QUIT => "QUIT",
        Sig::SEGV => "SEGV",
        Sig::TERM => "TERM",
        Sig::USR1 => "USR1",
        Sig::Custom(c) => c,
    };
    n.to_owned()
}

/// The signal called `name`.
pub fn from_name(name: &str) -> Sig {
    match name {
        "ABRT" => Sig::ABRT,
        "ALRM" => Sig::ALRM,
        "FPE" => Sig::FPE,
        "HUP" => Sig::HUP,
        "ILL" => Sig::ILL,
        "INT" => Sig::INT,
        "KILL" => Sig::KILL,
        "PIPE" => Sig::PIPE,
        "QUIT" => Sig::QUIT,
        "SEGV" => Sig::SEGV,
        "TERM" => Sig::TERM,
        "USR1" => Sig::USR1,
        other => Sig::Custom(other.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for n in [
            "ABRT", "ALRM", "FPE", "HUP", "ILL", "INT", "KILL", "PIPE", "QUIT", "SEGV", "TERM",
            "USR1", "USR2", "WINCH",
        ] {
            assert_eq!(name(&from_name(n)), n);
        }
        assert!(matches!(from_name("TERM"), Sig::TERM));
        assert!(matches!(from_name("USR2"), Sig::Custom(ref c) if c == "USR2"));
    }
}
