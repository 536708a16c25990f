//! Work spread over the machine's cores, for loading and snapshotting large stacks. A leaf:
//! it imports nothing of the planner.

/// Runs `work` on every index below `n`, over the machine's cores, and returns the results in
/// index order (so results never depend on scheduling).
pub fn in_parallel<T: Send>(n: usize, work: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |p| p.get())
        .min(n.max(1));
    if workers <= 1 || n < 2 {
        return (0..n).map(work).collect();
    }
    // Interleaved assignment balances files of similar size across workers.
    let share = |w: usize, work: &(dyn Fn(usize) -> T + Sync)| -> Vec<(usize, T)> {
        (w..n).step_by(workers).map(|i| (i, work(i))).collect()
    };
    std::thread::scope(|scope| {
        let work = &work;
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                // Parsing and decoding recurse per block level (bounded by
                // `crate::syntax::MAX_NESTING`); a generous stack keeps debug builds safe too.
                std::thread::Builder::new()
                    .stack_size(16 << 20)
                    .spawn_scoped(scope, move || share(w, work))
            })
            .collect();
        let mut all: Vec<(usize, T)> = Vec::with_capacity(n);
        for (w, handle) in handles.into_iter().enumerate() {
            match handle {
                Ok(h) => match h.join() {
                    Ok(results) => all.extend(results),
                    // A worker that panicked is a bug; its panic is the caller's.
                    Err(panic) => std::panic::resume_unwind(panic),
                },
                // No thread to be had: this share is done here instead.
                Err(_) => all.extend(share(w, work)),
            }
        }
        all.sort_by_key(|r| r.0);
        all.into_iter().map(|(_, t)| t).collect()
    })
}
