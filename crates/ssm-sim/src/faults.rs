//! Fault injection on the simulator's data-channel sockets: drop, duplicate,
//! reorder and delay binary frames at configured rates, and cut the first
//! WebSocket of a session after N frames. One [`Faults`] per direction.
//!
//! `channel_closed` is never tampered with (the session is over by then) and
//! text frames are left alone.

use std::time::Duration;

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::config::FaultConfig;

/// What to do with a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Pass it on now.
    Send(Bytes),
    /// Pass it on after a while.
    Delay(Bytes, Duration),
}

/// The fault state of one direction of one session.
#[derive(Debug)]
pub struct Faults {
    config: FaultConfig,
    rng: StdRng,
    held: Option<Bytes>,
    frames: u64,
}

impl Faults {
    /// `salt` separates the random streams of the two directions when a
    /// seed is configured.
    pub fn new(config: FaultConfig, salt: u64) -> Self {
        let rng = match config.seed {
            Some(seed) => StdRng::seed_from_u64(seed ^ salt),
            None => StdRng::from_os_rng(),
        };
        Self {
            config,
            rng,
            held: None,
            frames: 0,
        }
    }

    /// True when no fault is configured: the fast path skips all work.
    pub fn is_clean(&self) -> bool {
        let c = &self.config;
        c.drop_rate == 0.0
            && c.duplicate_rate == 0.0
            && c.reorder_rate == 0.0
            && c.delay_rate == 0.0
            && c.close_after.is_none()
    }

    /// Decides the fate of one frame; returns what to pass on, in order.
    pub fn apply(&mut self, frame: Bytes) -> Vec<Action> {
        self.frames += 1;
        let c = &self.config;
        if hit(&mut self.rng, c.drop_rate) {
            return Vec::new();
        }
        if hit(&mut self.rng, c.delay_rate) {
            return vec![Action::Delay(frame, Duration::from_millis(c.delay_ms))];
        }
        if self.held.is_none() && hit(&mut self.rng, c.reorder_rate) {
            self.held = Some(frame);
            return Vec::new();
        }
        let mut out = vec![Action::Send(frame.clone())];
        if hit(&mut self.rng, c.duplicate_rate) {
            out.push(Action::Send(frame));
        }
        if let Some(held) = self.held.take() {
            out.push(Action::Send(held));
        }
        out
    }

    /// A frame held back for reordering, released when nothing followed it.
    pub fn release_held(&mut self) -> Option<Bytes> {
        self.held.take()
    }

    /// Whether a frame is held back (the agent's timer must run).
    pub fn holds(&self) -> bool {
        self.held.is_some()
    }

    /// True once the first socket has carried `close_after` frames.
    pub fn should_cut(&self, first_socket: bool) -> bool {
        first_socket && self.config.close_after.is_some_and(|n| self.frames >= n)
    }
}

fn hit(rng: &mut StdRng, rate: f64) -> bool {
    rate > 0.0 && rng.random::<f64>() < rate
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(f: impl FnOnce(&mut FaultConfig)) -> FaultConfig {
        let mut c = FaultConfig {
            seed: Some(7),
            ..FaultConfig::default()
        };
        f(&mut c);
        c
    }

    fn frames(n: u8) -> Vec<Bytes> {
        (0..n).map(|i| Bytes::from(vec![i])).collect()
    }

    #[test]
    fn clean_config_passes_everything_in_order() {
        let mut f = Faults::new(FaultConfig::default(), 0);
        assert!(f.is_clean());
        let out: Vec<_> = frames(50).into_iter().flat_map(|b| f.apply(b)).collect();
        assert_eq!(
            out,
            frames(50).into_iter().map(Action::Send).collect::<Vec<_>>()
        );
    }

    #[test]
    fn drop_rate_drops_about_that_share() {
        let mut f = Faults::new(config(|c| c.drop_rate = 0.1), 0);
        let passed = (0..10_000)
            .map(|i: u32| f.apply(Bytes::from(i.to_be_bytes().to_vec())).len())
            .sum::<usize>();
        assert!((8_700..9_300).contains(&passed), "passed {passed}");
    }

    #[test]
    fn duplicates_and_reorders_keep_every_frame() {
        let mut f = Faults::new(
            config(|c| {
                c.duplicate_rate = 0.2;
                c.reorder_rate = 0.2;
            }),
            1,
        );
        let mut seen: Vec<Bytes> = Vec::new();
        for b in frames(200) {
            for a in f.apply(b) {
                if let Action::Send(b) = a {
                    seen.push(b);
                }
            }
        }
        seen.extend(f.release_held());
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 200, "nothing lost");
        assert!(seen.len() > 200, "some duplicated");
        assert_ne!(seen[..200], frames(200)[..], "some reordered");
    }

    #[test]
    fn cut_after_n_frames_on_the_first_socket_only() {
        let mut f = Faults::new(config(|c| c.close_after = Some(3)), 0);
        for b in frames(3) {
            f.apply(b);
        }
        assert!(f.should_cut(true));
        assert!(!f.should_cut(false));
    }
}
