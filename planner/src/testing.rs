//! What the tests across the workspace share: a small deterministic generator, so every run
//! of a randomized test (here, in `planner/tests`, in `test-support`'s stack generator and in
//! the daemon's) makes the same choices. Not part of the planner's interface.

/// A linear congruential generator (Knuth's MMIX constants), read from its high bits.
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}
