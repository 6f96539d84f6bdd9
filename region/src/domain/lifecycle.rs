//! The machine lifecycle: MAAS's statuses, its transition table, and the user actions gated by status
//! and role.
//!
//! Pure: no IO, no clock, no database. [`decide`] turns (machine facts, actor, action) into a
//! [`Decision`] or a [`Refusal`] that says why and what is allowed; the caller applies it atomically.
//! Every transition a decision can produce is in [`allowed_transition`] (MAAS's `NODE_TRANSITIONS`),
//! which the tests check for every (status, action) pair.

use region_api_types::{MachineAction, MachineStatus};

use MachineStatus as S;

/// MAAS's `NODE_TRANSITIONS` table: may a machine go from `from` to `to`?
pub fn allowed_transition(from: MachineStatus, to: MachineStatus) -> bool {
    targets(from).contains(&to)
}

/// The statuses a machine in `from` may move to (MAAS `src/maasserver/node_status.py`).
pub fn targets(from: MachineStatus) -> &'static [MachineStatus] {
    match from {
        S::New => &[
            S::Commissioning,
            S::Testing,
            S::Missing,
            S::Ready,
            S::Retired,
            S::Broken,
            S::EnteringRescueMode,
        ],
        S::Commissioning => &[
            S::FailedCommissioning,
            S::Ready,
            S::Retired,
            S::Missing,
            S::New,
            S::Broken,
            S::Testing,
        ],
        S::FailedCommissioning => &[
            S::Commissioning,
            S::Missing,
            S::Retired,
            S::Broken,
            S::EnteringRescueMode,
            S::Testing,
        ],
        S::Ready => &[
            S::EnteringRescueMode,
            S::Commissioning,
            S::Allocated,
            S::Reserved,
            S::Retired,
            S::Missing,
            S::Broken,
            S::Testing,
        ],
        S::Reserved => &[
            S::Ready,
            S::Allocated,
            S::Retired,
            S::Missing,
            S::Broken,
            S::DiskErasing,
            S::Releasing,
            S::EnteringRescueMode,
            S::Testing,
        ],
        S::Allocated => &[
            S::Ready,
            S::Retired,
            S::Missing,
            S::Broken,
            S::Deploying,
            S::DiskErasing,
            S::Releasing,
            S::EnteringRescueMode,
            S::Testing,
        ],
        S::Releasing => &[
            S::New,
            S::Allocated,
            S::Reserved,
            S::Deployed,
            S::Ready,
            S::Broken,
            S::Missing,
            S::FailedDeployment,
            S::FailedDiskErasing,
            S::FailedReleasing,
        ],
        S::Deploying => &[
            S::Allocated,
            S::Missing,
            S::Broken,
            S::FailedDeployment,
            S::Deployed,
            S::Ready,
            S::DiskErasing,
            S::Releasing,
        ],
        S::FailedDeployment => &[
            S::Allocated,
            S::Missing,
            S::Broken,
            S::Ready,
            S::DiskErasing,
            S::Releasing,
            S::EnteringRescueMode,
            S::Testing,
        ],
        S::Deployed => &[
            S::Allocated,
            S::Missing,
            S::Broken,
            S::Ready,
            S::DiskErasing,
            S::Releasing,
            S::EnteringRescueMode,
            S::Testing,
        ],
        S::Missing => &[
            S::New,
            S::Ready,
            S::Allocated,
            S::Commissioning,
            S::Broken,
            S::EnteringRescueMode,
            S::Testing,
        ],
        S::Retired => &[
            S::New,
            S::Ready,
            S::Missing,
            S::Broken,
            S::EnteringRescueMode,
            S::Testing,
        ],
        S::Broken => &[
            S::Commissioning,
            S::Ready,
            S::DiskErasing,
            S::Releasing,
            S::EnteringRescueMode,
            S::Testing,
            S::Deployed,
        ],
        S::FailedReleasing => &[
            S::Releasing,
            S::DiskErasing,
            S::Ready,
            S::Broken,
            S::Testing,
        ],
        S::DiskErasing => &[
            S::Broken,
            S::DiskErasing,
            S::FailedDiskErasing,
            S::Ready,
            S::Releasing,
        ],
        S::FailedDiskErasing => &[
            S::DiskErasing,
            S::Releasing,
            S::Broken,
            S::Allocated,
            S::Ready,
            S::EnteringRescueMode,
            S::Testing,
        ],
        S::EnteringRescueMode => &[
            S::Ready,
            S::Broken,
            S::Deployed,
            S::RescueMode,
            S::FailedEnteringRescueMode,
            S::ExitingRescueMode,
        ],
        S::FailedEnteringRescueMode => &[
            S::Broken,
            S::EnteringRescueMode,
            S::ExitingRescueMode,
            S::Testing,
        ],
        S::RescueMode => &[S::Broken, S::ExitingRescueMode, S::Testing],
        S::ExitingRescueMode => &[
            S::New,
            S::Broken,
            S::FailedCommissioning,
            S::Ready,
            S::Reserved,
            S::Allocated,
            S::FailedDeployment,
            S::Deployed,
            S::Missing,
            S::Retired,
            S::FailedReleasing,
            S::FailedDiskErasing,
            S::RescueMode,
            S::FailedEnteringRescueMode,
            S::FailedExitingRescueMode,
            S::FailedTesting,
        ],
        S::FailedExitingRescueMode => &[S::Broken, S::ExitingRescueMode, S::Testing],
        S::Testing => &[
            S::Broken,
            S::New,
            S::Ready,
            S::Reserved,
            S::Allocated,
            S::Deployed,
            S::Commissioning,
            S::FailedDeployment,
            S::Missing,
            S::Retired,
            S::FailedReleasing,
            S::FailedDiskErasing,
            S::FailedEnteringRescueMode,
            S::FailedExitingRescueMode,
            S::FailedTesting,
        ],
        S::FailedTesting => &[
            S::Commissioning,
            S::Broken,
            S::Missing,
            S::EnteringRescueMode,
            S::Testing,
            S::Ready,
            S::Deployed,
        ],
    }
}

/// The failed status an in-progress status falls into when it fails or its deadline passes
/// (MAAS `NODE_FAILURE_STATUS_TRANSITION_MAP`). `None` for statuses that are not in progress.
pub fn failure_status(st: MachineStatus) -> Option<MachineStatus> {
    match st {
        S::Commissioning => Some(S::FailedCommissioning),
        S::Deploying => Some(S::FailedDeployment),
        S::Releasing => Some(S::FailedReleasing),
        S::DiskErasing => Some(S::FailedDiskErasing),
        S::EnteringRescueMode => Some(S::FailedEnteringRescueMode),
        S::ExitingRescueMode => Some(S::FailedExitingRescueMode),
        S::Testing => Some(S::FailedTesting),
        _ => None,
    }
}

/// Whether a status is an operation in progress (carries a deadline).
pub fn in_progress(st: MachineStatus) -> bool {
    failure_status(st).is_some()
}

/// Which deadline an in-progress status gets: MAAS gives releasing and exiting rescue mode a short
/// fixed timeout and the others the configurable node timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadlineKind {
    /// `lifecycle.node_timeout` (default 30 min).
    Node,
    /// `lifecycle.release_timeout` (default 5 min).
    Short,
}

pub fn deadline_kind(st: MachineStatus) -> Option<DeadlineKind> {
    match st {
        S::Releasing | S::ExitingRescueMode => Some(DeadlineKind::Short),
        s if in_progress(s) => Some(DeadlineKind::Node),
        _ => None,
    }
}

/// Who is asking, as far as the lifecycle cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actor<'a> {
    pub username: &'a str,
    pub is_admin: bool,
}

/// The facts about a machine that decisions depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MachineFacts<'a> {
    pub status: MachineStatus,
    pub previous_status: Option<MachineStatus>,
    pub owner: Option<&'a str>,
    /// Whether Kiln can power the machine off itself (false for the `manual` driver).
    pub power_controllable: bool,
}

/// What happens to the owner when an action is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnerChange {
    Keep,
    Set(String),
    Clear,
}

/// The outcome of a legal action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Move to `to`, passing through `via` when MAAS's table has no direct edge (deploying a Ready
    /// machine allocates it first: Ready → Allocated → Deploying). `previous_status` becomes `via`
    /// if there is one, else the current status.
    Transition {
        to: MachineStatus,
        owner: OwnerChange,
        via: Option<MachineStatus>,
    },
    /// Remove the machine.
    Delete,
}

/// Why an action was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The action is not possible in the machine's status (HTTP 409).
    InvalidState {
        action: MachineAction,
        status: MachineStatus,
        /// Statuses from which the action is allowed.
        allowed_from: Vec<MachineStatus>,
        /// An extra hint ("Commission it first.").
        hint: Option<&'static str>,
    },
    /// The actor's role does not allow it (HTTP 403).
    Forbidden {
        action: MachineAction,
        reason: &'static str,
    },
}

impl Refusal {
    /// A sentence an operator can act on.
    pub fn message(&self, system_id: &str) -> String {
        match self {
            Refusal::InvalidState {
                action,
                status,
                allowed_from,
                hint,
            } => {
                let allowed: Vec<&str> = allowed_from.iter().map(|s| s.label()).collect();
                let mut msg = format!(
                    "Cannot {action} machine {system_id}: it is {}; {action} is allowed only from {}.",
                    status.label(),
                    join_or(&allowed)
                );
                if let Some(h) = hint {
                    msg.push(' ');
                    msg.push_str(h);
                }
                msg
            }
            Refusal::Forbidden { action, reason } => {
                format!("You may not {action} machine {system_id}: {reason}")
            }
        }
    }
}

fn join_or(items: &[&str]) -> String {
    match items {
        [] => "no status".to_string(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} or {}", init.join(", "), last),
    }
}

/// Statuses from which `action` is allowed (role aside).
pub fn allowed_from(action: MachineAction) -> &'static [MachineStatus] {
    match action {
        MachineAction::Commission => &[
            S::New,
            S::Ready,
            S::FailedCommissioning,
            S::FailedTesting,
            S::Broken,
            S::Missing,
        ],
        MachineAction::Abort => &[S::Commissioning, S::Deploying, S::DiskErasing, S::Testing],
        MachineAction::Allocate => &[S::Ready],
        MachineAction::Deploy => &[S::Ready, S::Allocated],
        MachineAction::Release => &[
            S::Allocated,
            S::Deployed,
            S::Deploying,
            S::FailedDeployment,
            S::FailedReleasing,
            S::FailedDiskErasing,
        ],
        MachineAction::MarkBroken => &[
            S::New,
            S::Commissioning,
            S::FailedCommissioning,
            S::Ready,
            S::Reserved,
            S::Allocated,
            S::Deploying,
            S::FailedDeployment,
            S::Deployed,
            S::Releasing,
            S::FailedReleasing,
            S::DiskErasing,
            S::FailedDiskErasing,
            S::EnteringRescueMode,
            S::FailedEnteringRescueMode,
            S::RescueMode,
            S::ExitingRescueMode,
            S::FailedExitingRescueMode,
            S::Testing,
            S::FailedTesting,
            S::Missing,
            S::Retired,
        ],
        MachineAction::MarkFixed => &[S::Broken],
        MachineAction::Rescue => &[
            S::Ready,
            S::Allocated,
            S::Deployed,
            S::Broken,
            S::FailedCommissioning,
            S::FailedDeployment,
            S::FailedDiskErasing,
            S::FailedEnteringRescueMode,
            S::FailedTesting,
        ],
        MachineAction::ExitRescue => &[
            S::RescueMode,
            S::EnteringRescueMode,
            S::FailedEnteringRescueMode,
            S::FailedExitingRescueMode,
        ],
        MachineAction::Delete => &[
            S::New,
            S::FailedCommissioning,
            S::Ready,
            S::Reserved,
            S::Allocated,
            S::FailedDeployment,
            S::Deployed,
            S::FailedReleasing,
            S::FailedDiskErasing,
            S::Broken,
            S::RescueMode,
            S::FailedEnteringRescueMode,
            S::FailedExitingRescueMode,
            S::FailedTesting,
            S::Missing,
            S::Retired,
        ],
    }
}

fn hint(action: MachineAction, status: MachineStatus) -> Option<&'static str> {
    match (action, status) {
        (MachineAction::Deploy | MachineAction::Allocate, S::New | S::FailedCommissioning) => {
            Some("Commission it first.")
        }
        (MachineAction::Deploy, S::Deployed) => Some("It is deployed already."),
        (_, S::Deploying) => {
            Some("It is being deployed now: wait for the deployment to end, or abort it.")
        }
        (_, S::DiskErasing) => {
            Some("Its disks are being erased now: wait for that to end, or abort it.")
        }
        (MachineAction::Deploy, S::FailedDeployment) => Some("Release it, then deploy again."),
        (MachineAction::Delete, s) if in_progress(s) => Some("Abort the operation first."),
        (MachineAction::Commission, s) if in_progress(s) => Some("Abort the operation first."),
        (MachineAction::Commission, S::Allocated | S::Deployed) => Some("Release it first."),
        (MachineAction::MarkFixed, _) => Some("Only Broken machines can be marked fixed."),
        (MachineAction::Abort, _) => Some("Nothing is in progress."),
        _ => None,
    }
}

/// Decide what `action` does to a machine, or why it may not.
///
/// Roles (MAAS semantics): admins may do everything. Other users act on machines that are free or that
/// they own: they may allocate and deploy free Ready machines, and release, abort a deployment,
/// mark broken, and rescue the machines they own. Commissioning, mark-fixed and delete are admin-only.
pub fn decide(
    m: &MachineFacts<'_>,
    actor: &Actor<'_>,
    action: MachineAction,
) -> Result<Decision, Refusal> {
    // Role first: a user who may never do this should hear so, whatever the status.
    check_role(m, actor, action)?;

    if !allowed_from(action).contains(&m.status) {
        return Err(Refusal::InvalidState {
            action,
            status: m.status,
            allowed_from: allowed_from(action).to_vec(),
            hint: hint(action, m.status),
        });
    }

    let t = |to: MachineStatus, owner: OwnerChange| Decision::Transition {
        to,
        owner,
        via: None,
    };
    let decision = match action {
        MachineAction::Commission => t(S::Commissioning, OwnerChange::Keep),
        MachineAction::Abort => {
            let to = match m.status {
                S::Commissioning | S::Testing => match m.previous_status {
                    Some(p) if allowed_transition(m.status, p) && !in_progress(p) => p,
                    _ => failure_status(m.status).unwrap_or(S::New),
                },
                S::Deploying => S::Allocated,
                S::DiskErasing => S::FailedDiskErasing,
                other => other,
            };
            t(to, OwnerChange::Keep)
        }
        MachineAction::Allocate => t(S::Allocated, OwnerChange::Set(actor.username.to_string())),
        MachineAction::Deploy => {
            let owner = if m.owner.is_none() {
                OwnerChange::Set(actor.username.to_string())
            } else {
                OwnerChange::Keep
            };
            Decision::Transition {
                to: S::Deploying,
                owner,
                via: (m.status == S::Ready).then_some(S::Allocated),
            }
        }
        MachineAction::Release => {
            // A machine that was never powered on by a deployment, or that Kiln cannot power off,
            // has nothing to undo: it is Ready at once (MAAS does the same for allocated machines).
            if m.status == S::Allocated || !m.power_controllable {
                t(S::Ready, OwnerChange::Clear)
            } else {
                t(S::Releasing, OwnerChange::Keep)
            }
        }
        MachineAction::MarkBroken => t(S::Broken, OwnerChange::Keep),
        MachineAction::MarkFixed => {
            let to = if m.previous_status == Some(S::Deployed) && m.owner.is_some() {
                S::Deployed
            } else {
                S::Ready
            };
            let owner = if to == S::Ready {
                OwnerChange::Clear
            } else {
                OwnerChange::Keep
            };
            t(to, owner)
        }
        MachineAction::Rescue => t(S::EnteringRescueMode, OwnerChange::Keep),
        MachineAction::ExitRescue => t(S::ExitingRescueMode, OwnerChange::Keep),
        MachineAction::Delete => Decision::Delete,
    };
    Ok(decision)
}

fn check_role(
    m: &MachineFacts<'_>,
    actor: &Actor<'_>,
    action: MachineAction,
) -> Result<(), Refusal> {
    if actor.is_admin {
        return Ok(());
    }
    let forbidden = |reason| Err(Refusal::Forbidden { action, reason });
    match action {
        MachineAction::Commission | MachineAction::MarkFixed | MachineAction::Delete => {
            forbidden("only administrators may do this.")
        }
        MachineAction::Allocate | MachineAction::Deploy => match m.owner {
            None => Ok(()),
            Some(o) if o == actor.username => Ok(()),
            Some(_) => forbidden("it is allocated to another user."),
        },
        MachineAction::Abort
        | MachineAction::Release
        | MachineAction::MarkBroken
        | MachineAction::Rescue
        | MachineAction::ExitRescue => match m.owner {
            Some(o) if o == actor.username => Ok(()),
            _ => forbidden("you do not own it; ask an administrator."),
        },
    }
}

/// The status a machine goes to when its in-progress operation's deadline passes.
pub fn on_deadline(status: MachineStatus) -> Option<MachineStatus> {
    failure_status(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADMIN: Actor<'static> = Actor {
        username: "admin",
        is_admin: true,
    };
    const ALICE: Actor<'static> = Actor {
        username: "alice",
        is_admin: false,
    };

    fn facts(status: MachineStatus, owner: Option<&str>) -> MachineFacts<'_> {
        MachineFacts {
            status,
            previous_status: None,
            owner,
            power_controllable: true,
        }
    }

    /// Every (status, action) pair for an admin: legal exactly when the status is in
    /// `allowed_from(action)`, and then the transition is in MAAS's table.
    #[test]
    fn every_status_action_pair_for_admin() {
        let mut legal = 0;
        let mut refused = 0;
        for st in MachineStatus::ALL {
            for action in MachineAction::ALL {
                for prev in std::iter::once(None).chain(MachineStatus::ALL.map(Some)) {
                    for controllable in [true, false] {
                        let m = MachineFacts {
                            status: st,
                            previous_status: prev,
                            owner: Some("alice"),
                            power_controllable: controllable,
                        };
                        match decide(&m, &ADMIN, action) {
                            Ok(Decision::Transition { to, via, .. }) => {
                                assert!(allowed_from(action).contains(&st));
                                let hops: Vec<MachineStatus> =
                                    std::iter::once(st).chain(via).chain([to]).collect();
                                for w in hops.windows(2) {
                                    assert!(
                                        allowed_transition(w[0], w[1]),
                                        "{action} from {st} (prev {prev:?}) steps {} -> {}, which MAAS's table forbids",
                                        w[0], w[1]
                                    );
                                }
                                legal += 1;
                            }
                            Ok(Decision::Delete) => {
                                assert_eq!(action, MachineAction::Delete);
                                assert!(!in_progress(st), "delete while {st}");
                                legal += 1;
                            }
                            Err(Refusal::InvalidState {
                                allowed_from: a, ..
                            }) => {
                                assert!(!allowed_from(action).contains(&st));
                                assert_eq!(a, allowed_from(action));
                                refused += 1;
                            }
                            Err(Refusal::Forbidden { .. }) => {
                                panic!("admin refused {action} on {st}")
                            }
                        }
                    }
                }
            }
        }
        assert!(legal > 0 && refused > 0);
    }

    /// The expected target for each legal (status, action) pair, written out as a table.
    #[test]
    fn transition_targets_table() {
        use MachineAction as A;
        let cases: &[(MachineStatus, MachineAction, MachineStatus)] = &[
            (S::New, A::Commission, S::Commissioning),
            (S::Ready, A::Commission, S::Commissioning),
            (S::FailedCommissioning, A::Commission, S::Commissioning),
            (S::Broken, A::Commission, S::Commissioning),
            (S::Ready, A::Allocate, S::Allocated),
            (S::Ready, A::Deploy, S::Deploying),
            (S::Allocated, A::Deploy, S::Deploying),
            (S::Deploying, A::Abort, S::Allocated),
            (S::DiskErasing, A::Abort, S::FailedDiskErasing),
            (S::Allocated, A::Release, S::Ready),
            (S::Deployed, A::Release, S::Releasing),
            (S::FailedDeployment, A::Release, S::Releasing),
            (S::Ready, A::MarkBroken, S::Broken),
            (S::Deployed, A::MarkBroken, S::Broken),
            (S::Broken, A::MarkFixed, S::Ready),
            (S::Deployed, A::Rescue, S::EnteringRescueMode),
            (S::RescueMode, A::ExitRescue, S::ExitingRescueMode),
        ];
        for &(from, action, to) in cases {
            match decide(&facts(from, Some("admin")), &ADMIN, action) {
                Ok(Decision::Transition { to: got, .. }) => {
                    assert_eq!(got, to, "{action} from {from}")
                }
                other => panic!("{action} from {from}: {other:?}"),
            }
        }
    }

    #[test]
    fn abort_commissioning_returns_to_previous_status() {
        let mut m = facts(S::Commissioning, None);
        m.previous_status = Some(S::New);
        assert_eq!(
            decide(&m, &ADMIN, MachineAction::Abort),
            Ok(Decision::Transition {
                to: S::New,
                owner: OwnerChange::Keep,
                via: None
            })
        );
        m.previous_status = Some(S::Ready);
        assert!(matches!(
            decide(&m, &ADMIN, MachineAction::Abort),
            Ok(Decision::Transition { to: S::Ready, .. })
        ));
        // A previous status the table does not allow going back to fails instead.
        m.previous_status = Some(S::FailedTesting);
        assert!(matches!(
            decide(&m, &ADMIN, MachineAction::Abort),
            Ok(Decision::Transition {
                to: S::FailedCommissioning,
                ..
            })
        ));
    }

    #[test]
    fn mark_fixed_returns_deployed_machine_to_deployed() {
        let mut m = facts(S::Broken, Some("alice"));
        m.previous_status = Some(S::Deployed);
        assert!(matches!(
            decide(&m, &ADMIN, MachineAction::MarkFixed),
            Ok(Decision::Transition {
                to: S::Deployed,
                owner: OwnerChange::Keep,
                via: None
            })
        ));
        m.previous_status = Some(S::New);
        assert!(matches!(
            decide(&m, &ADMIN, MachineAction::MarkFixed),
            Ok(Decision::Transition {
                to: S::Ready,
                owner: OwnerChange::Clear,
                via: None
            })
        ));
    }

    #[test]
    fn release_of_manual_power_machine_is_immediate() {
        let mut m = facts(S::Deployed, Some("alice"));
        m.power_controllable = false;
        assert_eq!(
            decide(&m, &ALICE, MachineAction::Release),
            Ok(Decision::Transition {
                to: S::Ready,
                owner: OwnerChange::Clear,
                via: None
            })
        );
    }

    #[test]
    fn deploy_of_free_machine_allocates_it_to_the_actor() {
        assert_eq!(
            decide(&facts(S::Ready, None), &ALICE, MachineAction::Deploy),
            Ok(Decision::Transition {
                to: S::Deploying,
                owner: OwnerChange::Set("alice".into()),
                via: Some(S::Allocated)
            })
        );
    }

    /// Every (status, action) pair for a non-admin user, on a free machine, their own, and another's.
    #[test]
    fn every_status_action_pair_for_user() {
        for st in MachineStatus::ALL {
            for action in MachineAction::ALL {
                for owner in [None, Some("alice"), Some("bob")] {
                    let res = decide(&facts(st, owner), &ALICE, action);
                    let admin_only = matches!(
                        action,
                        MachineAction::Commission
                            | MachineAction::MarkFixed
                            | MachineAction::Delete
                    );
                    let needs_own = matches!(
                        action,
                        MachineAction::Abort
                            | MachineAction::Release
                            | MachineAction::MarkBroken
                            | MachineAction::Rescue
                            | MachineAction::ExitRescue
                    );
                    let expect_forbidden = admin_only
                        || (needs_own && owner != Some("alice"))
                        || (owner == Some("bob"));
                    match res {
                        Err(Refusal::Forbidden { .. }) => {
                            assert!(expect_forbidden, "{action} on {st} owned by {owner:?}")
                        }
                        Err(Refusal::InvalidState { .. }) => {
                            assert!(!expect_forbidden);
                            assert!(!allowed_from(action).contains(&st));
                        }
                        Ok(_) => {
                            assert!(!expect_forbidden, "{action} on {st} owned by {owner:?}");
                            assert!(allowed_from(action).contains(&st));
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn refusal_message_names_status_and_what_is_allowed() {
        let err = decide(&facts(S::New, None), &ADMIN, MachineAction::Deploy).unwrap_err();
        assert_eq!(
            err.message("abc123"),
            "Cannot deploy machine abc123: it is New; deploy is allowed only from Ready or Allocated. Commission it first."
        );
        let err = decide(&facts(S::Ready, None), &ALICE, MachineAction::Commission).unwrap_err();
        assert_eq!(
            err.message("abc123"),
            "You may not commission machine abc123: only administrators may do this."
        );
    }

    #[test]
    fn in_progress_statuses_have_a_deadline_and_a_failed_status() {
        for st in MachineStatus::ALL {
            assert_eq!(in_progress(st), deadline_kind(st).is_some());
            if let Some(f) = on_deadline(st) {
                assert!(allowed_transition(st, f), "{st} -> {f}");
                assert!(!in_progress(f));
            }
        }
        assert_eq!(deadline_kind(S::Releasing), Some(DeadlineKind::Short));
        assert_eq!(deadline_kind(S::Commissioning), Some(DeadlineKind::Node));
        assert_eq!(deadline_kind(S::Ready), None);
    }
}
