//! What each driver serves and which settings it takes, declared once per driver (`local.rs`,
//! `kubernetes.rs`, `aws.rs`): the kinds it can make, and for each setting who may set it (the
//! stack, the operator, or both) and what it is for. The planner's validation, the daemon's
//! configuration and the drivers read the same declaration, so a setting is added in one place.
//! Plain data with no dependencies: the planner stays free of `kube` and the AWS SDK.

mod aws;
mod kubernetes;
mod local;

pub use aws::AWS;
pub use kubernetes::KUBERNETES;
pub use local::LOCAL;

/// Who may choose a setting's value (`docs/SECURITY.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// The stack's `driver "name" { }` block only: what is built.
    Stack,
    /// The daemon's configuration only: host paths, credentials, where signed requests go.
    Operator,
    /// Either: a name the operator's credentials resolve (a context, a profile, a region).
    Both,
}

/// Why a stack may not choose an operator's setting, as its diagnostic says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OperatorOnly {
    /// What was chosen (`the kubeconfig`), after "stack content may not choose".
    pub what: &'static str,
    /// The label under the setting's name.
    pub label: &'static str,
    /// Where the operator sets it instead.
    pub help: &'static str,
}

/// The form a setting's value must have, checked where it is written (`invalid-value`).
#[derive(Debug, Clone, Copy)]
pub struct ValueRule {
    pub valid: fn(&str) -> bool,
    /// What is expected, as the diagnostic says it (`an IAM role ARN`).
    pub expected: &'static str,
    /// A whole example line (`node-role-arn "arn:aws:iam::123456789012:role/gpu-nodes"`).
    pub example: &'static str,
}

impl PartialEq for ValueRule {
    fn eq(&self, other: &Self) -> bool {
        self.expected == other.expected && self.example == other.example
    }
}

impl Eq for ValueRule {}

/// One setting of a driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    pub name: &'static str,
    pub owner: Owner,
    /// What it is for, in a sentence.
    pub doc: &'static str,
    /// For an operator's setting: what a stack that sets it is told.
    pub refusal: Option<OperatorOnly>,
    /// The form its value must have; any non-empty string when `None`.
    pub value: Option<ValueRule>,
    /// What a change of its value does to what the driver made: a plan shows it as a change of
    /// the resources it affects.
    pub on_change: OnChange,
}

/// What changing a setting's value does to the resources a driver made (`plan` shows each as
/// a change of those resources, at the path `driver.<setting>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnChange {
    /// Nothing the driver made: how it connects, whom it lets write, testing knobs.
    Nothing,
    /// The resources of these kinds (every kind when empty) render differently: each is
    /// updated in place.
    Update(&'static [&'static str]),
    /// The resources of these kinds (every kind when empty) must be made again where they are:
    /// each is replaced (its old form removed first).
    Replace(&'static [&'static str]),
    /// Every resource moves to where the setting now puts it (a namespace, a cluster, a
    /// directory): made there first, then its old objects removed through the driver as it was
    /// set before.
    Move,
    /// The resources cannot follow the change: the plan is blocked, saying why.
    Refused(&'static str),
}

impl OnChange {
    /// Whether a resource of the kind named `kind` is changed by it.
    pub fn affects(&self, kind: &str) -> bool {
        match self {
            OnChange::Nothing => false,
            OnChange::Update(kinds) | OnChange::Replace(kinds) => {
                kinds.is_empty() || kinds.contains(&kind)
            }
            OnChange::Move | OnChange::Refused(_) => true,
        }
    }
}

/// Variants of a kind a driver serves, told apart by one field of the kind (`engine` of a
/// `database`, `runtime` of an `ai-endpoint`). A kind with no entry is served in every variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variants {
    pub kind: &'static str,
    pub field: &'static str,
    pub served: &'static [&'static str],
    /// The diagnostic for any other value, `{value}` standing for it.
    pub message: &'static str,
    pub help: &'static str,
}

/// A field of a kind that the driver refuses in some form (a SageMaker endpoint scales by its
/// instance count, not by `autoscale`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldRule {
    pub kind: &'static str,
    pub when: When,
    pub message: &'static str,
    pub help: &'static str,
}

/// When a [`FieldRule`] refuses a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// Any of these fields is set.
    Set(&'static [&'static str]),
    /// This number field is zero.
    Zero(&'static str),
}

/// Settings the driver needs to make resources of a kind (the cluster GPU pools join, the role
/// SageMaker endpoints run as).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    pub kind: &'static str,
    pub settings: &'static [&'static str],
    /// What for, after "driver `aws` needs …" (`to make GPU pools (EKS node groups)`).
    pub what: &'static str,
    /// The settings written out, for the help line.
    pub example: &'static str,
}

/// The kinds a driver makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kinds {
    All,
    /// By the planner's kind names (`service`, `ai-endpoint`).
    Only(&'static [&'static str]),
}

/// One driver's declaration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Descriptor {
    pub driver: &'static str,
    pub kinds: Kinds,
    pub settings: &'static [Setting],
    /// The variants it serves of kinds it serves only in part.
    pub variants: &'static [Variants],
    /// Fields it refuses, in the order they are checked (one diagnostic per resource).
    pub field_rules: &'static [FieldRule],
    /// Settings it needs for some kinds.
    pub needs: &'static [Needs],
    /// The kinds whose resources it renames in place (a `moved` block): a file is renamed; a
    /// Kubernetes object or a bucket cannot be, so a move of one is made anew.
    pub renames: Kinds,
}

impl Descriptor {
    /// Whether the driver makes resources of the kind named `kind`.
    pub fn serves(&self, kind: &str) -> bool {
        match self.kinds {
            Kinds::All => true,
            Kinds::Only(kinds) => kinds.contains(&kind),
        }
    }

    /// Whether any rule of the driver is about `kind`: the planner looks at a resource's
    /// fields only then.
    pub fn has_rules_for(&self, kind: &str) -> bool {
        self.variants.iter().any(|v| v.kind == kind)
            || self.field_rules.iter().any(|r| r.kind == kind)
    }

    pub fn setting(&self, name: &str) -> Option<&'static Setting> {
        self.settings.iter().find(|s| s.name == name)
    }

    /// The settings a stack's driver block may name (its own and the shared ones), plus the
    /// operator's, which it may name only to be told where they belong.
    pub fn stack_settings(&self) -> impl Iterator<Item = &'static Setting> + use<> {
        self.settings.iter().filter(|s| s.owner != Owner::Operator)
    }

    /// The settings the daemon's configuration may give.
    pub fn operator_settings(&self) -> impl Iterator<Item = &'static Setting> + use<> {
        self.settings.iter().filter(|s| s.owner != Owner::Stack)
    }
}

/// Every driver's declaration.
pub const ALL: [&Descriptor; 3] = [&KUBERNETES, &AWS, &LOCAL];

/// The declaration of the driver named `driver`.
pub fn find(driver: &str) -> Option<&'static Descriptor> {
    ALL.into_iter().find(|d| d.driver == driver)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_driver_declares_each_setting_once_and_says_why_its_operator_settings_are_its() {
        for d in ALL {
            let mut names: Vec<&str> = d.settings.iter().map(|s| s.name).collect();
            names.sort();
            let before = names.len();
            names.dedup();
            assert_eq!(
                names.len(),
                before,
                "{}: a setting declared twice",
                d.driver
            );
            for s in d.settings {
                assert!(!s.doc.is_empty(), "{}.{}: no doc", d.driver, s.name);
                assert_eq!(
                    s.refusal.is_some(),
                    s.owner == Owner::Operator,
                    "{}.{}: an operator's setting says why, and only it",
                    d.driver,
                    s.name
                );
            }
        }
        for d in ALL {
            for need in d.needs {
                for s in need.settings {
                    assert!(
                        d.setting(s).is_some(),
                        "{}: needs undeclared `{s}`",
                        d.driver
                    );
                }
                assert!(d.serves(need.kind), "{}: needs for {}", d.driver, need.kind);
            }
            for v in d.variants {
                assert!(d.serves(v.kind), "{}: variants of {}", d.driver, v.kind);
            }
        }
        assert_eq!(find("kubernetes").map(|d| d.driver), Some("kubernetes"));
        assert!(find("gcp").is_none());
        assert!(LOCAL.serves("llm-quota") && !AWS.serves("service"));
    }
}
