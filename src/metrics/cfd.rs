//! Cumulative flow (pure): for each day, how many work items were in each state at the end of that day,
//! from their state histories. An item counts from its creation (in its first recorded state, or its
//! state at creation when the history starts later) and in the last state it entered by the day's end.

use std::collections::BTreeMap;

use crate::workitems::StateChange;

/// One work item as the flow sees it.
#[derive(Debug, Clone)]
pub struct FlowItem {
    /// Created, epoch ms.
    pub created_at: i64,
    /// Its state before the first recorded change (usually the first state).
    pub initial_state: String,
    /// Changes, any order.
    pub history: Vec<StateChange>,
}

/// Counts per state for each day ending at `day_ends[i]` (epoch ms, exclusive ends).
pub fn compute(items: &[FlowItem], day_ends: &[i64]) -> BTreeMap<String, Vec<u64>> {
    let mut out: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for item in items {
        let mut history = item.history.clone();
        history.sort_by_key(|c| c.at);
        for (i, end) in day_ends.iter().enumerate() {
            if item.created_at >= *end {
                continue;
            }
            let state =
                history.iter().rev().find(|c| c.at < *end).map(|c| c.state.as_str()).unwrap_or(&item.initial_state);
            out.entry(state.to_string()).or_insert_with(|| vec![0; day_ends.len()])[i] += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    fn change(state: &str, at: i64) -> StateChange {
        StateChange { state: state.into(), at, author: None }
    }

    /// Three items over four days (ends at day 1, 2, 3, 4), checked by hand:
    /// - A: created day 0, planning → developing (day 1.5) → resolved (day 2.5);
    /// - B: created day 0.5, planning → developing (day 3.2);
    /// - C: created day 2.1 in planning, no changes recorded.
    ///
    /// day 1: A planning, B planning → planning 2;
    /// day 2: A developing, B planning → planning 1, developing 1;
    /// day 3: A resolved, B planning, C planning → planning 2, resolved 1;
    /// day 4: A resolved, B developing, C planning → planning 1, developing 1, resolved 1.
    #[test]
    fn a_constructed_history_gives_the_hand_checked_flow() {
        let items = vec![
            FlowItem {
                created_at: 0,
                initial_state: "planning".into(),
                history: vec![
                    change("resolved", 5 * DAY / 2),
                    change("planning", 0),
                    change("developing", 3 * DAY / 2),
                ],
            },
            FlowItem {
                created_at: DAY / 2,
                initial_state: "planning".into(),
                history: vec![change("planning", DAY / 2), change("developing", 32 * DAY / 10)],
            },
            FlowItem { created_at: 21 * DAY / 10, initial_state: "planning".into(), history: vec![] },
        ];
        let flow = compute(&items, &[DAY, 2 * DAY, 3 * DAY, 4 * DAY]);
        assert_eq!(flow["planning"], [2, 1, 2, 1]);
        assert_eq!(flow["developing"], [0, 1, 0, 1]);
        assert_eq!(flow["resolved"], [0, 0, 1, 1]);
        assert_eq!(flow.len(), 3);
    }
}
