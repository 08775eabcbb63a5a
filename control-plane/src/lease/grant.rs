//! The arithmetic of a grant, apart from the database so every rule is tested on its own.
//!
//! Guarantees: a grant never exceeds what is left in its pool (so the sum of grants never
//! exceeds the limit), and a grant is never rounded up.

use rust_decimal::{Decimal, RoundingStrategy};

/// A budget pool is handed out in slices of at least `amount / BUDGET_SLICES`, so a proxy asks
/// rarely, yet about twenty proxies can hold a slice each before the pool runs low.
pub const BUDGET_SLICES: u32 = 20;
/// A rate pool is handed out in slices of at least `limit / RATE_SLICES` (and at least 1).
pub const RATE_SLICES: u64 = 50;
/// Budget grants are cut (never rounded up) to this many decimal places of a dollar.
pub const MONEY_SCALE: u32 = 10;

/// What one lease holds against its pool: while the proxy still holds it, everything granted
/// (or more, if it spent more than it was granted); once released, only what it used.
pub fn committed<T: Ord + Copy>(granted: T, used: T, released: bool) -> T {
    if released {
        used
    } else {
        granted.max(used)
    }
}

/// Money granted to a proxy that wants `want` of a budget of `amount` with `available` left:
/// at least a slice of the budget, but never more than what is left, so grants shrink to the
/// remainder as the pool runs low and reach exactly zero when it is empty.
pub fn budget_grant(amount: Decimal, want: Decimal, available: Decimal) -> Decimal {
    let slice = amount / Decimal::from(BUDGET_SLICES);
    let grant = want
        .max(slice)
        .min(available.max(Decimal::ZERO))
        .round_dp_with_strategy(MONEY_SCALE, RoundingStrategy::ToZero);
    grant.max(Decimal::ZERO)
}

/// Requests or tokens granted to a proxy that wants `want` of a window with `limit`, of which
/// `committed` is already held (this proxy's own holding included). At least a slice of the
/// limit, never more than is left, and, while `others_hold` (other proxies hold unreleased
/// leases in this window), never more than half of what is left, rounded up: the last units
/// are split rather than taken by the first to ask, and a single unit still goes to someone.
pub fn rate_grant(limit: u64, committed: u64, want: u64, others_hold: bool) -> u64 {
    let left = limit.saturating_sub(committed);
    let cap = if others_hold { left.div_ceil(2) } else { left };
    want.max((limit / RATE_SLICES).max(1)).min(cap)
}

/// A requested amount of requests or tokens as a whole number (partial units round up, so the
/// proxy is never short); `None` if negative.
pub fn whole_units(v: Decimal) -> Option<u64> {
    if v < Decimal::ZERO {
        return None;
    }
    let ceil = v.ceil();
    Some(u64::try_from(ceil).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn a_budget_grant_is_at_least_a_slice_and_at_most_what_is_left() {
        // $1.00 budget: slices of $0.05.
        assert_eq!(budget_grant(d("1"), d("0.001"), d("1")), d("0.05"));
        assert_eq!(budget_grant(d("1"), d("0.30"), d("1")), d("0.30"));
        assert_eq!(budget_grant(d("1"), d("0.30"), d("0.02")), d("0.02"));
        assert_eq!(budget_grant(d("1"), d("0.30"), d("0")), d("0"));
        assert_eq!(budget_grant(d("1"), d("0.30"), d("-0.5")), d("0"));
        // Never rounded up past what is left.
        assert_eq!(
            budget_grant(d("1"), d("1"), d("0.00000000019")),
            d("0.0000000001")
        );
    }

    #[test]
    fn budget_grants_drain_the_pool_exactly() {
        let amount = d("1.00");
        let mut left = amount;
        let mut total = Decimal::ZERO;
        for i in 0..100 {
            let want = Decimal::new(i % 7 + 1, 3);
            let g = budget_grant(amount, want, left);
            assert!(g <= left);
            left -= g;
            total += g;
        }
        assert_eq!(total, amount, "nothing lost, nothing extra");
        assert_eq!(left, Decimal::ZERO);
    }

    #[test]
    fn a_lease_commits_what_it_may_still_spend() {
        assert_eq!(committed(d("0.5"), d("0.2"), false), d("0.5"));
        assert_eq!(committed(d("0.5"), d("0.2"), true), d("0.2"));
        assert_eq!(committed(d("0.5"), d("0.7"), false), d("0.7"));
        assert_eq!(committed(10u64, 3, true), 3);
    }

    #[test]
    fn rate_grants_take_a_slice_and_split_the_end() {
        // 1000 rpm: slices of 20.
        assert_eq!(rate_grant(1000, 0, 1, false), 20);
        assert_eq!(rate_grant(1000, 0, 300, false), 300);
        assert_eq!(rate_grant(1000, 990, 20, false), 10);
        assert_eq!(rate_grant(1000, 990, 20, true), 5);
        assert_eq!(
            rate_grant(1000, 999, 20, true),
            1,
            "the last unit still goes"
        );
        assert_eq!(rate_grant(1000, 1000, 20, true), 0);
        assert_eq!(rate_grant(1000, 1200, 20, false), 0);
        // Tiny limits: slices of one.
        assert_eq!(rate_grant(10, 0, 0, false), 1);
        assert_eq!(rate_grant(0, 0, 5, false), 0);
    }

    #[test]
    fn three_proxies_share_a_window_without_exceeding_it_or_starving() {
        let limit = 600;
        let mut held = [0u64; 3];
        let mut total = 0;
        // Round robin, each asking for what it used last time.
        for round in 0..200 {
            let p = round % 3;
            let others = held.iter().enumerate().any(|(i, h)| i != p && *h > 0);
            let g = rate_grant(limit, total, 7, others);
            held[p] += g;
            total += g;
        }
        assert_eq!(total, limit);
        assert!(held.iter().all(|h| *h >= limit / 4), "{held:?}");
    }

    #[test]
    fn wanted_units_round_up_and_refuse_negatives() {
        assert_eq!(whole_units(d("2.1")), Some(3));
        assert_eq!(whole_units(d("0")), Some(0));
        assert_eq!(whole_units(d("-1")), None);
        assert_eq!(whole_units(d("100000000000000000000")), Some(u64::MAX));
    }
}
