//! Where the deal poll stands, as the opaque cursor string the daemon commits with each page, and
//! the CRM search each position asks for.
//!
//! Every page is a fresh search sorted by `hs_lastmodifieddate` ascending that starts at the last
//! stamp returned (keyset paging): `(stamp > from) OR (stamp = from AND id NOT IN seen)`, where
//! `seen` are the ids already returned at exactly `from`. HubSpot's own `after` is an offset into
//! a result set that moves while it is paged (an already-read deal edited mid-way jumps to the
//! end and shifts every later deal back one place, so one would be skipped) and stops at 10,000
//! results; a fresh search per page has neither problem and costs the same one call.
//!
//! More deals stamped with one millisecond than `seen` may hold ([`MAX_SEEN`]) are read in id
//! order instead (`stamp = from AND hs_object_id > last`), then the search continues after that
//! millisecond. When a pass reaches the newest deal, the next one starts `overlap` before the
//! newest stamp, so writes HubSpot's search index shows late are found by the next poll.

use serde::{Deserialize, Serialize};

use crate::hubspot::deals_wire::{Filter, FilterGroup, SearchRequest, Sort};

/// HubSpot's largest search page.
pub const PAGE_SIZE: u32 = 200;
/// Values per `NOT_IN` filter, and `NOT_IN` filters per group (decision: see docs/crm/hubspot.md).
pub const NOT_IN_VALUES: usize = 100;
pub const NOT_IN_FILTERS: usize = 5;
/// Ids at one stamp the exclusion can carry.
pub const MAX_SEEN: usize = NOT_IN_VALUES * NOT_IN_FILTERS;

pub const STAMP: &str = "hs_lastmodifieddate";
pub const ID: &str = "hs_object_id";
const VERSION: u8 = 1;

/// The poll's position (JSON in the daemon's store).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub v: u8,
    /// Lower bound of the next search (unix ms).
    pub from_ms: i64,
    /// Every deal stamped exactly `from_ms` was returned: search strictly after it.
    #[serde(default, skip_serializing_if = "is_false")]
    pub past_from: bool,
    /// Ids stamped exactly `from_ms` already returned, excluded from the next search.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seen: Vec<String>,
    /// Reading the deals stamped exactly `from_ms` in id order: the last id returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_after: Option<u64>,
    /// The newest stamp returned so far; the overlap is measured back from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newest_ms: Option<i64>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// One returned deal, as far as the cursor cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamped {
    pub id: String,
    pub modified_ms: i64,
}

impl Cursor {
    /// The first poll's cursor: everything modified since `since_ms`.
    pub fn first(since_ms: i64) -> Cursor {
        Cursor {
            v: VERSION,
            from_ms: since_ms,
            past_from: false,
            seen: Vec::new(),
            cluster_after: None,
            newest_ms: None,
        }
    }

    /// A stored cursor; `None` if it isn't one this connector wrote.
    pub fn decode(raw: &str) -> Option<Cursor> {
        let c: Cursor = serde_json::from_str(raw).ok()?;
        (c.v == VERSION).then_some(c)
    }

    pub fn encode(&self) -> String {
        // A struct of strings and numbers always serialises.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The search for the next page, asking for `properties`.
    pub fn search(&self, properties: &[&str]) -> SearchRequest {
        let from = self.from_ms.to_string();
        let (filter_groups, sort_by) = if let Some(last) = self.cluster_after {
            let group = FilterGroup {
                filters: vec![
                    Filter::single(STAMP, "EQ", from),
                    Filter::single(ID, "GT", last.to_string()),
                ],
            };
            (vec![group], ID)
        } else if self.past_from {
            let group = FilterGroup {
                filters: vec![Filter::single(STAMP, "GT", from)],
            };
            (vec![group], STAMP)
        } else if self.seen.is_empty() {
            let group = FilterGroup {
                filters: vec![Filter::single(STAMP, "GTE", from)],
            };
            (vec![group], STAMP)
        } else {
            let later = FilterGroup {
                filters: vec![Filter::single(STAMP, "GT", from.clone())],
            };
            let mut same = vec![Filter::single(STAMP, "EQ", from)];
            same.extend(
                self.seen
                    .chunks(NOT_IN_VALUES)
                    .map(|ids| Filter::many(ID, "NOT_IN", ids.to_vec())),
            );
            (vec![later, FilterGroup { filters: same }], STAMP)
        };
        SearchRequest {
            filter_groups,
            sorts: vec![Sort {
                property_name: sort_by.to_owned(),
                direction: "ASCENDING".to_owned(),
            }],
            properties: properties.iter().map(|p| (*p).to_owned()).collect(),
            limit: PAGE_SIZE,
            after: "0".to_owned(),
        }
    }

    /// The cursor after a page of `deals` (in the order HubSpot returned them); `last_page` when
    /// HubSpot said no page follows. Returns the next cursor and whether to poll again at once.
    pub fn advance(&self, deals: &[Stamped], last_page: bool, overlap_ms: i64) -> (Cursor, bool) {
        // An empty page ends the pass whatever its paging says, so nothing can spin on it.
        let last_page = last_page || deals.is_empty();
        let mut next = self.clone();
        next.newest_ms = deals
            .iter()
            .map(|d| d.modified_ms)
            .chain(self.newest_ms)
            .max();
        if self.cluster_after.is_some() {
            // Id order inside one millisecond: when it runs out, continue after that millisecond.
            let last = deals.iter().filter_map(|d| d.id.parse::<u64>().ok()).max();
            match last {
                Some(last) if !last_page => next.cluster_after = Some(last),
                _ => {
                    next.cluster_after = None;
                    next.past_from = true;
                    next.seen.clear();
                }
            }
            return (next, true);
        }
        if let Some(max) = deals.iter().map(|d| d.modified_ms).max() {
            let at_max = deals.iter().filter(|d| d.modified_ms == max).map(|d| &d.id);
            if max > self.from_ms || self.past_from {
                next.from_ms = max;
                next.past_from = false;
                next.seen = at_max.cloned().collect();
            } else {
                for id in at_max {
                    if !next.seen.contains(id) {
                        next.seen.push(id.clone());
                    }
                }
            }
            next.seen.sort();
            next.seen.dedup();
            let mut before = self.seen.clone();
            before.sort();
            // Nothing new at the same millisecond means the exclusion did not take: fall back
            // to id order rather than ask the same search again.
            let stuck = next.from_ms == self.from_ms && next.seen == before;
            if (next.seen.len() > MAX_SEEN || stuck) && !last_page {
                // A whole page at one millisecond and more waiting: read that millisecond by id.
                next.seen.clear();
                next.cluster_after = Some(0);
                return (next, true);
            }
        }
        if !last_page {
            return (next, true);
        }
        // The pass reached the newest deal: the next one re-reads `overlap` before it.
        if overlap_ms > 0
            && let Some(newest) = next.newest_ms
        {
            next.from_ms = newest.saturating_sub(overlap_ms);
            next.past_from = false;
            next.seen.clear();
        }
        (next, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(id: &str, ms: i64) -> Stamped {
        Stamped {
            id: id.to_owned(),
            modified_ms: ms,
        }
    }

    fn groups(c: &Cursor) -> serde_json::Value {
        serde_json::to_value(c.search(&["dealstage"]).filter_groups).unwrap()
    }

    #[test]
    fn first_search_is_gte_since_sorted_ascending() {
        let c = Cursor::first(1_000);
        let s = c.search(&["amount"]);
        assert_eq!(
            serde_json::to_value(&s).unwrap(),
            serde_json::json!({
                "filterGroups": [{"filters": [{"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": "1000"}]}],
                "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
                "properties": ["amount"], "limit": 200, "after": "0"
            })
        );
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        assert_eq!(Cursor::decode("{\"v\":9,\"from_ms\":1}"), None);
        assert_eq!(Cursor::decode("garbage"), None);
    }

    #[test]
    fn equal_stamps_across_a_page_boundary_are_excluded_not_skipped() {
        let c = Cursor::first(0);
        let (c, more) = c.advance(&[d("1", 10), d("2", 20), d("3", 20)], false, 0);
        assert!(more);
        assert_eq!(
            (c.from_ms, c.seen.clone()),
            (20, vec!["2".into(), "3".into()])
        );
        assert_eq!(
            groups(&c),
            serde_json::json!([
                {"filters": [{"propertyName": "hs_lastmodifieddate", "operator": "GT", "value": "20"}]},
                {"filters": [
                    {"propertyName": "hs_lastmodifieddate", "operator": "EQ", "value": "20"},
                    {"propertyName": "hs_object_id", "operator": "NOT_IN", "values": ["2", "3"]}
                ]}
            ])
        );
        // The next page starts with the rest of stamp 20: they join `seen`.
        let (c, _) = c.advance(&[d("4", 20)], false, 0);
        assert_eq!((c.from_ms, c.seen.len()), (20, 3));
        let (c, more) = c.advance(&[d("5", 30)], true, 0);
        assert!(!more);
        assert_eq!(
            (c.from_ms, c.seen.clone(), c.newest_ms),
            (30, vec!["5".into()], Some(30))
        );
    }

    #[test]
    fn a_finished_pass_steps_back_by_the_overlap_from_the_newest_stamp() {
        let c = Cursor::first(0);
        let (c, more) = c.advance(&[d("1", 100_000), d("2", 200_000)], true, 120_000);
        assert!(!more);
        assert_eq!(c.from_ms, 80_000);
        assert!(c.seen.is_empty());
        // An idle pass keeps the same window instead of drifting back.
        let (c2, _) = c.advance(&[d("2", 200_000)], true, 120_000);
        assert_eq!(c2, c);
        let (c3, _) = c.advance(&[], true, 120_000);
        assert_eq!(c3, c);
        // Nothing ever seen: stay at the start.
        let (c4, more) = Cursor::first(5).advance(&[], true, 120_000);
        assert_eq!((c4.from_ms, more), (5, false));
    }

    #[test]
    fn a_crowded_millisecond_is_read_by_id_then_left_behind() {
        let page: Vec<Stamped> = (0..200).map(|i| d(&(1000 + i).to_string(), 7)).collect();
        let (c, more) = Cursor::first(7).advance(&page, false, 0);
        assert!(more);
        assert_eq!((c.seen.len(), c.cluster_after), (200, None));
        // The same page again (the exclusion did not take): no spinning, id order instead.
        let (stuck, more) = c.advance(&page, false, 0);
        assert!(more);
        assert_eq!(stuck.cluster_after, Some(0));
        let page2: Vec<Stamped> = (200..400).map(|i| d(&(1000 + i).to_string(), 7)).collect();
        let page3: Vec<Stamped> = (400..600).map(|i| d(&(1000 + i).to_string(), 7)).collect();
        let (c, _) = c.advance(&page2, false, 0);
        let (c, more) = c.advance(&page3, false, 0);
        assert!(more);
        assert_eq!(c.cluster_after, Some(0));
        assert!(c.seen.is_empty());
        let s = c.search(&[]);
        assert_eq!(s.sorts[0].property_name, "hs_object_id");
        assert_eq!(
            groups(&c),
            serde_json::json!([{"filters": [
                {"propertyName": "hs_lastmodifieddate", "operator": "EQ", "value": "7"},
                {"propertyName": "hs_object_id", "operator": "GT", "value": "0"}
            ]}])
        );
        let (c, more) = c.advance(&page, false, 0);
        assert!(more);
        assert_eq!(c.cluster_after, Some(1199));
        let (c, more) = c.advance(&page2[..50], true, 0);
        assert!(more, "the millisecond is done, later deals may wait");
        assert!(c.past_from && c.cluster_after.is_none());
        assert_eq!(
            groups(&c),
            serde_json::json!([{"filters": [{"propertyName": "hs_lastmodifieddate", "operator": "GT", "value": "7"}]}])
        );
        let (c, more) = c.advance(&[d("9", 8)], true, 0);
        assert!(!more);
        assert!(!c.past_from);
        assert_eq!((c.from_ms, c.seen.clone()), (8, vec!["9".into()]));
    }

    #[test]
    fn many_seen_ids_are_split_into_not_in_filters_of_100() {
        let mut c = Cursor::first(3);
        c.seen = (0..250).map(|i| i.to_string()).collect();
        let s = c.search(&[]);
        let same = &s.filter_groups[1].filters;
        assert_eq!(same.len(), 4);
        assert_eq!(same[1].values.as_ref().unwrap().len(), 100);
        assert_eq!(same[3].values.as_ref().unwrap().len(), 50);
    }
}
