//! What to tell one write-back destination about one (deal, milestone), given what it was told
//! before: send it once, restate it when its value changes, retract it when the deal leaves it,
//! and send it again if the deal comes back. Each decision carries a version, so every request has
//! its own key while the vendor-side dedup key of the conversion stays the same.

use tandem_connectors::writeback::WritebackAction;

/// What a destination has been told about one (deal, milestone), as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Told {
    pub retracted: bool,
    pub value_minor: Option<i64>,
    pub currency: Option<String>,
    pub version: i64,
}

/// What should be true at the destination now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Want {
    /// The deal is (still) at this milestone.
    pub holds: bool,
    pub value_minor: Option<i64>,
    pub currency: Option<String>,
}

/// What the destination's vendor can express beyond a plain send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    pub restate: bool,
    pub retract: bool,
}

/// The action to enqueue and what the destination will have been told once it is delivered;
/// `None`: nothing to do (already told, or the vendor can't express the change).
pub fn decide(told: Option<&Told>, want: &Want, caps: Caps) -> Option<(WritebackAction, Told)> {
    let next = |retracted: bool, version: i64| Told {
        retracted,
        value_minor: want.value_minor,
        currency: want.currency.clone(),
        version,
    };
    match told {
        None if want.holds => Some((WritebackAction::Send, next(false, 0))),
        None => None,
        Some(t) if t.retracted => want
            .holds
            .then(|| (WritebackAction::Send, next(false, t.version + 1))),
        Some(t) if !want.holds => caps.retract.then(|| {
            let mut after = t.clone();
            after.retracted = true;
            after.version += 1;
            (WritebackAction::Retract, after)
        }),
        Some(t) => {
            let changed = t.value_minor != want.value_minor || t.currency != want.currency;
            (changed && caps.restate)
                .then(|| (WritebackAction::Restate, next(false, t.version + 1)))
        }
    }
}

/// The per-request key: the conversion key for the first send, with the action and version after.
pub fn request_key(key: &str, action: WritebackAction, version: i64) -> String {
    match (action, version) {
        (WritebackAction::Send, 0) => key.to_owned(),
        (WritebackAction::Send, v) => format!("{key}:send:{v}"),
        (WritebackAction::Restate, v) => format!("{key}:restate:{v}"),
        (WritebackAction::Retract, v) => format!("{key}:retract:{v}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: Caps = Caps {
        restate: true,
        retract: true,
    };
    const SEND_ONLY: Caps = Caps {
        restate: false,
        retract: false,
    };

    fn want(holds: bool, value: i64) -> Want {
        Want {
            holds,
            value_minor: Some(value),
            currency: Some("EUR".into()),
        }
    }

    #[test]
    fn a_milestone_is_sent_once_restated_on_change_retracted_and_sent_again() {
        let (a, t0) = decide(None, &want(true, 100), ALL).unwrap();
        assert_eq!((a, t0.version), (WritebackAction::Send, 0));
        assert_eq!(decide(Some(&t0), &want(true, 100), ALL), None);
        let (a, t1) = decide(Some(&t0), &want(true, 150), ALL).unwrap();
        assert_eq!(
            (a, t1.version, t1.value_minor),
            (WritebackAction::Restate, 1, Some(150))
        );
        let (a, t2) = decide(Some(&t1), &want(false, 150), ALL).unwrap();
        assert_eq!(
            (a, t2.retracted, t2.version),
            (WritebackAction::Retract, true, 2)
        );
        assert_eq!(decide(Some(&t2), &want(false, 150), ALL), None);
        let (a, t3) = decide(Some(&t2), &want(true, 150), ALL).unwrap();
        assert_eq!(
            (a, t3.retracted, t3.version),
            (WritebackAction::Send, false, 3)
        );
        assert_eq!(request_key("k", WritebackAction::Send, 0), "k");
        assert_eq!(request_key("k", WritebackAction::Retract, 2), "k:retract:2");
    }

    #[test]
    fn vendors_without_adjustments_are_told_nothing_more_and_nothing_is_forgotten() {
        assert_eq!(decide(None, &want(false, 1), ALL), None);
        let (_, t0) = decide(None, &want(true, 100), SEND_ONLY).unwrap();
        assert_eq!(decide(Some(&t0), &want(true, 150), SEND_ONLY), None);
        assert_eq!(decide(Some(&t0), &want(false, 100), SEND_ONLY), None);
    }
}
