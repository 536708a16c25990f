//! A driver wrapper that injects faults by a seeded schedule, for soak tests and drills: errors,
//! timeouts, latency, and "succeeded but the answer was lost" (the call is made, then reported
//! as failed, as when a connection drops after the request). Enabled on any driver with the
//! setting `fault-schedule "seed=7,rate=0.1"`: each call draws from a generator seeded by the
//! seed, the resource and the call's number, so a run is reproducible.

use crate::{Applied, DesiredResource, Driver, DriverError, ObjectRef, ObservedResource};
use async_trait::async_trait;
use planner::model::Kind;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// What happens to one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    /// A retryable error before anything is done.
    Error,
    /// No answer within the call's time, then a retryable error; nothing is done.
    Timeout,
    /// The call takes longer, then succeeds.
    Latency,
    /// The call is made, then reported as failed.
    LostAnswer,
}

/// `seed=7,rate=0.1`: which faults, how often.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    pub seed: u64,
    /// The share of calls that get a fault, spread evenly over the four kinds.
    pub rate: f64,
}

impl Schedule {
    pub fn parse(text: &str) -> Option<Schedule> {
        let mut seed = None;
        let mut rate = None;
        for part in text.split(',') {
            match part.trim().split_once('=')? {
                ("seed", v) => seed = v.trim().parse().ok(),
                ("rate", v) => {
                    rate = v
                        .trim()
                        .parse::<f64>()
                        .ok()
                        .filter(|r| (0.0..=1.0).contains(r))
                }
                _ => return None,
            }
        }
        Some(Schedule {
            seed: seed?,
            rate: rate?,
        })
    }

    /// The fault of the `n`th call about `address`.
    pub fn fault(&self, address: &str, n: u64) -> Fault {
        // FNV-1a over the seed, the address and the call number, then a splitmix finish.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ self.seed;
        for b in address.bytes().chain(n.to_le_bytes()) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        h ^= h >> 30;
        h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h ^= h >> 27;
        let draw = (h >> 11) as f64 / (1u64 << 53) as f64;
        if draw >= self.rate {
            return Fault::None;
        }
        match (draw / self.rate * 4.0) as u32 {
            0 => Fault::Error,
            1 => Fault::Timeout,
            2 => Fault::Latency,
            _ => Fault::LostAnswer,
        }
    }
}

pub struct FaultyDriver {
    inner: Arc<dyn Driver>,
    schedule: Schedule,
    calls: AtomicU64,
    /// How long a timeout or added latency lasts.
    pub delay: Duration,
}

impl FaultyDriver {
    pub fn new(inner: Arc<dyn Driver>, schedule: Schedule) -> FaultyDriver {
        FaultyDriver {
            inner,
            schedule,
            calls: AtomicU64::new(0),
            delay: Duration::from_millis(20),
        }
    }

    fn next(&self, address: &str) -> Fault {
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        self.schedule.fault(address, n)
    }

    async fn before(&self, fault: Fault, address: &str) -> Result<(), DriverError> {
        match fault {
            Fault::Error => Err(DriverError::retryable(format!(
                "injected error for {address}"
            ))),
            Fault::Timeout => {
                tokio::time::sleep(self.delay).await;
                Err(DriverError::retryable(format!(
                    "injected timeout for {address}"
                )))
            }
            Fault::Latency => {
                tokio::time::sleep(self.delay).await;
                Ok(())
            }
            Fault::None | Fault::LostAnswer => Ok(()),
        }
    }

    /// `call` with the schedule's next fault for `address` around it: an error, a timeout or
    /// latency before it, or its answer lost after it.
    async fn around<T>(
        &self,
        address: &str,
        call: impl std::future::Future<Output = Result<T, DriverError>>,
    ) -> Result<T, DriverError> {
        let fault = self.next(address);
        self.before(fault, address).await?;
        let answer = call.await?;
        if fault == Fault::LostAnswer {
            return Err(lost(address));
        }
        Ok(answer)
    }
}

fn lost(address: &str) -> DriverError {
    DriverError::retryable(format!(
        "injected lost answer for {address}: the call was made, its answer never came"
    ))
}

#[async_trait]
impl Driver for FaultyDriver {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn supports(&self, kind: Kind) -> bool {
        self.inner.supports(kind)
    }

    async fn observe(
        &self,
        stack: &str,
        kinds: &[Kind],
    ) -> Result<Vec<ObservedResource>, DriverError> {
        self.around("observe", self.inner.observe(stack, kinds))
            .await
    }

    fn expected(&self, desired: &DesiredResource) -> Result<serde_json::Value, DriverError> {
        self.inner.expected(desired)
    }

    fn live_paths(&self, kind: Kind, field: &str) -> Vec<String> {
        self.inner.live_paths(kind, field)
    }

    async fn apply(
        &self,
        desired: &DesiredResource,
        previous: &[ObjectRef],
    ) -> Result<Applied, DriverError> {
        self.around(&desired.address, self.inner.apply(desired, previous))
            .await
    }

    async fn wait_ready(
        &self,
        desired: &DesiredResource,
        timeout: Duration,
    ) -> Result<(), DriverError> {
        self.inner.wait_ready(desired, timeout).await
    }

    async fn adopt(
        &self,
        desired: &DesiredResource,
        id: &str,
    ) -> Result<Vec<ObjectRef>, DriverError> {
        self.around(&desired.address, self.inner.adopt(desired, id))
            .await
    }

    async fn release(
        &self,
        stack: &str,
        kind: Kind,
        name: &str,
        inventory: &[ObjectRef],
    ) -> Result<(), DriverError> {
        let address = format!("{kind}/{name}");
        self.around(&address, self.inner.release(stack, kind, name, inventory))
            .await
    }

    async fn rename(
        &self,
        stack: &str,
        kind: Kind,
        from: &str,
        to: &str,
        inventory: &[ObjectRef],
    ) -> Result<Vec<ObjectRef>, DriverError> {
        let address = format!("{kind}/{to}");
        self.around(
            &address,
            self.inner.rename(stack, kind, from, to, inventory),
        )
        .await
    }

    async fn delete(
        &self,
        stack: &str,
        kind: Kind,
        name: &str,
        inventory: &[ObjectRef],
    ) -> Result<(), DriverError> {
        let address = format!("{kind}/{name}");
        self.around(&address, self.inner.delete(stack, kind, name, inventory))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schedule_is_reproducible_and_keeps_its_rate_and_mix() {
        let s = Schedule::parse("seed=7, rate=0.2").unwrap();
        assert_eq!(s, Schedule { seed: 7, rate: 0.2 });
        let draws: Vec<Fault> = (0..20_000).map(|n| s.fault("service/api", n)).collect();
        let again: Vec<Fault> = (0..20_000).map(|n| s.fault("service/api", n)).collect();
        assert_eq!(draws, again);
        let share = |f: Fault| draws.iter().filter(|d| **d == f).count() as f64 / 20_000.0;
        assert!(
            (share(Fault::None) - 0.8).abs() < 0.02,
            "{}",
            share(Fault::None)
        );
        for f in [
            Fault::Error,
            Fault::Timeout,
            Fault::Latency,
            Fault::LostAnswer,
        ] {
            assert!((share(f) - 0.05).abs() < 0.01, "{f:?}: {}", share(f));
        }
        assert_ne!(
            draws,
            (0..20_000)
                .map(|n| Schedule { seed: 8, ..s }.fault("service/api", n))
                .collect::<Vec<_>>()
        );
        for bad in [
            "seed=7",
            "rate=0.1",
            "seed=x,rate=0.1",
            "seed=1,rate=2",
            "seed=1,rate=0.1,x=1",
        ] {
            assert_eq!(Schedule::parse(bad), None, "{bad}");
        }
    }
}
