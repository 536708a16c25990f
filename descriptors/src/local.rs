//! The local driver: renders every kind into files (`drivers/src/local.rs`).

use crate::{Descriptor, Kinds, OnChange, Owner, Setting, ValueRule};

pub const LOCAL: Descriptor = Descriptor {
    driver: "local",
    kinds: Kinds::All,
    settings: &[
        Setting {
            name: "path",
            owner: Owner::Both,
            doc: "where files are rendered: a relative path inside the daemon's directory from a stack, anywhere from the operator",
            refusal: None,
            value: None,
            on_change: OnChange::Move,
        },
        Setting {
            name: "namespace",
            owner: Owner::Stack,
            doc: "the namespace written into rendered manifests (default: the stack's name)",
            refusal: None,
            value: None,
            on_change: OnChange::Update(&[]),
        },
        Setting {
            name: "simulate-latency-ms",
            owner: Owner::Stack,
            doc: "a testing knob: a fixed latency added to every call",
            refusal: None,
            value: Some(ValueRule {
                valid: |v| v.parse::<u64>().is_ok(),
                expected: "a whole number of milliseconds",
                example: "simulate-latency-ms \"50\"",
            }),
            on_change: OnChange::Nothing,
        },
        Setting {
            name: "inject-faults",
            owner: Owner::Stack,
            doc: "a testing knob: errors injected for named resources",
            refusal: None,
            value: None,
            on_change: OnChange::Nothing,
        },
        Setting {
            name: "fault-schedule",
            owner: Owner::Stack,
            doc: "a testing knob: faults by a seeded schedule (`seed=N,rate=R`)",
            refusal: None,
            value: Some(ValueRule {
                valid: is_fault_schedule,
                expected: "`seed=N,rate=R` with a rate from 0 to 1",
                example: "fault-schedule \"seed=7,rate=0.1\"",
            }),
            on_change: OnChange::Nothing,
        },
    ],
    // Renders every kind in every variant, into files.
    variants: &[],
    field_rules: &[],
    needs: &[],
    renames: Kinds::All,
};

/// `seed=N,rate=R`, each once, with a rate from 0 to 1.
fn is_fault_schedule(v: &str) -> bool {
    let mut keys: Vec<&str> = Vec::new();
    let ok = v.split(',').all(|part| match part.trim().split_once('=') {
        Some(("seed", n)) => {
            keys.push("seed");
            n.trim().parse::<u64>().is_ok()
        }
        Some(("rate", r)) => {
            keys.push("rate");
            r.trim()
                .parse::<f64>()
                .is_ok_and(|r| (0.0..=1.0).contains(&r))
        }
        _ => false,
    });
    keys.sort();
    ok && keys == ["rate", "seed"]
}
