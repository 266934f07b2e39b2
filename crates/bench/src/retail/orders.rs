//! `orders.csv`: the online shop's orders.
//!
//! Columns: `OrderId` (`SO-` and eight digits, in order-date order), `ShopCustomerId` (a
//! `customer_id` of `shop_customers.parquet`; empty for guest checkouts), `OrderDate`
//! (`yyyy-MM-ddTHH:mm:ssZ`), `Amount` (two decimals), `Currency` (`USD`, `CAD` or `EUR`),
//! `Channel` (`Web`, `Mobile` or `Store`) and `Items` (number of items). Every order falls
//! after its customer signed up; early customers have ordered more.

use std::path::Path;

use rand::Rng;

use super::csv::{join, CsvWriter};
use super::dates::{format_datetime, EPOCH_SECS};
use super::plan::{defect_at, place_defects, Placed};
use super::rng::{pick_weighted, rng_for, Stream};
use super::shop::{customer_id, signup_secs, SIGNUP_FIRST};
use super::{FileSummary, MalformedKind, MalformedRow, RetailConfig, Written, ORDERS_FILE};
use crate::error::Result;

/// The header of `orders.csv`.
pub(crate) const HEADER: [&str; 7] = [
    "OrderId",
    "ShopCustomerId",
    "OrderDate",
    "Amount",
    "Currency",
    "Channel",
    "Items",
];

const ORDER_DATE: usize = 2;
const AMOUNT: usize = 3;
const CHANNEL: usize = 5;
const ITEMS: usize = 6;

const GUEST: u32 = u32::MAX;
const CURRENCIES: [(&str, u32); 3] = [("USD", 970), ("CAD", 20), ("EUR", 10)];
const CHANNELS: [(&str, u32); 3] = [("Web", 550), ("Mobile", 300), ("Store", 150)];
const NUMBER_WORDS: [&str; 9] = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Defect {
    AmountWithDecimalComma,
    ItemsInWords,
    OrderDateNotInCalendar,
    MissingKey,
    DuplicateKey,
    TooFewFields,
    TooManyFields,
    UnescapedQuote,
}

const DEFECTS: [Defect; 8] = [
    Defect::AmountWithDecimalComma,
    Defect::ItemsInWords,
    Defect::OrderDateNotInCalendar,
    Defect::MissingKey,
    Defect::DuplicateKey,
    Defect::TooFewFields,
    Defect::TooManyFields,
    Defect::UnescapedQuote,
];

fn kind(defect: Defect) -> MalformedKind {
    match defect {
        Defect::AmountWithDecimalComma | Defect::ItemsInWords => MalformedKind::NonNumeric,
        Defect::OrderDateNotInCalendar => MalformedKind::BadDate,
        Defect::MissingKey => MalformedKind::MissingKey,
        Defect::DuplicateKey => MalformedKind::DuplicateKey,
        Defect::TooFewFields => MalformedKind::TooFewFields,
        Defect::TooManyFields => MalformedKind::TooManyFields,
        Defect::UnescapedQuote => MalformedKind::UnescapedQuote,
    }
}

/// One order.
#[derive(Debug, Clone, Copy)]
struct Order {
    secs: i64,
    draw: u32,
    customer: u32,
    cents: u32,
    items: u8,
    currency: u8,
    channel: u8,
}

/// All orders in date order, the malformed rows among them, and what each shop customer spent.
pub(crate) struct OrderPlan {
    orders: Vec<Order>,
    defects: Vec<Placed<Defect>>,
    /// Sum of the well-formed orders of each shop customer row, in cents.
    pub lifetime_value: Vec<i64>,
}

/// Where the malformed rows go.
fn defects(config: &RetailConfig) -> Vec<Placed<Defect>> {
    if config.malformed_rows {
        place_defects(config.seed, 4, config.orders, &DEFECTS)
    } else {
        Vec::new()
    }
}

/// The lines and kinds of the malformed rows.
pub(crate) fn malformed_lines(config: &RetailConfig) -> Vec<(usize, MalformedKind)> {
    defects(config)
        .iter()
        .map(|p| (p.row + 2, kind(p.defect)))
        .collect()
}

/// Draws the orders.
pub(crate) fn plan(config: &RetailConfig) -> OrderPlan {
    let seed = config.seed;
    let customers = config.shop_customers;
    let mut orders: Vec<Order> = (0..config.orders)
        .map(|i| {
            let mut rng = rng_for(seed, Stream::Order, i as u64);
            let guest = customers == 0 || rng.random_range(0..100) == 0;
            let (customer, start) = if guest {
                (GUEST, SIGNUP_FIRST)
            } else {
                let a = rng.random_range(0..customers);
                let b = rng.random_range(0..customers);
                let row = a.min(b);
                (row as u32, signup_secs(seed, row, customers))
            };
            let secs = start + rng.random_range(0..(EPOCH_SECS - 1 - start).max(1));
            let items = 1 + rng.random_range(0..8u8).min(rng.random_range(0..8u8));
            let cents = (0..items)
                .map(|_| {
                    let dollars = rng.random_range(3..200u32).min(rng.random_range(3..200u32));
                    dollars * 100 - 1
                })
                .sum();
            let currency = pick_weighted(&mut rng, CURRENCIES.iter().map(|c| c.1)) as u8;
            let channel = pick_weighted(&mut rng, CHANNELS.iter().map(|c| c.1)) as u8;
            Order {
                secs,
                draw: i as u32,
                customer,
                cents,
                items,
                currency,
                channel,
            }
        })
        .collect();
    orders.sort_unstable_by_key(|o| (o.secs, o.draw));
    let defects = defects(config);
    let mut lifetime_value = vec![0i64; customers];
    for (row, order) in orders.iter().enumerate() {
        if order.customer != GUEST && defect_at(&defects, row).is_none() {
            lifetime_value[order.customer as usize] += i64::from(order.cents);
        }
    }
    OrderPlan {
        orders,
        defects,
        lifetime_value,
    }
}

fn order_id(row: usize) -> String {
    format!("SO-{:08}", 10_000_001 + row)
}

fn amount(cents: u32) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

fn fields(row: usize, order: &Order) -> [String; 7] {
    [
        order_id(row),
        if order.customer == GUEST {
            String::new()
        } else {
            customer_id(order.customer as usize).to_string()
        },
        format_datetime(order.secs),
        amount(order.cents),
        CURRENCIES[usize::from(order.currency)].0.to_string(),
        CHANNELS[usize::from(order.channel)].0.to_string(),
        order.items.to_string(),
    ]
}

/// Writes `orders.csv`.
pub(crate) fn write(plan: &OrderPlan, path: &Path) -> Result<Written> {
    let mut out = CsvWriter::create(path, "\n")?;
    out.record(&HEADER)?;
    let mut malformed = Vec::new();
    let mut duplicates = 0;
    for (row, order) in plan.orders.iter().enumerate() {
        let Some(p) = defect_at(&plan.defects, row) else {
            out.record(&fields(row, order))?;
            continue;
        };
        let mut f = fields(row, order);
        let problem = match p.defect {
            Defect::AmountWithDecimalComma => {
                f[AMOUNT] = f[AMOUNT].replace('.', ",");
                out.record(&f)?;
                format!("Amount `{}` is not a number (decimal comma)", f[AMOUNT])
            }
            Defect::ItemsInWords => {
                f[ITEMS] = NUMBER_WORDS[usize::from(order.items).min(8)].to_string();
                out.record(&f)?;
                format!("Items `{}` is a word, not a number", f[ITEMS])
            }
            Defect::OrderDateNotInCalendar => {
                let good = f[ORDER_DATE].clone();
                f[ORDER_DATE] = format!("{}-04-31{}", &good[..4], &good[10..]);
                out.record(&f)?;
                format!("OrderDate `{}` is not a calendar date", f[ORDER_DATE])
            }
            Defect::MissingKey => {
                f[0].clear();
                out.record(&f)?;
                "OrderId is empty".to_string()
            }
            Defect::DuplicateKey => {
                duplicates += 1;
                let f = fields(p.source, &plan.orders[p.source]);
                out.record(&f)?;
                format!(
                    "repeats line {} exactly (OrderId `{}` exported twice)",
                    p.source + 2,
                    f[0]
                )
            }
            Defect::TooFewFields => {
                out.raw(&join(&f[..CHANNEL]))?;
                format!(
                    "{} of {} fields: the line ends after Currency",
                    CHANNEL,
                    HEADER.len()
                )
            }
            Defect::TooManyFields => {
                let cents = if order.cents < 100_000 {
                    order.cents + 100_000
                } else {
                    order.cents
                };
                let grouped = format!(
                    "{},{:03}.{:02}",
                    cents / 100_000,
                    cents / 100 % 1_000,
                    cents % 100
                );
                let before = join(&f[..AMOUNT]);
                let after = join(&f[AMOUNT + 1..]);
                out.raw(&format!("{before},{grouped},{after}"))?;
                format!(
                    "{} fields: Amount `{grouped}` has a thousands separator and is not quoted",
                    HEADER.len() + 1
                )
            }
            Defect::UnescapedQuote => {
                let channel = "Store \"Outlet\"";
                let before = join(&f[..CHANNEL]);
                let after = join(&f[CHANNEL + 1..]);
                out.raw(&format!("{before},{channel},{after}"))?;
                format!("Channel `{channel}` holds quotes but is not quoted")
            }
        };
        malformed.push(MalformedRow {
            file: ORDERS_FILE,
            line: row + 2,
            kind: kind(p.defect),
            problem,
        });
    }
    let bytes = out.finish()?;
    Ok(Written {
        file: FileSummary {
            file: ORDERS_FILE,
            format: "csv",
            rows: plan.orders.len(),
            malformed: malformed.len(),
            duplicates,
            people: None,
            bytes,
        },
        malformed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_have_two_decimals() {
        assert_eq!(amount(4599), "45.99");
        assert_eq!(amount(5), "0.05");
        assert_eq!(order_id(0), "SO-10000001");
    }
}
