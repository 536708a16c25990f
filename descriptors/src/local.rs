//! The local driver: renders every kind into files (`drivers/src/local.rs`).

use crate::{Descriptor, Kinds, Owner, Setting};

pub const LOCAL: Descriptor = Descriptor {
    driver: "local",
    kinds: Kinds::All,
    settings: &[
        Setting {
            name: "path",
            owner: Owner::Both,
            doc: "where files are rendered: a relative path inside the daemon's directory from a stack, anywhere from the operator",
            refusal: None,
        },
        Setting {
            name: "namespace",
            owner: Owner::Stack,
            doc: "the namespace written into rendered manifests (default: the stack's name)",
            refusal: None,
        },
        Setting {
            name: "simulate-latency-ms",
            owner: Owner::Stack,
            doc: "a testing knob: a fixed latency added to every call",
            refusal: None,
        },
        Setting {
            name: "inject-faults",
            owner: Owner::Stack,
            doc: "a testing knob: errors injected for named resources",
            refusal: None,
        },
        Setting {
            name: "fault-schedule",
            owner: Owner::Stack,
            doc: "a testing knob: faults by a seeded schedule (`seed=N,rate=R`)",
            refusal: None,
        },
    ],
};
